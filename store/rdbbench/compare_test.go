package rdbbench

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rdb-project/rdb/store/storetest"
)

// TestComparisonTable: the table holds every row with its throughputs,
// ratio, target and verdict, and notes why a run failed.
func TestComparisonTable(t *testing.T) {
	f := compareFlags{clients: 64, batch: 100, readRatio: 0.5}
	cs := comparisons(f)
	rep := func(ops, keys, p50 float64) Report {
		return Report{Ops: 100, OpsPerSecond: ops, KeysPerSecond: keys, Latency: Latency{P50: p50, P99: 4 * p50}}
	}
	res := comparisonResult{EtcdVersion: "3.7.3", CPUs: 2, Seconds: 20, Clients: 64, ValueSize: 256, Rows: make([]row, len(cs))}
	for i, c := range cs {
		r := row{Label: c.label, Target: c.target, Etcd: rep(1000, 1000, 2), Rdb: rep(2500, 2500, 1.5)}
		if c.workload.name == workRawBatchPut {
			r.Etcd, r.Rdb = rep(200, 20000, 200), Report{}
			r.RdbError = "rawbatchput: the cluster answers Unimplemented: no"
		}
		r.Ratio = r.Rdb.OpsPerSecond / r.Etcd.OpsPerSecond
		r.Met = c.met != nil && r.RdbError == "" && c.met(r.Etcd, r.Rdb)
		res.Rows[i] = r
	}
	var b bytes.Buffer
	writeComparison(&b, res, cs)
	// Compared with the spacing collapsed: the columns' widths follow the
	// cells.
	var lines []string
	for l := range strings.SplitSeq(b.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	out := strings.Join(lines, "\n")
	for _, want := range []string{
		"etcd 3.7.3 (3 members) vs rdb (3 stores",
		"\nworkload etcd rdb ratio target met etcd p50 etcd p99 rdb p50 rdb p99\n",
		"\ncas vs etcd put 1,000 2,500 2.50x >= 2x yes 2.00ms 8.00ms 1.50ms 6.00ms\n",
		"\nrawput vs etcd put 1,000 2,500 2.50x >= 3x no 2.00ms",
		"\nrawget vs etcd serializable get 1,000 2,500 2.50x - - 2.00ms",
		"\nrawbatchput, 100 keys (keys/s) 20,000 failed - >= 100,000 keys/s no 200ms 800ms - -\n",
		"\ncas vs etcd put, 1 client 1,000 2,500 2.50x p50 <= etcd's yes 2.00ms 8.00ms 1.50ms 6.00ms\n",
		"\ntargets met: 3 of 5\n",
		"\nrdb, rawbatchput, 100 keys (keys/s): rawbatchput: the cluster answers Unimplemented",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	// The columns line up: every line of the table is as long as the
	// header.
	tableLines := strings.Split(b.String(), "\n")[3:11]
	for _, l := range tableLines[1:] {
		if utf8.RuneCountInString(l) != utf8.RuneCountInString(tableLines[0]) {
			t.Fatalf("table rows of different widths:\n%s", strings.Join(tableLines, "\n"))
		}
	}
}

// TestClusterProcesses: a process that exits early is reported with its
// log, and stop ends the others, even one that ignores SIGTERM.
func TestClusterProcesses(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	c := &cluster{grace: time.Second}
	defer c.stop()
	if err := c.start("stubborn", filepath.Join(dir, "stubborn.log"), sh, "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"); err != nil {
		t.Fatal(err)
	}
	if err := c.start("quitter", filepath.Join(dir, "quitter.log"), sh, "-c", "echo bad flag; exit 3"); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		if c.exited() == nil {
			return errors.New("no process has exited")
		}
		return nil
	}, "the quitter's exit is seen")
	if err := c.exited(); !strings.Contains(err.Error(), "quitter exited (exit status 3)") || !strings.Contains(err.Error(), "bad flag") {
		t.Fatalf("exited: %v", err)
	}
	stubborn := c.procs[0]
	began := time.Now()
	c.stop()
	if took := time.Since(began); took < c.grace {
		t.Fatalf("stop took %v: the stubborn process was not given its grace", took)
	}
	select {
	case <-stubborn.done:
	default:
		t.Fatal("stop returned with a process running")
	}
	if err := stubborn.cmd.Process.Signal(syscall.Signal(0)); err == nil {
		t.Fatal("the stubborn process still exists")
	}
	if c.exited() != nil {
		t.Fatal("processes that stop was asked to end count as exited early")
	}
}
