package tests

// What many idle namespaces cost, on three static-mode rdb-server
// processes (or, with -idle.pd, a pd-server and three PD-mode stores): how fast they are created, the CPU and memory each store
// spends while they sit idle, CAS latency on a namespace in use beside
// them, and how soon a restarted store serves a CAS on one of them.
//
//   go test -run XXX -bench IdleNamespaces -benchtime 1x ./tests/ -args -idle.namespaces=100000
//   go test -run XXX -bench IdleNamespaces -benchtime 1x ./tests/ -args -idle.namespaces=100000 -idle.pd
//   ... -idle.memory-limit 1536MiB   (the stores run with --memory-limit)

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
)

var (
	idleNamespaces = flag.Int("idle.namespaces", 5000, "strong namespaces BenchmarkIdleNamespaces creates")
	idleWindow     = flag.Duration("idle.window", 20*time.Second, "how long BenchmarkIdleNamespaces measures idle CPU")
	idlePD         = flag.Bool("idle.pd", false, "BenchmarkIdleNamespaces runs a placement driver and PD-mode stores")
	idleKeep       = flag.Bool("idle.keep", false, "BenchmarkIdleNamespaces keeps its data directories (and says where)")
	idleMemLimit   = flag.String("idle.memory-limit", "", "--memory-limit for BenchmarkIdleNamespaces's stores (default: none)")
)

// BenchmarkIdleNamespaces reports namespaces created per second, idle CPU
// (percent of one core) and RSS (MiB) of the busiest store, CAS p50/p99 on
// "default" with the namespaces idle, and the seconds a SIGKILLed and
// restarted store takes to serve a CAS on a random namespace.
func BenchmarkIdleNamespaces(b *testing.B) {
	n := *idleNamespaces
	seed := uint64(time.Now().UnixNano())
	b.Logf("%d namespaces, seed %d", n, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	bin := binaries(b) + "/rdb-server"
	dir := b.TempDir()
	if *idleKeep {
		var err error
		if dir, err = os.MkdirTemp("", "rdb-idle-"); err != nil {
			b.Fatal(err)
		}
		b.Logf("data directories kept in %s", dir)
	}
	addrs := []string{freePort(b), freePort(b), freePort(b)}
	metricsAddrs := []string{freePort(b), freePort(b), freePort(b)}
	var procs []*proc
	var pd *proc
	if *idlePD {
		pdAddr := freePort(b)
		pd = startProc(b, dir, binaries(b)+"/pd-server", "--name", "pd1", "--data-dir", dir+"/pd1",
			"--client-urls", "http://"+pdAddr, "--peer-urls", "http://"+freePort(b), "--form-settle", "1s", "--log-level", "warn", "--enable-pprof")
		for i, a := range addrs {
			args := []string{"--store-id", strconv.Itoa(i + 1), "--addr", a,
				"--data-dir", fmt.Sprintf("%s/s%d", dir, i+1), "--pd", pdAddr, "--log-level", "warn", "--metrics-addr", metricsAddrs[i]}
			if *idleMemLimit != "" {
				args = append(args, "--memory-limit", *idleMemLimit)
			}
			procs = append(procs, startProc(b, dir, bin, args...))
		}
	} else {
		for i, a := range addrs {
			args := []string{"--store-id", strconv.Itoa(i + 1), "--addr", a, "--data-dir", fmt.Sprintf("%s/s%d", dir, i+1), "--log-level", "warn",
				"--metrics-addr", metricsAddrs[i]}
			if i > 0 {
				args = append(args, "--peer", "1="+addrs[0])
			}
			if *idleMemLimit != "" {
				args = append(args, "--memory-limit", *idleMemLimit)
			}
			procs = append(procs, startProc(b, dir, bin, args...))
		}
	}
	var cs []clients
	for _, a := range addrs {
		c := clientsOf(b, a)
		waitActive(b, c, "default")
		cs = append(cs, c)
	}
	empty := casLatency(b, cs[0], "default", 2000)

	// Create: 64 clients spread over the stores, each GetMode creating a
	// strong namespace.
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cs[w%3].modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: fmt.Sprintf("ns%06d", i)})
				cancel()
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	created := time.Since(start)
	if failed.Load() > 0 {
		b.Fatalf("%d of %d creations failed", failed.Load(), n)
	}
	b.ReportMetric(float64(n)/created.Seconds(), "created/s")

	// Every group formed (a CAS on the last namespace is served), then
	// left alone.
	waitActive(b, cs[0], fmt.Sprintf("ns%06d", n-1))
	time.Sleep(5 * time.Second) // let the groups fall asleep before measuring
	var cpu, rss float64
	for _, p := range procs {
		c, r := idleUsage(b, p.cmd.Process.Pid, *idleWindow)
		cpu, rss = max(cpu, c), max(rss, r)
	}
	b.ReportMetric(cpu, "idle-cpu-%")
	b.ReportMetric(rss, "rss-MiB")
	if pd != nil {
		c, r := idleUsage(b, pd.cmd.Process.Pid, *idleWindow)
		b.ReportMetric(c, "pd-idle-cpu-%")
		b.ReportMetric(r, "pd-rss-MiB")
	}

	// The stores' GC cycles during the CAS run: at 100,000 namespaces a
	// cycle marks a large live heap, and calls made during one are slower.
	gc0 := gcCycles(b, metricsAddrs)
	busy := casLatency(b, cs[0], "default", 2000)
	b.ReportMetric(float64(gcCycles(b, metricsAddrs)-gc0), "gc-cycles-during-cas")
	b.ReportMetric(float64(empty[0].Microseconds())/1000, "empty-p50-ms")
	b.ReportMetric(float64(empty[1].Microseconds())/1000, "empty-p99-ms")
	b.ReportMetric(float64(busy[0].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(busy[1].Microseconds())/1000, "p99-ms")

	// Restart store 2 and time a CAS on a random namespace through it.
	procs[1].kill(syscall.SIGKILL)
	restarted := time.Now()
	procs[1].restart(b)
	ns := fmt.Sprintf("ns%06d", rng.IntN(n))
	lastErr := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cs[1].cas.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: "k", Value: "v"})
		cancel()
		if err != nil && err.Error() != lastErr {
			// What the restarted store answers, as it changes: where the
			// time goes.
			lastErr = err.Error()
			b.Logf("%.1fs after restart, CAS on %s: %v", time.Since(restarted).Seconds(), ns, err)
		}
		if err == nil {
			// Served: an answer, success or not (a CAS retried after a
			// timeout may find its own first write).
			break
		}
		if time.Since(restarted) > 5*time.Minute {
			b.Fatalf("restarted store serves no CAS on %s after 5m: %v", ns, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportMetric(time.Since(restarted).Seconds(), "restart-to-cas-s")
}

// waitActive waits until ns is active through c.
func waitActive(b *testing.B, c clients, ns string) {
	eventually(b, 5*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := c.modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: ns})
		if err == nil && m.GetState() != "active" {
			err = fmt.Errorf("%s is %s", ns, m.GetState())
		}
		return err
	}, "%s active", ns)
}

// casLatency runs count CASes one after another on ns and returns the
// median and 99th percentile.
func casLatency(b *testing.B, c clients, ns string, count int) [2]time.Duration {
	lat := make([]time.Duration, 0, count)
	run := time.Now().UnixNano()
	for i := range count {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		r, err := c.cas.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: fmt.Sprintf("lat-%d-%d", run, i), Value: "v"})
		cancel()
		if err != nil || !r.GetSuccess() {
			b.Fatalf("cas on %s: %v %v", ns, r, err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return [2]time.Duration{lat[len(lat)/2], lat[len(lat)*99/100]}
}

// gcCycles sums the GC cycles the stores serving metrics on addrs have
// completed (go_gc_duration_seconds_count).
func gcCycles(b *testing.B, addrs []string) uint64 {
	var sum uint64
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, a := range addrs {
		resp, err := hc.Get("http://" + a + "/metrics")
		if err != nil {
			b.Fatalf("metrics of %s: %v", a, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatalf("metrics of %s: %v", a, err)
		}
		found := false
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(line, "go_gc_duration_seconds_count "); ok {
				n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					b.Fatalf("metrics of %s: %q: %v", a, line, err)
				}
				sum, found = sum+uint64(n), true
			}
		}
		if !found {
			b.Fatalf("metrics of %s: no go_gc_duration_seconds_count", a)
		}
	}
	return sum
}

// idleUsage measures a process's CPU (percent of one core) over window and
// its resident memory (MiB) at the end.
func idleUsage(b *testing.B, pid int, window time.Duration) (float64, float64) {
	t0, c0 := time.Now(), cpuTicks(b, pid)
	time.Sleep(window)
	t1, c1 := time.Now(), cpuTicks(b, pid)
	const hz = 100 // USER_HZ
	cpu := float64(c1-c0) / hz / t1.Sub(t0).Seconds() * 100
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var rss float64
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rss = kb / 1024
		}
	}
	return cpu, rss
}

// cpuTicks is utime+stime of a process, in clock ticks.
func cpuTicks(b *testing.B, pid int) uint64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces), from field 3.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}
