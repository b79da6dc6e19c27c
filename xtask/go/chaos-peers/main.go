// chaos-peers runs the foreign candidates of `cargo xtask chaos`: client-go's
// own leader elector on a Kubernetes Lease (`chaos-peers kube ...`) and
// Consul's api.Lock on a Consul lock (`chaos-peers consul ...`). Both keep
// contending until SIGTERM (which releases the lock), and both append fenced
// writes to the harness's shared log in its format:
//
//	W <t_check_ns> <token> foreign <pid> <seq> <id>
//	D <t_done_ns> <pid> <seq>
//
// t_check_ns is CLOCK_MONOTONIC read before the leadership check, t_done_ns
// after the write returned. The check is what each library offers its users:
// client-go's IsLeader() and api.Lock's "lost" channel.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	// Die with the harness, even when SIGSTOPped at that moment.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if os.Getppid() == 1 {
		os.Exit(1)
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chaos-peers kube|consul [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "kube":
		err = runKube(os.Args[2:])
	case "consul":
		err = runConsul(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q; expected kube or consul", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos-peers:", err)
		os.Exit(1)
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

// fencedLog appends fenced writes to the shared log (O_APPEND, one write
// call per line).
type fencedLog struct {
	file *os.File
	id   string
	pid  int
	seq  uint64
}

func openLog(path, id string) (*fencedLog, error) {
	file, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &fencedLog{file: file, id: id, pid: os.Getpid()}, nil
}

// writeIf reads the clock, runs the check, and writes when it returned a token.
func (l *fencedLog) writeIf(check func() (int64, bool)) (int64, bool) {
	tCheck := monotonic()
	token, ok := check()
	if !ok {
		return 0, false
	}
	seq := l.seq
	l.seq++
	if _, err := l.file.WriteString(fmt.Sprintf("W %d %d foreign %d %d %s\n", tCheck, token, l.pid, seq, l.id)); err != nil {
		fmt.Fprintln(os.Stderr, "log write:", err)
	}
	if _, err := l.file.WriteString(fmt.Sprintf("D %d %d %d\n", monotonic(), l.pid, seq)); err != nil {
		fmt.Fprintln(os.Stderr, "log write:", err)
	}
	return token, true
}

// writeLoop checks and writes every 10ms on one OS thread until stop closes.
func writeLoop(log *fencedLog, check func() (int64, bool), stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	runtime.LockOSThread()
	last := int64(-1)
	for {
		select {
		case <-stop:
			return
		default:
		}
		token, ok := log.writeIf(check)
		if !ok {
			token = -1
		}
		if token != last {
			fmt.Fprintf(os.Stderr, "[%d] %s: fencing token %d\n", monotonic(), log.id, token)
			last = token
		}
		time.Sleep(10 * time.Millisecond)
	}
}
