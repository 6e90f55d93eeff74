package tests

// What large values cost a store's memory, on three static-mode
// rdb-server processes: the peak RSS of each store while 500 CAS writes of
// 1 MiB go into one namespace, and the peak RSS and time of a store that
// was down while a namespace grew by -big.gib GiB and catches up (by
// snapshot: the log is compacted by bytes long before).
//
//   go test -run XXX -bench BigValues -benchtime 1x ./tests/ -args -big.gib=2
//
// With -big.profile DIR, each store serves pprof (--metrics-addr) and, each
// time its RSS reaches a new high while the 1 MiB values are written, its
// heap profile and Go memory metrics are saved in DIR (s<N>-heap.pb.gz,
// s<N>-metrics.txt), for go tool pprof.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
)

var (
	bigGiB     = flag.Float64("big.gib", 2, "GiB BenchmarkBigValues writes while a store is down")
	bigProfile = flag.String("big.profile", "", "directory BenchmarkBigValues saves each store's heap profile in, at its peak RSS while writing 1 MiB values")
)

func BenchmarkBigValues(b *testing.B) {
	bin := binaries(b) + "/rdb-server"
	dir := b.TempDir()
	addrs := []string{freePort(b), freePort(b), freePort(b)}
	var procs []*proc
	var debugAddrs []string
	for i, a := range addrs {
		args := []string{"--store-id", strconv.Itoa(i + 1), "--addr", a, "--data-dir", fmt.Sprintf("%s/s%d", dir, i+1), "--log-level", "warn"}
		if i > 0 {
			args = append(args, "--peer", "1="+addrs[0])
		}
		if *bigProfile != "" {
			debugAddrs = append(debugAddrs, freePort(b))
			args = append(args, "--metrics-addr", debugAddrs[i])
		}
		procs = append(procs, startProc(b, dir, bin, args...))
	}
	var cs []clients
	for _, a := range addrs {
		c := clientsOf(b, a)
		waitActive(b, c, "default")
		cs = append(cs, c)
	}
	// Values pebble cannot compress to nothing: random characters of a
	// 64-letter alphabet (6 bits of 8). A repeated letter compressed the
	// namespace, its snapshot and the memory behind them to almost
	// nothing, and measured little.
	seed := uint64(time.Now().UnixNano())
	b.Logf("value seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	vb := make([]byte, 1<<20)
	for i := range vb {
		vb[i] = alphabet[rng.IntN(len(alphabet))]
	}
	val := string(vb)
	write := func(prefix string, n int, c clients) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(n) {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					r, err := c.cas.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "big", Key: fmt.Sprintf("%s%06d", prefix, i), Value: val})
					cancel()
					if err != nil || !r.GetSuccess() {
						b.Errorf("cas %s%d: %v %v", prefix, i, r, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
	}
	waitActive(b, cs[0], "big")
	start := time.Now()
	stopProfiles := profileAtPeak(b, procs, debugAddrs)
	write("a", 500, cs[0])
	b.ReportMetric(500/time.Since(start).Seconds(), "MiB/s")
	stopProfiles()
	var peak float64
	for _, p := range procs {
		peak = max(peak, peakRSS(b, p.cmd.Process.Pid))
	}
	b.ReportMetric(peak, "peak-rss-500MiB-MiB")

	// Store 3 down while the namespace grows; then it catches up.
	procs[2].kill(syscall.SIGKILL)
	n := int(*bigGiB * 1024)
	write("b", n, cs[0])
	restarted := time.Now()
	procs[2].restart(b)
	last := fmt.Sprintf("b%06d", n-1)
	eventually(b, 30*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A raw read on a strong namespace is refused; a linearizable Get
		// through store 3 is served once its replica has the key.
		r, err := cs[2].cas.Get(ctx, &kvrpc.GetRequest{Namespace: "big", Key: last})
		if err == nil && !r.GetFound() {
			err = fmt.Errorf("%s not found", last)
		}
		return err
	}, "store 3 caught up")
	b.ReportMetric(time.Since(restarted).Seconds(), "catch-up-s")
	b.ReportMetric(peakRSS(b, procs[2].cmd.Process.Pid), "peak-rss-catch-up-MiB")
}

// profileAtPeak saves, until stop is called, the heap profile and Go
// memory metrics of each process whenever its RSS grows 8 MiB past the
// highest seen (-big.profile). Without the flag it does nothing.
func profileAtPeak(b *testing.B, procs []*proc, debugAddrs []string) (stop func()) {
	if *bigProfile == "" {
		return func() {}
	}
	if err := os.MkdirAll(*bigProfile, 0o755); err != nil {
		b.Fatal(err)
	}
	save := func(url, path string) {
		resp, err := http.Get(url)
		if err != nil {
			b.Logf("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(path, body, 0o644)
		}
		if err != nil {
			b.Logf("profile: %v", err)
		}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		high := make([]float64, len(procs))
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				for i := range procs {
					b.Logf("store %d: profiled at %.0f MiB RSS", i+1, high[i])
				}
				return
			case <-tick.C:
			}
			for i, p := range procs {
				rss := statusMiB(p.cmd.Process.Pid, "VmRSS:")
				if rss < high[i]+8 {
					continue
				}
				high[i] = rss
				base := fmt.Sprintf("%s/s%d-", *bigProfile, i+1)
				save("http://"+debugAddrs[i]+"/debug/pprof/heap", base+"heap.pb.gz")
				save("http://"+debugAddrs[i]+"/metrics", base+"metrics.txt")
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// statusMiB is a field of a process's /proc status in MiB (0 if absent).
func statusMiB(pid int, field string) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// peakRSS is a process's peak resident memory (VmHWM), in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
