// etcd-election-peer campaigns with etcd's own election client
// (go.etcd.io/etcd/client/v3/concurrency: Session + Election) so the Rust
// provider's interop tests can contend with it on one election prefix.
//
// It prints one line per event to stdout (stamps are Unix nanoseconds, wall
// clock):
//
//	CAMPAIGNING <ns>   its key is written; it waits for the keys ahead of it
//	LEADING <ns>       Campaign returned: it leads from <ns>
//	RESIGNING <ns>     -hold is over; it stops leading at <ns> and resigns
//	RESIGNED <ns>      Resign returned
//	LOST <ns>          its session (etcd lease) ended while it led
//	GAVE_UP <ns>       it did not lead within -wait
//
// It exits 0 after RESIGNED, LOST or GAVE_UP.
//
// With -log it is instead a foreign candidate of `cargo xtask chaos`: it
// campaigns again and again until SIGTERM and appends fenced writes to the
// harness's shared log (see chaos.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func main() {
	endpoints := flag.String("endpoints", os.Getenv("LE_ETCD_ENDPOINTS"), "comma-separated etcd client URLs")
	prefix := flag.String("prefix", "", "election prefix (<key prefix>/<resource>)")
	id := flag.String("id", "etcd-election-peer", "the value it proclaims")
	ttl := flag.Int("ttl", 2, "session TTL in seconds")
	hold := flag.Duration("hold", 3*time.Second, "how long to lead before resigning")
	wait := flag.Duration("wait", 60*time.Second, "give up if not leading by then")
	logPath := flag.String("log", "", "chaos mode: campaign until SIGTERM, appending fenced writes to this log")
	flag.Parse()
	if *prefix == "" || *endpoints == "" {
		fmt.Fprintln(os.Stderr, "-prefix and -endpoints (or LE_ETCD_ENDPOINTS) are required")
		os.Exit(2)
	}
	var out sync.Mutex
	say := func(what string) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf("%s %d\n", what, time.Now().UnixNano())
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	defer cli.Close()
	if *logPath != "" {
		if err := runChaos(cli, *prefix, *id, *logPath, *ttl); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(1)
		}
		return
	}
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(*ttl))
	if err != nil {
		fmt.Fprintln(os.Stderr, "session:", err)
		os.Exit(1)
	}
	defer session.Close()
	election := concurrency.NewElection(session, *prefix)
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	say("CAMPAIGNING")
	if err := election.Campaign(ctx, *id); err != nil {
		say("GAVE_UP")
		return
	}
	say("LEADING")
	select {
	case <-time.After(*hold):
	case <-session.Done():
		say("LOST")
		return
	}
	say("RESIGNING")
	resign, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := election.Resign(resign); err != nil {
		fmt.Fprintln(os.Stderr, "resign:", err)
		os.Exit(1)
	}
	say("RESIGNED")
}
