package rdbbench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/rdbbench"
	"github.com/rdb-project/rdb/store/storetest"
)

func TestMain(m *testing.M) { pdtest.VerifyTestMain(m) }

type result struct {
	code           int
	stdout, stderr string
}

// bench runs the command tree in-process.
func bench(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := rdbbench.Run(ctx, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// report runs a workload with -o json and returns its report, failing the
// test unless it succeeded.
func report(t *testing.T, args ...string) rdbbench.Report {
	t.Helper()
	r := bench(t, append(args, "-o", "json")...)
	if r.code != rdbbench.ExitOK {
		t.Fatalf("rdb-bench %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	var rep rdbbench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("rdb-bench %s: not one JSON object: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	return rep
}

// checkReport asserts what every successful run's report must say.
func checkReport(t *testing.T, rep rdbbench.Report, workload string, ops int64) {
	t.Helper()
	if rep.Workload != workload {
		t.Errorf("workload %q, want %q", rep.Workload, workload)
	}
	if ops > 0 && rep.Ops != ops {
		t.Errorf("%s: %d ops, want %d", workload, rep.Ops, ops)
	}
	if rep.Ops == 0 || rep.Seconds <= 0 || rep.OpsPerSecond <= 0 {
		t.Errorf("%s: %d ops in %vs (%v ops/s)", workload, rep.Ops, rep.Seconds, rep.OpsPerSecond)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("%s: errors %v (first: %v)", workload, rep.Errors, rep.FirstErrors)
	}
	if rep.Keys != rep.Ops*int64(rep.Batch) {
		t.Errorf("%s: %d keys for %d ops of %d keys", workload, rep.Keys, rep.Ops, rep.Batch)
	}
	if rep.Reads+rep.Writes != rep.Ops {
		t.Errorf("%s: %d reads and %d writes for %d ops", workload, rep.Reads, rep.Writes, rep.Ops)
	}
	if rep.CasMismatches != 0 || rep.NotFound != 0 {
		t.Errorf("%s: %d CAS mismatches and %d keys not found, want none (the key space is written first)", workload, rep.CasMismatches, rep.NotFound)
	}
	l := rep.Latency
	ordered := []float64{l.Min, l.P50, l.P90, l.P99, l.P999, l.Max}
	for i := 1; i < len(ordered); i++ {
		if ordered[i] < ordered[i-1] || ordered[0] <= 0 {
			t.Errorf("%s: latencies min, p50, p90, p99, p99.9, max not ordered: %v", workload, ordered)
			break
		}
	}
	if l.Mean < l.Min || l.Mean > l.Max {
		t.Errorf("%s: mean %v outside [%v, %v]", workload, l.Mean, l.Min, l.Max)
	}
	var counted uint64
	for _, b := range rep.Histogram {
		counted += b.Count
	}
	if counted != uint64(rep.Ops) {
		t.Errorf("%s: histogram counts %d ops, want %d", workload, counted, rep.Ops)
	}
}

// TestWorkloadsAgainstACluster runs every workload through the command
// tree against three in-process stores.
func TestWorkloadsAgainstACluster(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	endpoints := "--endpoints=" + strings.Join([]string{c.Addr(0), c.Addr(1), c.Addr(2)}, ",")
	small := []string{endpoints, "--clients", "4", "--key-space", "40", "--val-size", "32"}

	for _, w := range []struct {
		name  string
		extra []string
		mode  string
		ns    string
	}{
		{"cas", nil, "strong", "bench"},
		{"get", nil, "strong", "bench"},
		{"mixed", []string{"--read-ratio", "0.7"}, "strong", "bench"},
		{"rawput", nil, "eventual", "bench-raw"},
		// Through one store: its reads find what the pre-fill wrote at
		// once, where another store may not have it yet (replication is
		// asynchronous).
		{"rawget", []string{"--endpoints=" + c.Addr(1)}, "eventual", "bench-raw"},
	} {
		rep := report(t, append(append([]string{w.name, "--total", "300"}, small...), w.extra...)...)
		checkReport(t, rep, w.name, 300)
		stores := 3
		if w.name == "rawget" {
			stores = 1
		}
		if rep.Target != "rdb" || rep.Namespace != w.ns || rep.Clients != 4 || rep.Conns != stores || len(rep.Endpoints) != stores {
			t.Errorf("%s: report header %+v", w.name, rep)
		}
		m, err := c.Modes(0).GetMode(context.Background(), &raftpb.GetModeRequest{Namespace: w.ns})
		if err != nil || m.GetMode() != w.mode {
			t.Errorf("%s: namespace %s is %v (%v), want %s", w.name, w.ns, m.GetMode(), err, w.mode)
		}
		switch w.name {
		case "cas", "rawput":
			if rep.Writes != 300 {
				t.Errorf("%s: %d writes, want 300", w.name, rep.Writes)
			}
		case "get", "rawget":
			if rep.Reads != 300 {
				t.Errorf("%s: %d reads, want 300", w.name, rep.Reads)
			}
		case "mixed":
			if rep.Reads < 150 || rep.Writes < 30 {
				t.Errorf("mixed at 70%% reads: %d reads, %d writes", rep.Reads, rep.Writes)
			}
		}
	}

	// The pre-fill wrote the whole key space.
	for k := range 40 {
		r, err := c.Cas(0).Get(context.Background(), &kvrpc.GetRequest{Namespace: "bench", Key: fmt.Sprintf("key-%d", k)})
		if err != nil || !r.GetFound() || len(r.GetValue()) != 32 {
			t.Fatalf("key-%d after the runs: %v, %v", k, r, err)
		}
	}

	// For a second: the run lasts about that long.
	rep := report(t, append([]string{"cas", "--duration", "1s"}, small...)...)
	checkReport(t, rep, "cas", 0)
	if rep.Seconds < 1 || rep.Seconds > 10 {
		t.Errorf("a 1s run took %vs", rep.Seconds)
	}

	// The table says the same for people.
	r := bench(t, append([]string{"get", "--total", "100"}, small...)...)
	for _, want := range []string{"get on rdb, namespace bench", "4 clients over 3 connections", "100 in", "errors          none", "p99.9", "∎"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("table (exit %d) lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
}

// TestNamespaceIsSwitchedToTheWorkloadsMode: a workload finds its
// namespace in the other mode, switches it and runs once it is active.
func TestNamespaceIsSwitchedToTheWorkloadsMode(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	endpoints := "--endpoints=" + c.Addr(0) + "," + c.Addr(1)
	for _, w := range []struct{ workload, mode string }{{"cas", "strong"}, {"rawput", "eventual"}, {"get", "strong"}} {
		rep := report(t, w.workload, endpoints, "--namespace", "flip", "--total", "100", "--clients", "2", "--key-space", "10")
		checkReport(t, rep, w.workload, 100)
		for i := range 3 {
			m, err := c.Modes(i).GetMode(context.Background(), &raftpb.GetModeRequest{Namespace: "flip"})
			if err != nil || m.GetMode() != w.mode {
				t.Fatalf("after %s: store %d has flip %v (%v), want %s", w.workload, i+1, m.GetMode(), err, w.mode)
			}
		}
	}
}

// TestRawBatchPut runs batches of 10 keys.
func TestRawBatchPut(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"bench-raw": "eventual"}})
	args := []string{"rawbatchput", "--endpoints=" + c.Addr(0) + "," + c.Addr(2), "--total", "50", "--clients", "4", "--batch", "10", "--key-space", "100"}
	rep := report(t, args...)
	checkReport(t, rep, "rawbatchput", 50)
	if rep.Keys != 500 || rep.KeysPerSecond <= rep.OpsPerSecond {
		t.Fatalf("50 batches of 10: %d keys, %v keys/s, %v ops/s", rep.Keys, rep.KeysPerSecond, rep.OpsPerSecond)
	}
}

// TestCPUProfile writes a profile of the run: a gzip stream (pprof's
// format), and a path that cannot be created is an error before any load.
func TestCPUProfile(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	path := filepath.Join(t.TempDir(), "cpu.prof")
	args := []string{"cas", "--endpoints=" + c.Addr(0), "--total", "100", "--clients", "2", "--cpuprofile", path}
	checkReport(t, report(t, args...), "cas", 100)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile of %d bytes is not gzip (pprof's format)", len(b))
	}
	bad := []string{"cas", "--endpoints=" + c.Addr(0), "--total", "10", "--cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.prof")}
	if r := bench(t, bad...); r.code == rdbbench.ExitOK || !strings.Contains(r.stderr, "--cpuprofile") {
		t.Fatalf("unwritable --cpuprofile: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestEtcdMode runs every workload against an embedded etcd with etcd's
// client.
func TestEtcdMode(t *testing.T) {
	pd := pdtest.NewCluster(t, 1)
	etcd := "--etcd=" + pd.Endpoints()
	small := []string{etcd, "--clients", "4", "--key-space", "40", "--val-size", "32", "--namespace", "b"}
	for _, w := range [][]string{{"cas"}, {"cas", "--etcd-cas", "txn"}, {"get"}, {"mixed"}, {"rawput"}, {"rawget"}, {"rawbatchput", "--batch", "10"}} {
		rep := report(t, append(append(w, "--total", "200"), small...)...)
		checkReport(t, rep, w[0], 200)
		if rep.Target != "etcd" || rep.Conns != 1 {
			t.Errorf("%v: target %s over %d connections", w, rep.Target, rep.Conns)
		}
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(pd.Endpoints(), ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "b/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 40 {
		t.Fatalf("%d keys under the namespace's prefix, want the 40 of the key space", len(r.Kvs))
	}
	for _, kv := range r.Kvs {
		if len(kv.Value) != 32 {
			t.Fatalf("%s holds %d bytes, want 32", kv.Key, len(kv.Value))
		}
	}
}

// TestCommandLine: wrong command lines exit 2 with the reason, and
// $RDB_ENDPOINTS is --endpoints' default.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cas", "--total", "10", "--duration", "1s"}, "not both"},
		{[]string{"cas", "-o", "yaml"}, "-o must be"},
		{[]string{"cas", "--clients", "8", "--key-space", "4"}, "--key-space (4) must be at least --clients (8)"},
		{[]string{"rawbatchput", "--batch", "20000"}, "--batch must be 1 to 10000"},
		{[]string{"mixed", "--read-ratio", "1.5"}, "--read-ratio"},
		{[]string{"cas", "--etcd-cas", "cmp"}, "--etcd-cas"},
		{[]string{"cas", "--cert", "c.pem"}, "go together"},
		{[]string{"scan"}, "unknown command"},
		{[]string{"get", "--endpoints", "http://127.0.0.1:1"}, "want host:port"},
	} {
		r := bench(t, tc.args...)
		if r.code != rdbbench.ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("rdb-bench %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, rdbbench.ExitUsage, tc.want)
		}
	}

	c := storetest.NewCluster(t, 1, storetest.Options{})
	t.Setenv(rdbbench.EndpointsEnv, c.Addr(0))
	rep := report(t, "rawput", "--total", "20", "--clients", "2")
	if len(rep.Endpoints) != 1 || rep.Endpoints[0] != c.Addr(0) {
		t.Fatalf("endpoints %v, want $%s's %s", rep.Endpoints, rdbbench.EndpointsEnv, c.Addr(0))
	}
	// A cluster that cannot be reached: the run fails, bounded.
	if r := bench(t, "rawput", "--endpoints", "127.0.0.1:1", "--total", "1", "--ready-timeout", "1s"); r.code != rdbbench.ExitError {
		t.Fatalf("against nothing: exit %d: %s", r.code, r.stderr)
	}
}

// TestTLS: with the cluster's CA and a certificate, the run goes over TLS;
// an ordinary client's certificate cannot change a mode but runs a
// workload whose namespace has its mode already; without certificates
// nothing runs.
func TestTLS(t *testing.T) {
	certs := storetest.NewCerts(t, 2)
	c := storetest.NewCluster(t, 2, storetest.Options{Certs: certs})
	tlsFlags := func(name string) []string {
		f := certs.Client(name)
		return []string{"--cacert", f.TrustedCAFile, "--cert", f.CertFile, "--key", f.KeyFile}
	}
	base := []string{"--endpoints", c.Addr(0) + "," + c.Addr(1), "--total", "50", "--clients", "2", "--key-space", "10", "--ready-timeout", "5s"}

	// The app may not make bench-raw eventual.
	r := bench(t, append(append([]string{"rawput"}, base...), tlsFlags("app")...)...)
	if r.code != rdbbench.ExitError || !strings.Contains(r.stderr, "needs it eventual") {
		t.Fatalf("rawput as an ordinary client on a strong namespace: exit %d: %s", r.code, r.stderr)
	}
	// The admin may; then the app runs it too.
	checkReport(t, report(t, append(append([]string{"rawput"}, base...), tlsFlags("admin")...)...), "rawput", 50)
	// Through one store, as in TestWorkloadsAgainstACluster.
	checkReport(t, report(t, append(append([]string{"rawget"}, base...), append(tlsFlags("app"), "--endpoints", c.Addr(0))...)...), "rawget", 50)

	if r := bench(t, append([]string{"rawput"}, base...)...); r.code != rdbbench.ExitError {
		t.Fatalf("without certificates against a TLS cluster: exit %d: %s", r.code, r.stderr)
	}
}
