package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sys/unix"
)

// term is one election this process won: the session whose end ends it,
// and its key's create revision (Election.Rev(), the fencing token our
// Rust provider uses for the same key layout).
type term struct {
	done  <-chan struct{}
	token int64
}

// runChaos is `-log` mode, a foreign candidate of `cargo xtask chaos`: it
// campaigns again and again until SIGTERM (which resigns) and appends
// fenced writes to the harness's shared log:
//
//	W <t_check_ns> <token> foreign <pid> <seq> <id>
//	D <t_done_ns> <pid> <seq>
//
// t_check_ns is CLOCK_MONOTONIC read before the check, t_done_ns after the
// write returned. The check is what etcd's election client offers: Campaign
// returned and the session (its etcd lease, kept alive by the client) is
// not known to be over.
func runChaos(cli *clientv3.Client, prefix, id, logPath string, ttl int) error {
	// Die with the harness, even when SIGSTOPped at that moment.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	file, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var current atomic.Pointer[term]
	check := func() (int64, bool) {
		t := current.Load()
		if t == nil {
			return 0, false
		}
		select {
		case <-t.done:
			return 0, false
		default:
			return t.token, true
		}
	}
	stopWriting := make(chan struct{})
	var writing sync.WaitGroup
	writing.Add(1)
	go writeLoop(file, id, check, stopWriting, &writing)
	say := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%d] %s: %s\n", monotonic(), id, fmt.Sprintf(format, args...))
	}

	for ctx.Err() == nil {
		session, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			say("session: %v", err)
			pause(ctx)
			continue
		}
		election := concurrency.NewElection(session, prefix)
		// Campaign waits for the older keys only; a session that ends
		// meanwhile (its key gone with its lease) must end the wait too.
		campaign, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-session.Done():
				cancel()
			case <-campaign.Done():
			}
		}()
		err = election.Campaign(campaign, id)
		cancel()
		if err != nil {
			say("campaign: %v", err)
			_ = session.Close()
			pause(ctx)
			continue
		}
		say("LEADING token %d", election.Rev())
		current.Store(&term{done: session.Done(), token: election.Rev()})
		select {
		case <-session.Done():
			say("LOST")
		case <-ctx.Done():
		}
		current.Store(nil)
		if ctx.Err() != nil {
			resign, done := context.WithTimeout(context.Background(), 5*time.Second)
			if err := election.Resign(resign); err != nil {
				say("resign: %v", err)
			}
			done()
		}
		_ = session.Close()
	}
	close(stopWriting)
	writing.Wait()
	return nil
}

func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(250 * time.Millisecond):
	}
}

// monotonic is CLOCK_MONOTONIC in nanoseconds, the clock every candidate of
// the harness writes.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// writeLoop checks and appends a fenced write every 10ms on one OS thread
// (O_APPEND, one write call per line) until stop closes.
func writeLoop(file *os.File, id string, check func() (int64, bool), stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	runtime.LockOSThread()
	pid := os.Getpid()
	seq := uint64(0)
	for {
		select {
		case <-stop:
			return
		default:
		}
		tCheck := monotonic()
		if token, ok := check(); ok {
			if _, err := file.WriteString(fmt.Sprintf("W %d %d foreign %d %d %s\n", tCheck, token, pid, seq, id)); err != nil {
				fmt.Fprintln(os.Stderr, "log write:", err)
			}
			if _, err := file.WriteString(fmt.Sprintf("D %d %d %d\n", monotonic(), pid, seq)); err != nil {
				fmt.Fprintln(os.Stderr, "log write:", err)
			}
			seq++
		}
		time.Sleep(10 * time.Millisecond)
	}
}
