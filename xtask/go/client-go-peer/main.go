// client-go-peer runs client-go's own leader elector (tools/leaderelection
// with a LeaseLock) so the Rust provider's interop test can contend with it.
//
// It prints one line per event to stdout:
//
//	NEW_LEADER <id>          the observed holder changed
//	LEADING <ns>             it leads; <ns> is when the write that acquired the
//	                         Lease started (Unix nanoseconds, wall clock), so a
//	                         test's overlap check sees the earliest moment the
//	                         term can have begun
//	RENEWED <start> <end>    a renewing write succeeded (its start and end)
//	RELEASED <ns>            the releasing write succeeded
//	STOPPED <ns>             it stopped leading (after -hold, with ReleaseOnCancel,
//	                         or when it lost the lease); <ns> is the moment
//	                         OnStoppedLeading ran
//
// It exits 0 after STOPPED, or after -wait if it never led.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// timedLock stamps every successful write of the elector, so the peer can
// report when its terms began and were extended, not just when client-go's
// callbacks happened to run.
type timedLock struct {
	resourcelock.Interface
	say        func(string)
	leading    atomic.Bool
	mu         sync.Mutex
	writeStart time.Time // start of the acquiring write
}

func (l *timedLock) wrote(ler resourcelock.LeaderElectionRecord, start time.Time) {
	end := time.Now()
	l.mu.Lock()
	// The first successful write before the term is reported is the one that
	// acquired the Lease (client-go writes only to acquire or to renew).
	if !l.leading.Load() && l.writeStart.IsZero() && ler.HolderIdentity != "" {
		l.writeStart = start
	}
	l.mu.Unlock()
	switch {
	case ler.HolderIdentity == "":
		l.say(fmt.Sprintf("RELEASED %d", end.UnixNano()))
	case l.leading.Load():
		l.say(fmt.Sprintf("RENEWED %d %d", start.UnixNano(), end.UnixNano()))
	}
}

func (l *timedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := time.Now()
	err := l.Interface.Create(ctx, ler)
	if err == nil {
		l.wrote(ler, start)
	}
	return err
}

func (l *timedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := time.Now()
	err := l.Interface.Update(ctx, ler)
	if err == nil {
		l.wrote(ler, start)
	}
	return err
}

// acquired marks the term as begun and returns when its acquiring write started.
func (l *timedLock) acquired() time.Time {
	l.leading.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeStart
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig path")
	namespace := flag.String("namespace", "default", "Lease namespace")
	name := flag.String("name", "", "Lease name")
	id := flag.String("id", "client-go-peer", "holder identity")
	leaseDuration := flag.Duration("lease-duration", 2*time.Second, "LeaseDuration")
	renewDeadline := flag.Duration("renew-deadline", 1500*time.Millisecond, "RenewDeadline")
	retryPeriod := flag.Duration("retry-period", 500*time.Millisecond, "RetryPeriod")
	hold := flag.Duration("hold", 3*time.Second, "how long to lead before releasing")
	wait := flag.Duration("wait", 60*time.Second, "give up if not leading by then")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "-name is required")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		os.Exit(1)
	}
	client := kubernetes.NewForConfigOrDie(config)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out sync.Mutex
	say := func(line string) {
		out.Lock()
		defer out.Unlock()
		fmt.Println(line)
	}
	lock := &timedLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: *name, Namespace: *namespace},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: *id},
		},
		say: say,
	}
	led := make(chan struct{})
	go func() {
		select {
		case <-led:
		case <-time.After(*wait):
			say("GAVE_UP")
			cancel()
		}
	}()
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   *leaseDuration,
		RenewDeadline:   *renewDeadline,
		RetryPeriod:     *retryPeriod,
		ReleaseOnCancel: true,
		Name:            *name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				close(led)
				say(fmt.Sprintf("LEADING %d", lock.acquired().UnixNano()))
				select {
				case <-time.After(*hold):
					cancel()
				case <-leading.Done():
				}
			},
			OnStoppedLeading: func() { say(fmt.Sprintf("STOPPED %d", time.Now().UnixNano())) },
			OnNewLeader:      func(identity string) { say("NEW_LEADER " + identity) },
		},
	})
}
