// Command rdbctl reads and writes the data of an rdb cluster; see package
// rdbctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rdb-project/rdb/store/rdbctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := rdbctl.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
