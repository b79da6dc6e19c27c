// client-go-peer runs client-go's own leader elector (tools/leaderelection
// with a LeaseLock) so the Rust provider's interop test can contend with it.
//
// It prints one line per event to stdout: NEW_LEADER <id>, LEADING, then
// STOPPED when it stops leading (after -hold, with ReleaseOnCancel, or when
// it loses the lease). It exits 0 after STOPPED, or after -wait if it never led.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

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
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: *name, Namespace: *namespace},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *id},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out sync.Mutex
	say := func(line string) {
		out.Lock()
		defer out.Unlock()
		fmt.Println(line)
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
				say("LEADING")
				select {
				case <-time.After(*hold):
					cancel()
				case <-leading.Done():
				}
			},
			OnStoppedLeading: func() { say("STOPPED") },
			OnNewLeader:      func(identity string) { say("NEW_LEADER " + identity) },
		},
	})
}
