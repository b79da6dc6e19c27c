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

	"github.com/hashicorp/consul/api"
)

// held is a lock this process holds: the channel api.Lock closes when it
// learns the lock is lost, and the acquiring write's ModifyIndex (the
// fencing token our Consul provider uses too).
type held struct {
	lost  <-chan struct{}
	token int64
}

func runConsul(args []string) error {
	flags := flag.NewFlagSet("consul", flag.ExitOnError)
	addr := flags.String("addr", "", "agent HTTP host:port (the harness's proxy)")
	key := flags.String("key", "", "lock key (<prefix>/<resource>/.lock)")
	id := flags.String("id", "", "candidate id (session name)")
	logPath := flags.String("log", "", "shared log")
	ttl := flags.String("ttl", "2s", "session TTL")
	lockDelay := flags.Duration("lock-delay", time.Second, "session lock-delay")
	_ = flags.Parse(args)
	if *addr == "" || *key == "" || *id == "" || *logPath == "" {
		return fmt.Errorf("-addr, -key, -id and -log are required")
	}
	config := api.DefaultConfig()
	config.Address = *addr
	client, err := api.NewClient(config)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	log, err := openLog(*logPath, *id)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	var current atomic.Pointer[held]
	check := func() (int64, bool) {
		h := current.Load()
		if h == nil {
			return 0, false
		}
		select {
		case <-h.lost:
			return 0, false
		default:
			return h.token, true
		}
	}
	stopWriting := make(chan struct{})
	var writing sync.WaitGroup
	writing.Add(1)
	go writeLoop(log, check, stopWriting, &writing)

	for ctx.Err() == nil {
		lock, err := client.LockOpts(&api.LockOptions{
			Key:         *key,
			SessionName: *id,
			SessionTTL:  *ttl,
			LockDelay:   *lockDelay,
		})
		if err != nil {
			return fmt.Errorf("lock options: %w", err)
		}
		lost, err := lock.Lock(ctx.Done())
		if err != nil || lost == nil {
			if err != nil {
				fmt.Fprintf(os.Stderr, "[%d] %s: lock: %v\n", monotonic(), *id, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		pair, _, err := client.KV().Get(*key, nil)
		if err != nil || pair == nil {
			fmt.Fprintf(os.Stderr, "[%d] %s: reading the lock key after locking: %v\n", monotonic(), *id, err)
			_ = lock.Unlock()
			continue
		}
		fmt.Fprintf(os.Stderr, "[%d] %s: LOCKED index %d\n", monotonic(), *id, pair.ModifyIndex)
		current.Store(&held{lost: lost, token: int64(pair.ModifyIndex)})
		select {
		case <-lost:
			fmt.Fprintf(os.Stderr, "[%d] %s: LOST\n", monotonic(), *id)
		case <-ctx.Done():
		}
		current.Store(nil)
		_ = lock.Unlock()
	}
	close(stopWriting)
	writing.Wait()
	return nil
}
