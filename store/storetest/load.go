package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RunClients is a closed-loop load for benchmarks: clients goroutines make
// b.N operations in all, each calling op(client, n) for the next n in
// 1..b.N. It resets the timer before the first operation, stops it after
// the last, fails the benchmark if any operation failed, reports ops/s and
// returns the time the operations took.
func RunClients(b *testing.B, clients int, op func(client, n int) error) time.Duration {
	b.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > b.N {
					return
				}
				if err := op(w, n); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d operations failed", failed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	return elapsed
}
