package lww

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPut64 measures synced Puts from 64 concurrent writers on one
// engine that pushes every write to two peers over gRPC on loopback.
func BenchmarkPut64(b *testing.B) {
	const writers = 64
	c := newCluster(b, 3, func(cfg *Config) { cfg.AntiEntropyInterval = time.Hour })
	waitPeersUp(b, c)
	e := c.eng(1)
	value := make([]byte, 100)
	var seq atomic.Uint64
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			key := fmt.Appendf(nil, "key-%d", seq.Add(1))
			if _, err := e.Put(ctx, "bench", key, value); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	// The peers receive everything (pushes, or a repair if a queue
	// overflowed).
	eventually(b, convergeBound, func() error { return c.converged("bench") })
	st := e.Stats()
	b.ReportMetric(float64(st.Dropped), "dropped")
}
