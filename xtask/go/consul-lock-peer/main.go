// consul-lock-peer takes a Consul lock with Go's api.Lock (the library's own
// lock, MPL-2.0) so the Rust provider's interop test can contend with it.
//
// It prints one line per step to stdout: WAITING, LOCKED, then LOST (if the
// lock was taken away) or RELEASED, and exits 0. With -stamps, `cargo xtask
// bench` measures its handovers and crash failovers: it also prints
// `LEADING <ns>` right after LOCKED (when Lock returned) and `STOPPED <ns>`
// right before it unlocks (its last leading instant), Unix nanoseconds.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/consul/api"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8500", "agent HTTP address")
	key := flag.String("key", "", "lock key (<prefix>/<resource>/.lock)")
	hold := flag.Duration("hold", 3*time.Second, "how long to hold the lock")
	ttl := flag.String("ttl", "10s", "session TTL")
	lockDelay := flag.Duration("lock-delay", time.Second, "the session's lock-delay")
	stamps := flag.Bool("stamps", false, "also print LEADING <ns> and STOPPED <ns>")
	flag.Parse()
	if *key == "" {
		fmt.Fprintln(os.Stderr, "-key is required")
		os.Exit(2)
	}
	config := api.DefaultConfig()
	config.Address = *addr
	client, err := api.NewClient(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	lock, err := client.LockOpts(&api.LockOptions{
		Key:        *key,
		SessionTTL: *ttl,
		LockDelay:  *lockDelay,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock options:", err)
		os.Exit(1)
	}
	fmt.Println("WAITING")
	lost, err := lock.Lock(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		os.Exit(1)
	}
	fmt.Println("LOCKED")
	if *stamps {
		fmt.Printf("LEADING %d\n", time.Now().UnixNano())
	}
	select {
	case <-time.After(*hold):
		if *stamps {
			fmt.Printf("STOPPED %d\n", time.Now().UnixNano())
		}
		if err := lock.Unlock(); err != nil {
			fmt.Fprintln(os.Stderr, "unlock:", err)
			os.Exit(1)
		}
		fmt.Println("RELEASED")
	case <-lost:
		fmt.Println("LOST")
	}
}
