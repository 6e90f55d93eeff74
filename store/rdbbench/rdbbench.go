// Package rdbbench is rdb-bench, a load generator in the manner of etcd's
// benchmark tool: a cobra tree of workloads (`rdb-bench cas`, `get`,
// `rawput`, `rawget`, `rawbatchput`, `mixed`), each run by --clients
// closed-loop clients over --conns connections for --duration or --total
// operations, with a progress display on stderr and a report on stdout
// (throughput, errors by gRPC code, a latency histogram with percentiles;
// -o json for one JSON object). With --etcd the same workload runs against
// an etcd cluster with etcd's own client, for side-by-side figures, and
// `rdb-bench compare` starts both clusters as processes on this machine
// and prints one table of the two (make bench-compare).
//
// Exit codes: 0 when the run completed (failed operations are counted in
// the report), 1 when it could not run or stopped early, 2 when the
// command line is wrong.
package rdbbench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/store/cmdtree"
	"github.com/rdb-project/rdb/store/security"
)

// EndpointsEnv names the environment variable that, when set, is
// --endpoints' default.
const EndpointsEnv = cmdtree.StoreEndpointsEnv

// DefaultEndpoint is the store --endpoints names without $RDB_ENDPOINTS.
const DefaultEndpoint = cmdtree.DefaultStoreEndpoint

// Exit codes.
const (
	ExitOK    = cmdtree.ExitOK
	ExitError = cmdtree.ExitError // the run failed or stopped early
	ExitUsage = cmdtree.ExitUsage // the command line is wrong
)

// Run runs rdb-bench with args (without the program name) and returns its
// exit code. The report goes to stdout; progress and errors to stderr
// (progress as a bar when stderr is a terminal).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	return cmdtree.Execute(ctx, a.rootCommand(), args, stdout, stderr, nil)
}

// runError marks an error of the run, as opposed to one of the command
// line.
type runError = cmdtree.RunError

// app holds one invocation's flags.
type app struct {
	stdout, stderr io.Writer

	endpoints  string
	etcd       string
	etcdCas    string
	tls        security.Files
	output     string
	clients    int
	conns      int
	duration   time.Duration
	total      int64
	valSize    int
	keySpace   int
	namespace  string
	batch      int
	readRatio  float64
	seed       uint64
	timeout    time.Duration
	ready      time.Duration
	cpuProfile string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "rdb-bench",
		Short: "Load an rdb cluster (or etcd) and report throughput and latency",
		Long: `rdb-bench runs one workload against an rdb cluster and reports its
throughput, its errors by gRPC code and its latency (percentiles and a
histogram). --clients clients each send their next request as soon as the
last is answered, over --conns Go clients, each connected to every store of
--endpoints (default $RDB_ENDPOINTS, else ` + DefaultEndpoint + `), for --duration
or --total requests. Strong calls go to the namespace's leader once a store
names it.

The namespace is put in the mode the workload needs first (strong for cas,
get and mixed, eventual for the raw workloads; changing a mode needs an
admin certificate under TLS), and the reading workloads write their key
space first.

With --etcd ENDPOINTS the same workload runs against etcd instead, with
etcd's client: cas and rawput are puts (--etcd-cas txn: a transaction that
compares the mod revision), get a linearizable read, rawget a serializable
one, rawbatchput one transaction of --batch puts.

  rdb-bench cas --endpoints 127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053
  rdb-bench rawbatchput --batch 100 --duration 30s -o json
  rdb-bench get --etcd 127.0.0.1:2379 --total 100000`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	cas := a.workloadCommand(workCas, "Compare-and-swap keys of a strong namespace (each client its own keys)")
	get := a.workloadCommand(workGet, "Linearizable reads of a strong namespace")
	rawPut := a.workloadCommand(workRawPut, "Raw writes to an eventual namespace")
	rawGet := a.workloadCommand(workRawGet, "Raw reads (one replica's) of an eventual namespace")
	rawBatch := a.workloadCommand(workRawBatchPut, "Batches of raw writes to an eventual namespace (--batch keys each)")
	rawBatch.Flags().IntVar(&a.batch, "batch", 100, "keys a batch (distinct, consecutive from a random one)")
	mixed := a.workloadCommand(workMixed, "Linearizable reads and compare-and-swaps of a strong namespace (--read-ratio)")
	mixed.Flags().Float64Var(&a.readRatio, "read-ratio", 0.5, "fraction of operations that are reads (0 to 1)")
	root.AddCommand(cas, get, rawPut, rawGet, rawBatch, mixed, a.compareCommand())
	return root
}

// workloadCommand is the command of one workload, with the flags every
// workload takes.
func (a *app) workloadCommand(name, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.runWorkload(cmd, workloads[name]) },
	}
	f := cmd.Flags()
	f.StringVar(&a.endpoints, "endpoints", cmdtree.StoreEndpoints(), "rdb stores, comma-separated host:port; $"+EndpointsEnv+" sets the default")
	f.StringVar(&a.etcd, "etcd", "", "run against these etcd members instead (comma-separated host:port or URLs)")
	f.StringVar(&a.etcdCas, "etcd-cas", "put", "what cas is on etcd: put, or txn (put if the mod revision is the one last seen)")
	f.StringVar(&a.tls.TrustedCAFile, "cacert", "", "CA of a cluster that runs with TLS (with --cert and --key, as etcdctl)")
	f.StringVar(&a.tls.CertFile, "cert", "", "client certificate for a cluster with TLS (an admin's to change a namespace's mode)")
	f.StringVar(&a.tls.KeyFile, "key", "", "the certificate's key")
	f.StringVarP(&a.output, "output", "o", "table", "report format: table or json")
	f.IntVar(&a.clients, "clients", 64, "concurrent clients, each one request at a time")
	f.IntVar(&a.conns, "conns", 0, "connections the clients share (default: one per endpoint)")
	f.DurationVar(&a.duration, "duration", 10*time.Second, "how long to run (or --total)")
	f.Int64Var(&a.total, "total", 0, "run this many requests instead of for --duration")
	f.IntVar(&a.valSize, "val-size", 256, "value size in bytes")
	f.IntVar(&a.keySpace, "key-space", 10000, "keys drawn from (key-0 to key-N-1)")
	f.StringVar(&a.namespace, "namespace", "", "namespace to load (default: bench for strong workloads, bench-raw for raw ones; on etcd a key prefix)")
	f.Uint64Var(&a.seed, "seed", 1, "seed of the keys and values drawn")
	f.DurationVar(&a.timeout, "request-timeout", 10*time.Second, "how long one request may take before it counts as failed")
	f.DurationVar(&a.ready, "ready-timeout", time.Minute, "how long to wait for the namespace to serve the workload's mode")
	f.StringVar(&a.cpuProfile, "cpuprofile", "", "write a CPU profile of this program's run (the load, not the cluster) to this file")
	return cmd
}

// defaultNamespace is the namespace a workload loads without --namespace:
// one per mode, so that running one workload after another does not
// switch a namespace back and forth.
func defaultNamespace(w workload) string {
	if w.mode == modeEventual {
		return "bench-raw"
	}
	return "bench"
}

func (a *app) runWorkload(cmd *cobra.Command, w workload) error {
	if a.output != "table" && a.output != "json" {
		return fmt.Errorf("-o must be json or table, not %q", a.output)
	}
	if a.etcdCas != "put" && a.etcdCas != "txn" {
		return fmt.Errorf("--etcd-cas must be put or txn, not %q", a.etcdCas)
	}
	if cmd.Flags().Changed("total") && cmd.Flags().Changed("duration") {
		return errors.New("give --duration or --total, not both")
	}
	if err := a.tls.Check(""); err != nil {
		return errors.New("--cacert, --cert and --key go together")
	}
	p := params{
		workload: w, clients: a.clients, duration: a.duration, total: a.total, valSize: a.valSize,
		keySpace: a.keySpace, batch: 1, seed: a.seed, timeout: a.timeout, readyTimeout: a.ready,
		progress: a.stderr, tty: isTerminal(a.stderr), progressEvery: 5 * time.Second,
	}
	if p.total > 0 {
		p.duration = 0
	}
	switch w.name {
	case workRawBatchPut:
		p.batch = a.batch
	case workMixed:
		p.readRatio = a.readRatio
	case workGet, workRawGet:
		p.readRatio = 1
	}
	if err := p.check(); err != nil {
		return err
	}
	ns := a.namespace
	if ns == "" {
		ns = defaultNamespace(w)
	}
	rep := Report{Target: "rdb", Workload: w.name, Namespace: ns, Clients: p.clients, ValueSize: p.valSize,
		KeySpace: p.keySpace, Batch: p.batch, ReadRatio: p.readRatio, Seed: p.seed}
	var (
		targets []Target
		err     error
	)
	if a.etcd != "" {
		rep.Target = "etcd"
		rep.Endpoints, err = splitList(a.etcd)
		if err != nil {
			return err
		}
		targets, err = a.etcdTargets(rep.Endpoints, ns)
	} else {
		rep.Endpoints, err = splitEndpoints(a.endpoints)
		if err != nil {
			return err
		}
		targets, err = a.rdbTargets(rep.Endpoints, ns)
	}
	defer closeAll(targets)
	if err != nil {
		return runError{Err: err}
	}
	rep.Conns = len(targets)
	stopProfile, err := startCPUProfile(a.cpuProfile)
	if err != nil {
		return err
	}
	s, elapsed, err := run(cmd.Context(), p, targets)
	if perr := stopProfile(); perr != nil && err == nil {
		err = perr
	}
	if s == nil {
		return runError{Err: err}
	}
	if !errors.Is(err, errInterrupted) && err != nil {
		return runError{Err: err}
	}
	rep = newReport(rep, s, elapsed)
	if a.output == "json" {
		if werr := writeJSON(a.stdout, rep); werr != nil {
			return runError{Err: werr}
		}
	} else {
		writeText(a.stdout, rep)
	}
	if err != nil {
		return runError{Err: err}
	}
	return nil
}

// connCount is --conns, or one per endpoint.
func (a *app) connCount(endpoints int) int {
	if a.conns > 0 {
		return a.conns
	}
	return endpoints
}

// rdbTargets opens --conns clients, each over every endpoint.
func (a *app) rdbTargets(endpoints []string, ns string) ([]Target, error) {
	var ts []Target
	for range a.connCount(len(endpoints)) {
		t, err := dialRDB(endpoints, ns, a.tls)
		if err != nil {
			return ts, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// etcdTargets opens --conns etcd clients, each over every endpoint.
func (a *app) etcdTargets(endpoints []string, ns string) ([]Target, error) {
	var cfg *tls.Config
	if a.tls.Enabled() {
		var err error
		if cfg, err = a.tls.ClientConfig(); err != nil {
			return nil, err
		}
	}
	var ts []Target
	for range a.connCount(len(endpoints)) {
		t, err := dialEtcd(endpoints, ns, cfg, a.etcdCas == "txn")
		if err != nil {
			return ts, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func closeAll(ts []Target) {
	for _, t := range ts {
		_ = t.Close()
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) ([]string, error) {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no endpoints given")
	}
	return out, nil
}

// startCPUProfile starts a CPU profile into path (nothing if path is
// empty) and returns what stops it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}
