// Command pdctl operates the rdb placement driver; see package pdctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rdb-project/rdb/pd/pdctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := pdctl.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
