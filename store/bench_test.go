package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// BenchmarkCAS64 measures CompareAndSwap throughput with 64 concurrent
// clients spread over the three stores of a loopback cluster, and how many
// fsyncs (summed over the three stores) each operation costs.
func BenchmarkCAS64(b *testing.B) {
	benchStrong(b, 64, func(ctx context.Context, c *storetest.Cluster, client, n int) error {
		r, err := c.Cas(client%3).CompareAndSwap(ctx, &kvrpc.CasRequest{
			Namespace: "default", Key: fmt.Sprintf("c%d-%d", client, n), Value: "0123456789abcdef0123456789abcdef",
		})
		if err == nil && !r.GetSuccess() {
			err = fmt.Errorf("CAS refused: %v", r)
		}
		return err
	})
}

// BenchmarkGet64 measures linearizable Get throughput with 64 clients.
func BenchmarkGet64(b *testing.B) {
	benchStrong(b, 64, func(ctx context.Context, c *storetest.Cluster, client, n int) error {
		_, err := c.Cas(client%3).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: fmt.Sprintf("k%d", n%100)})
		return err
	})
}

func benchStrong(b *testing.B, clients int, op func(ctx context.Context, c *storetest.Cluster, client, n int) error) {
	fs := storetest.NewSyncCountingFS()
	c := storetest.NewCluster(b, 3, storetest.Options{Configure: func(i int, cfg *store.Config) {
		cfg.FS = fs
		cfg.TickInterval = 100 * time.Millisecond
	}})
	ctx := context.Background()
	for k := range 100 {
		if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%d", k), Value: "v"}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	syncs0 := fs.Syncs.Load()
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
				if err := op(ctx, c, w, n); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d operations failed", failed.Load())
	}
	syncs := fs.Syncs.Load() - syncs0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(syncs)/elapsed.Seconds(), "fsyncs/s")
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "ops/fsync")
}
