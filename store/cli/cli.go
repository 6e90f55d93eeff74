// Package cli is the rdb-server command line: flags, logging, signals and
// the health probe used by container health checks.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/security"
)

// NewCommand returns the rdb-server command.
func NewCommand() *cobra.Command {
	var (
		storeID       uint64
		addr          string
		advertise     string
		dataDir       string
		peers         []string
		modes         []string
		pd            string
		logLevel      string
		compactAfter  uint64
		antiEntropy   time.Duration
		tombstoneTime time.Duration
		metricsAddr   string
		tlsFiles      security.Files
		maxNamespaces int
		memoryLimit   string
	)
	cmd := &cobra.Command{
		Use:   "rdb-server",
		Short: "Run an rdb store",
		Long: `rdb-server runs one store of an rdb cluster.

Static mode (no placement driver): the first store bootstraps the cluster,
later stores join through any --peer:

  rdb-server --store-id 1 --addr 127.0.0.1:50051 --namespace-mode logs=eventual
  rdb-server --store-id 2 --addr 127.0.0.1:50052 --peer 1=127.0.0.1:50051

PD mode: stores register with the placement driver and follow its table:

  rdb-server --store-id 1 --addr 127.0.0.1:50051 --pd 127.0.0.1:2379`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := store.Config{
				StoreID:             storeID,
				Addr:                addr,
				AdvertiseAddr:       advertise,
				DataDir:             dataDir,
				CompactThreshold:    compactAfter,
				AntiEntropyInterval: antiEntropy,
				TombstoneGrace:      tombstoneTime,
				MetricsAddr:         metricsAddr,
				TLS:                 tlsFiles,
				MaxNamespaces:       maxNamespaces,
			}
			if !cmd.Flags().Changed("store-id") || storeID == 0 {
				return errors.New("--store-id is required and must be a positive integer")
			}
			if addr == "" {
				return errors.New("--addr is required (HOST:PORT to listen on)")
			}
			var err error
			if cfg.Peers, err = ParsePeers(peers); err != nil {
				return err
			}
			if cfg.NamespaceModes, err = ParseNamespaceModes(modes); err != nil {
				return err
			}
			if pd != "" {
				cfg.PD = strings.Split(pd, ",")
				if len(cfg.Peers) > 0 {
					return errors.New("--peer and --pd do not go together: with a placement driver, stores learn their peers from it")
				}
			}
			if cfg.DataDir == "" {
				cfg.DataDir = store.DefaultDataDir(storeID)
			}
			if maxNamespaces <= 0 {
				return errors.New("--max-namespaces must be positive")
			}
			if err := tlsFiles.Check(""); err != nil {
				return err
			}
			limit, err := ParseMemoryLimit(memoryLimit)
			if err != nil {
				return err
			}
			if cfg.Logger, err = NewLogger(logLevel); err != nil {
				return err
			}
			defer func() { _ = cfg.Logger.Sync() }()
			if limit > 0 {
				gcOff := setMemoryLimit(limit)
				cfg.Logger.Info("memory limit set", zap.Int64("bytes", limit), zap.Bool("gc_percent_off", gcOff))
			}
			return run(cfg)
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&storeID, "store-id", 0, "this store's id, a positive integer unique in the cluster (required)")
	f.StringVar(&addr, "addr", "", "HOST:PORT to serve gRPC on (required)")
	f.StringVar(&advertise, "advertise-addr", "", "HOST:PORT other stores use to reach this one (default: --addr)")
	f.StringVar(&dataDir, "data-dir", "", "data directory (default: ./rdb-store-<store-id>)")
	f.StringArrayVar(&peers, "peer", nil, "ID=HOST:PORT of a store to join the cluster through (repeatable; static mode)")
	f.StringArrayVar(&modes, "namespace-mode", nil, "NS=MODE to seed the mode table with, MODE strong or eventual (repeatable)")
	f.StringVar(&pd, "pd", "", "comma-separated placement driver endpoints (PD mode)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.Uint64Var(&compactAfter, "raft-log-compact-threshold", 10000, "Raft log entries kept before the log is compacted")
	f.DurationVar(&antiEntropy, "anti-entropy-interval", 10*time.Second, "how often eventual replicas compare digests")
	f.DurationVar(&tombstoneTime, "tombstone-grace", 24*time.Hour, "how long eventual deletes are kept before they are collected")
	f.StringVar(&metricsAddr, "metrics-addr", "", "HOST:PORT to serve Prometheus metrics (/metrics) and pprof (/debug/pprof/) on (default: off)")
	f.StringVar(&tlsFiles.CertFile, "cert-file", "", "this store's certificate, CN store:<id> (TLS; with --key-file and --trusted-ca-file)")
	f.StringVar(&tlsFiles.KeyFile, "key-file", "", "the certificate's key")
	f.StringVar(&tlsFiles.TrustedCAFile, "trusted-ca-file", "", "the CA that signs every certificate of the cluster")
	f.IntVar(&maxNamespaces, "max-namespaces", store.DefaultMaxNamespaces, "the most namespaces a static-mode cluster creates (PD mode: pd-server's flag)")
	f.StringVar(&memoryLimit, "memory-limit", "", "memory the store's Go runtime may use, e.g. 1536MiB or 2GiB; the garbage collector then runs when the heap nears it, not each time the heap doubles (default: off, Go's own pacing)")
	cmd.AddCommand(newHealthCommand())
	return cmd
}

func run(cfg store.Config) error {
	s, err := store.Open(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	got := <-sig
	cfg.Logger.Info("shutting down", zap.String("signal", got.String()))
	signal.Stop(sig)
	s.Stop()
	return nil
}

// ParsePeers parses repeated ID=HOST:PORT flags.
func ParsePeers(vals []string) (map[uint64]string, error) {
	out := make(map[uint64]string)
	for _, v := range vals {
		id, addr, ok := strings.Cut(v, "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || !validHostPort(addr) {
			return nil, fmt.Errorf("--peer %q: want ID=HOST:PORT with a positive integer ID, for example 1=127.0.0.1:50051", v)
		}
		if prev, dup := out[n]; dup && prev != addr {
			return nil, fmt.Errorf("--peer: store %d given twice (%s and %s)", n, prev, addr)
		}
		out[n] = addr
	}
	return out, nil
}

// ParseNamespaceModes parses repeated NS=MODE flags.
func ParseNamespaceModes(vals []string) (map[string]string, error) {
	out := make(map[string]string)
	for _, v := range vals {
		ns, mode, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("--namespace-mode %q: want NS=MODE, for example logs=eventual", v)
		}
		if err := api.ValidateNamespace(ns); err != nil {
			return nil, fmt.Errorf("--namespace-mode %q: namespace must be 1 to 64 characters of a-z, 0-9, '_' and '-'", v)
		}
		if _, err := namespace.ParseMode(mode); err != nil {
			return nil, fmt.Errorf("--namespace-mode %q: mode must be strong or eventual", v)
		}
		if prev, dup := out[ns]; dup && prev != mode {
			return nil, fmt.Errorf("--namespace-mode: %s given twice (%s and %s)", ns, prev, mode)
		}
		out[ns] = mode
	}
	return out, nil
}

func validHostPort(s string) bool {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return false
	}
	p, err := strconv.Atoi(s[i+1:])
	return err == nil && p > 0 && p < 65536
}

// NewLogger returns a console logger at the given level.
func NewLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Encoding = "console"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	cfg.Sampling = nil
	cfg.DisableStacktrace = true
	return cfg.Build()
}

func newHealthCommand() *cobra.Command {
	var addr string
	var timeout time.Duration
	var files security.Files
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 if the store at --addr reports SERVING (grpc.health.v1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := files.Check(""); err != nil {
				return errors.New("health: --cacert, --cert and --key go together")
			}
			creds, err := files.ClientCredentials()
			if err != nil {
				return err
			}
			return Probe(ctx, addr, creds)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:50051", "HOST:PORT of the server to check")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for an answer")
	cmd.Flags().StringVar(&files.TrustedCAFile, "cacert", "", "CA of a TLS server (with --cert and --key)")
	cmd.Flags().StringVar(&files.CertFile, "cert", "", "client certificate for a TLS server")
	cmd.Flags().StringVar(&files.KeyFile, "key", "", "the certificate's key")
	return cmd
}

// Probe checks a gRPC server's health service; creds nil is plaintext.
func Probe(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health of %s: %w", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s is %s", addr, resp.GetStatus())
	}
	return nil
}
