package rdbbench

// rdb-bench compare: three etcd members, then three rdb stores (static
// mode), each started as processes on this machine on loopback ports with
// their data in a temporary directory, each loaded by the same workloads,
// then one table of both with the ratios and the targets rdb aims for.
// Every process is stopped at the end, on an error and on Ctrl-C; a
// process left behind by a killed rdb-bench gets SIGKILL from the kernel
// (Linux).

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/store/security"
	"github.com/rdb-project/rdb/store/testport"
)

// compareFlags are compare's settings.
type compareFlags struct {
	etcdBin, serverBin string
	dir                string
	output             string
	duration           time.Duration
	clients            int
	valSize            int
	keySpace           int
	batch              int
	readRatio          float64
	seed               uint64
}

// comparison is one row of the table: a workload run on both clusters and
// the target rdb aims for.
type comparison struct {
	label    string
	workload workload
	clients  int
	// target describes the goal; met reports whether the reports reach it
	// (nil: no target).
	target string
	met    func(etcd, rdb Report) bool
}

// ratioAtLeast is a throughput target relative to etcd's.
func ratioAtLeast(x float64) func(etcd, rdb Report) bool {
	return func(etcd, rdb Report) bool { return etcd.OpsPerSecond > 0 && rdb.OpsPerSecond/etcd.OpsPerSecond >= x }
}

// comparisons are the rows of compare's table, in order.
func comparisons(f compareFlags) []comparison {
	return []comparison{
		{label: "cas vs etcd put", workload: workloads[workCas], clients: f.clients, target: ">= 2x", met: ratioAtLeast(2)},
		{label: "get, linearizable", workload: workloads[workGet], clients: f.clients, target: ">= 2x", met: ratioAtLeast(2)},
		{label: "rawput vs etcd put", workload: workloads[workRawPut], clients: f.clients, target: ">= 3x", met: ratioAtLeast(3)},
		{label: "rawget vs etcd serializable get", workload: workloads[workRawGet], clients: f.clients, target: "-"},
		{label: fmt.Sprintf("rawbatchput, %d keys (keys/s)", f.batch), workload: workloads[workRawBatchPut], clients: f.clients,
			target: ">= 100,000 keys/s", met: func(_, rdb Report) bool { return rdb.KeysPerSecond >= 100000 }},
		{label: fmt.Sprintf("mixed, %.0f%% reads", f.readRatio*100), workload: workloads[workMixed], clients: f.clients, target: "-"},
		{label: "cas vs etcd put, 1 client", workload: workloads[workCas], clients: 1,
			target: "p50 <= etcd's", met: func(etcd, rdb Report) bool { return rdb.Ops > 0 && rdb.Latency.P50 <= etcd.Latency.P50 }},
	}
}

func (a *app) compareCommand() *cobra.Command {
	var f compareFlags
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Start three etcd members and three rdb stores here, load both, print one table",
		Long: `compare starts three etcd members, loads them with every workload (64
clients and 256-byte values by default, --duration each), stops them, then
does the same with three rdb stores in static mode, and prints one table:
each workload's throughput on both, the ratio, the target rdb aims for and
whether it was met, and the p50 and p99 latencies. Everything runs on this
machine, on loopback, with the data in a temporary directory that is
removed at the end; every process is stopped at the end and on Ctrl-C.

  rdb-bench compare --etcd-bin bin/etcd --server-bin bin/rdb-server --duration 20s

make bench-compare builds both programs and runs this (BENCH_DURATION sets
--duration).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output != "table" && f.output != "json" {
				return fmt.Errorf("-o must be json or table, not %q", f.output)
			}
			for _, b := range []struct{ flag, path string }{{"--etcd-bin", f.etcdBin}, {"--server-bin", f.serverBin}} {
				if _, err := os.Stat(b.path); err != nil {
					return fmt.Errorf("%s: %w", b.flag, err)
				}
			}
			for _, c := range comparisons(f) {
				if err := a.compareParams(f, c).check(); err != nil {
					return err
				}
			}
			return a.compare(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.etcdBin, "etcd-bin", "bin/etcd", "the etcd program")
	fl.StringVar(&f.serverBin, "server-bin", "bin/rdb-server", "the rdb-server program")
	fl.StringVar(&f.dir, "dir", "", "directory for the data and the logs, kept afterwards (default: a temporary one, removed)")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	fl.DurationVar(&f.duration, "duration", 20*time.Second, "how long each workload runs on each cluster")
	fl.IntVar(&f.clients, "clients", 64, "concurrent clients (the single-client row has one)")
	fl.IntVar(&f.valSize, "val-size", 256, "value size in bytes")
	fl.IntVar(&f.keySpace, "key-space", 10000, "keys drawn from")
	fl.IntVar(&f.batch, "batch", 100, "keys a rawbatchput")
	fl.Float64Var(&f.readRatio, "read-ratio", 0.5, "fraction of reads in the mixed workload")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the keys and values drawn")
	return cmd
}

// compareParams are the settings of one row's runs.
func (a *app) compareParams(f compareFlags, c comparison) params {
	p := params{
		workload: c.workload, clients: c.clients, duration: f.duration, valSize: f.valSize, keySpace: f.keySpace,
		batch: 1, seed: f.seed, timeout: 10 * time.Second, readyTimeout: time.Minute,
		progress: a.stderr, tty: isTerminal(a.stderr), progressEvery: 10 * time.Second,
	}
	switch c.workload.name {
	case workRawBatchPut:
		p.batch = f.batch
	case workMixed:
		p.readRatio = f.readRatio
	}
	return p
}

// row is one line of compare's result.
type row struct {
	Label  string  `json:"label"`
	Etcd   Report  `json:"etcd"`
	Rdb    Report  `json:"rdb"`
	Ratio  float64 `json:"ratio"` // rdb's throughput over etcd's (keys/s for batches)
	Target string  `json:"target"`
	// Met is whether rdb reached the target (false when there is none).
	Met bool `json:"met"`
	// EtcdError and RdbError say why a run failed ("" when it did not).
	EtcdError string `json:"etcd_error"`
	RdbError  string `json:"rdb_error"`
}

// comparisonResult is compare's JSON document.
type comparisonResult struct {
	EtcdVersion string  `json:"etcd_version"`
	CPUs        int     `json:"cpus"`
	Seconds     float64 `json:"seconds_per_run"`
	Clients     int     `json:"clients"`
	ValueSize   int     `json:"val_size"`
	Rows        []row   `json:"rows"`
}

func (a *app) compare(ctx context.Context, f compareFlags) error {
	dir := f.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "rdb-bench-compare-")
		if err != nil {
			return runError{Err: err}
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		dir = tmp
	}
	cs := comparisons(f)
	res := comparisonResult{EtcdVersion: etcdVersion(ctx, f.etcdBin), CPUs: runtime.NumCPU(), Seconds: f.duration.Seconds(),
		Clients: f.clients, ValueSize: f.valSize, Rows: make([]row, len(cs))}
	etcd, err := a.compareOn(ctx, f, cs, "etcd", filepath.Join(dir, "etcd"), startEtcd)
	if err != nil {
		return runError{Err: err}
	}
	rdb, err := a.compareOn(ctx, f, cs, "rdb", filepath.Join(dir, "rdb"), startStores)
	if err != nil {
		return runError{Err: err}
	}
	for i, c := range cs {
		r := row{Label: c.label, Etcd: etcd[i].report, Rdb: rdb[i].report, Target: c.target, EtcdError: etcd[i].err, RdbError: rdb[i].err}
		e, d := r.Etcd.OpsPerSecond, r.Rdb.OpsPerSecond
		if c.workload.name == workRawBatchPut {
			e, d = r.Etcd.KeysPerSecond, r.Rdb.KeysPerSecond
		}
		if e > 0 {
			r.Ratio = d / e
		}
		r.Met = c.met != nil && r.EtcdError == "" && r.RdbError == "" && c.met(r.Etcd, r.Rdb)
		res.Rows[i] = r
	}
	if f.output == "json" {
		return writeJSON(a.stdout, res)
	}
	writeComparison(a.stdout, res, cs)
	return nil
}

// outcomeOf is one run's report, or why it failed.
type outcomeOf struct {
	report Report
	err    string
}

// compareOn starts one kind of cluster in dir, runs every comparison
// against it and stops it. A run that fails is noted and the next one
// goes on; a cluster that does not start, or a process that dies, ends
// the comparison.
func (a *app) compareOn(ctx context.Context, f compareFlags, cs []comparison, kind, dir string,
	start func(ctx context.Context, c *cluster, bin, dir string) ([]string, error)) ([]outcomeOf, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := f.serverBin
	if kind == "etcd" {
		bin = f.etcdBin
	}
	c := &cluster{}
	defer c.stop()
	fmt.Fprintf(a.stderr, "[%s] starting three members in %s\n", kind, dir)
	endpoints, err := start(ctx, c, bin, dir)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	out := make([]outcomeOf, len(cs))
	for i, cmp := range cs {
		p := a.compareParams(f, cmp)
		ns := defaultNamespace(cmp.workload)
		conns := len(endpoints)
		if cmp.clients < conns {
			conns = cmp.clients
		}
		fmt.Fprintf(a.stderr, "[%s] %s: %s, %s\n", kind, cmp.label, plural(cmp.clients, "client"), f.duration)
		b := &app{conns: conns, etcdCas: "put"}
		var targets []Target
		if kind == "etcd" {
			targets, err = b.etcdTargets(endpoints, ns)
		} else {
			targets, err = b.rdbTargets(endpoints, ns)
		}
		if err != nil {
			closeAll(targets)
			return nil, err
		}
		rep := Report{Target: kind, Workload: cmp.workload.name, Namespace: ns, Endpoints: endpoints, Clients: p.clients,
			Conns: len(targets), ValueSize: p.valSize, KeySpace: p.keySpace, Batch: p.batch, ReadRatio: p.readRatio, Seed: p.seed}
		s, elapsed, runErr := run(ctx, p, targets)
		closeAll(targets)
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		if s != nil {
			out[i].report = newReport(rep, s, elapsed)
		}
		if runErr != nil {
			out[i].err = runErr.Error()
			fmt.Fprintf(a.stderr, "[%s] %s: failed: %v\n", kind, cmp.label, runErr)
		} else {
			r := out[i].report
			fmt.Fprintf(a.stderr, "[%s] %s: %s ops/s, %s keys/s, p50 %s, p99 %s, %d errors\n", kind, cmp.label,
				group(int64(r.OpsPerSecond)), group(int64(r.KeysPerSecond)), fmtDur(r.Latency.P50), fmtDur(r.Latency.P99), r.ErrorCount())
		}
		if err := c.exited(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// startEtcd starts three etcd members and returns their client endpoints.
func startEtcd(_ context.Context, c *cluster, bin, dir string) ([]string, error) {
	clients, peers := freeAddrs(3), freeAddrs(3)
	if clients == nil || peers == nil {
		return nil, errNoPort
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, peers[i]))
	}
	for i := range 3 {
		name := fmt.Sprintf("e%d", i+1)
		err := c.start(name, filepath.Join(dir, name+".log"), bin,
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", "http://"+clients[i], "--advertise-client-urls", "http://"+clients[i],
			"--listen-peer-urls", "http://"+peers[i], "--initial-advertise-peer-urls", "http://"+peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "rdb-bench", "--log-level", "error",
			// Room for every run's writes (etcd keeps every revision) and
			// for batches of up to rdb's limit.
			"--quota-backend-bytes", fmt.Sprint(8<<30), "--max-txn-ops", fmt.Sprint(maxBatch))
		if err != nil {
			return nil, err
		}
	}
	return clients, nil
}

// startStores starts three rdb stores in static mode (store 1 bootstraps,
// the others join through it), waits until each serves, and returns their
// endpoints.
func startStores(ctx context.Context, c *cluster, bin, dir string) ([]string, error) {
	addrs := freeAddrs(3)
	if addrs == nil {
		return nil, errNoPort
	}
	for i := range 3 {
		name := fmt.Sprintf("store%d", i+1)
		args := []string{"--store-id", fmt.Sprint(i + 1), "--addr", addrs[i], "--data-dir", filepath.Join(dir, name), "--log-level", "warn"}
		if i > 0 {
			args = append(args, "--peer", "1="+addrs[0])
		}
		if err := c.start(name, filepath.Join(dir, name+".log"), bin, args...); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, addr := range addrs {
		t, err := dialRDB([]string{addr}, "default", security.Files{})
		if err != nil {
			return nil, err
		}
		err = waitServing(ctx, t, c)
		_ = t.Close()
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", addr, err)
		}
	}
	return addrs, nil
}

// waitServing waits until the store serves its default namespace.
func waitServing(ctx context.Context, t *rdbTarget, c *cluster) error {
	for {
		m, err := t.cli.GetMode(ctx, "default")
		if err == nil && m.State != "active" {
			err = fmt.Errorf("default namespace is %s", m.State)
		}
		if err == nil {
			return nil
		}
		if xerr := c.exited(); xerr != nil {
			return xerr
		}
		if err := pause(ctx, 100*time.Millisecond, err); err != nil {
			return err
		}
	}
}

// freeAddrs returns n loopback addresses free a moment ago (nil if none
// could be found).
func freeAddrs(n int) []string {
	var out []string
	seen := map[string]bool{}
	for len(out) < n {
		a, err := testport.Free()
		if err != nil {
			return nil
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// etcdVersion is what `etcd --version` says of itself.
func etcdVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// writeComparison prints compare's table.
func writeComparison(w io.Writer, res comparisonResult, cs []comparison) {
	fmt.Fprintf(w, "etcd %s (3 members) vs rdb (3 stores, static mode), as processes on this machine (%d CPUs);\n", res.EtcdVersion, res.CPUs)
	fmt.Fprintf(w, "%d clients (the last row 1), %d-byte values, %s a run. Throughput in ops/s (keys/s for batches).\n\n",
		res.Clients, res.ValueSize, time.Duration(res.Seconds*float64(time.Second)))
	table := [][]string{{"workload", "etcd", "rdb", "ratio", "target", "met", "etcd p50", "etcd p99", "rdb p50", "rdb p99"}}
	met, targets := 0, 0
	var notes []string
	for i, r := range res.Rows {
		e, d := r.Etcd.OpsPerSecond, r.Rdb.OpsPerSecond
		if cs[i].workload.name == workRawBatchPut {
			e, d = r.Etcd.KeysPerSecond, r.Rdb.KeysPerSecond
		}
		verdict := "-"
		if cs[i].met != nil {
			targets++
			verdict = "no"
			if r.Met {
				verdict = "yes"
				met++
			}
		}
		table = append(table, []string{r.Label,
			rate(e, r.EtcdError), rate(d, r.RdbError), ratio(r.Ratio), r.Target, verdict,
			latency(r.Etcd, r.EtcdError, r.Etcd.Latency.P50), latency(r.Etcd, r.EtcdError, r.Etcd.Latency.P99),
			latency(r.Rdb, r.RdbError, r.Rdb.Latency.P50), latency(r.Rdb, r.RdbError, r.Rdb.Latency.P99)})
		notes = append(notes, runNotes("etcd", r.Label, r.Etcd, r.EtcdError)...)
		notes = append(notes, runNotes("rdb", r.Label, r.Rdb, r.RdbError)...)
	}
	writeTable(w, table)
	fmt.Fprintf(w, "\ntargets met: %d of %d\n", met, targets)
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

func rate(v float64, failed string) string {
	if failed != "" {
		return "failed"
	}
	return group(int64(v))
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

func latency(r Report, failed string, v float64) string {
	if failed != "" || r.Ops == 0 {
		return "-"
	}
	return fmtDur(v)
}

// runNotes are the footnotes of one run: why it failed, or its errors.
func runNotes(kind, label string, r Report, failed string) []string {
	if failed != "" {
		return []string{fmt.Sprintf("%s, %s: %s", kind, label, failed)}
	}
	var out []string
	for code, n := range r.Errors {
		out = append(out, fmt.Sprintf("%s, %s: %d %s errors (first: %s)", kind, label, n, code, r.FirstErrors[code]))
	}
	return out
}

// writeTable prints rows as columns two spaces apart, the first column
// aligned left and the others right.
func writeTable(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i == 0 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString("  " + pad + cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}
