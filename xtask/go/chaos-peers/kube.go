package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// recordingLock remembers the fencing token of the last record this elector
// wrote under its own identity. It is the token our Rust provider computes
// for the same Lease (epoch x 2^31 + leaseTransitions, where the epoch is
// the annotation our library writes and client-go keeps), so that tokens of
// both kinds compare. The Lease is read back after each successful write of
// ours; if someone else holds it by then, no token is remembered.
type recordingLock struct {
	resourcelock.Interface
	leases coordinationv1.LeaseInterface
	name   string
	token  atomic.Int64
}

// epochAnnotation is where our Rust provider records a token's epoch.
const epochAnnotation = "leader-election-rs/token-epoch"

func (l *recordingLock) remember(ctx context.Context, record resourcelock.LeaderElectionRecord) {
	if record.HolderIdentity != l.Identity() {
		l.token.Store(-1)
		return
	}
	lease, err := l.leases.Get(ctx, l.name, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != l.Identity() || lease.Spec.LeaseTransitions == nil {
		l.token.Store(-1)
		return
	}
	epoch := int64(0)
	if value, ok := lease.Annotations[epochAnnotation]; ok {
		parsed, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			l.token.Store(-1)
			return
		}
		epoch = parsed
	}
	l.token.Store(epoch<<31 + int64(*lease.Spec.LeaseTransitions))
}

func (l *recordingLock) Create(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, record)
	if err == nil {
		l.remember(ctx, record)
	}
	return err
}

func (l *recordingLock) Update(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, record)
	if err == nil {
		l.remember(ctx, record)
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
	lock := &recordingLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: *name, Namespace: *namespace},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: *id},
		},
		leases: client.CoordinationV1().Leases(*namespace),
		name:   *name,
	}
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
