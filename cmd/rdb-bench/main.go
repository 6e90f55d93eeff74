// Command rdb-bench loads an rdb cluster (or etcd) and reports throughput
// and latency; see package rdbbench.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rdb-project/rdb/store/rdbbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := rdbbench.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
