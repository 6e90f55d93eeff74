// Command pd-server runs one member of the rdb placement driver (PD).
// Without flags it starts a one-member PD on 127.0.0.1:2379 (clients) and
// 127.0.0.1:2380 (peers) with its data in ./pd1.data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
)

func main() {
	cfg, err := server.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pd-server: %v\n", err)
		os.Exit(2)
	}
	if cfg.Logger, err = server.NewLogger(cfg.LogLevel); err != nil {
		fmt.Fprintf(os.Stderr, "pd-server: --log-level: %v\n", err)
		os.Exit(2)
	}
	// The leader carries out the mode switches the table asks for.
	cfg.Driver = switchdriver.New(cfg.Logger.Named("switch"), 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pd-server: %v\n", err)
		os.Exit(1)
	}
	code := 0
	select {
	case <-ctx.Done():
	case err := <-s.Err():
		fmt.Fprintf(os.Stderr, "pd-server: etcd failed: %v\n", err)
		code = 1
	}
	s.Close()
	os.Exit(code)
}
