package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// recordingLock remembers the leaseTransitions of the last record this
// elector wrote under its own identity: client-go's fencing token.
type recordingLock struct {
	resourcelock.Interface
	token atomic.Int64
}

func (l *recordingLock) remember(record resourcelock.LeaderElectionRecord) {
	if record.HolderIdentity == l.Identity() {
		l.token.Store(int64(record.LeaderTransitions))
	} else {
		l.token.Store(-1)
	}
}

func (l *recordingLock) Create(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, record)
	if err == nil {
		l.remember(record)
	}
	return err
}

func (l *recordingLock) Update(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, record)
	if err == nil {
		l.remember(record)
	}
	return err
}

func runKube(args []string) error {
	flags := flag.NewFlagSet("kube", flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig path")
	server := flags.String("server", "", "host:port to reach the apiserver at (the harness's proxy)")
	namespace := flags.String("namespace", "default", "Lease namespace")
	name := flags.String("name", "", "Lease name")
	id := flags.String("id", "", "holder identity")
	logPath := flags.String("log", "", "shared log")
	leaseDuration := flags.Duration("lease-duration", 2*time.Second, "LeaseDuration")
	renewDeadline := flags.Duration("renew-deadline", 1500*time.Millisecond, "RenewDeadline")
	retryPeriod := flags.Duration("retry-period", 300*time.Millisecond, "RetryPeriod")
	_ = flags.Parse(args)
	if *name == "" || *id == "" || *logPath == "" {
		return fmt.Errorf("-name, -id and -log are required")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if *server != "" {
		config.Host = "https://" + *server
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	log, err := openLog(*logPath, *id)
	if err != nil {
		return err
	}
	lock := &recordingLock{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: *name, Namespace: *namespace},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *id},
	}}
	lock.token.Store(-1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	var elector atomic.Pointer[leaderelection.LeaderElector]
	check := func() (int64, bool) {
		le := elector.Load()
		token := lock.token.Load()
		if le == nil || token < 0 || !le.IsLeader() {
			return 0, false
		}
		return token, true
	}
	stopWriting := make(chan struct{})
	var writing sync.WaitGroup
	writing.Add(1)
	go writeLoop(log, check, stopWriting, &writing)

	// A lost elector returns from Run; contend again with a fresh one.
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   *leaseDuration,
			RenewDeadline:   *renewDeadline,
			RetryPeriod:     *retryPeriod,
			ReleaseOnCancel: true,
			Name:            *name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					fmt.Fprintf(os.Stderr, "[%d] %s: LEADING\n", monotonic(), *id)
				},
				OnStoppedLeading: func() {
					fmt.Fprintf(os.Stderr, "[%d] %s: STOPPED\n", monotonic(), *id)
				},
			},
		})
		if err != nil {
			return fmt.Errorf("elector: %w", err)
		}
		elector.Store(le)
		le.Run(ctx)
	}
	close(stopWriting)
	writing.Wait()
	return nil
}
