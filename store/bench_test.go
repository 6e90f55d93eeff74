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
func BenchmarkCAS64(b *testing.B) { benchStrong(b, 64, casOp, benchOptions{}) }

// BenchmarkCAS64TLS is BenchmarkCAS64 with TLS between every client and
// store and between stores.
func BenchmarkCAS64TLS(b *testing.B) { benchStrong(b, 64, casOp, benchOptions{tls: true}) }

func casOp(ctx context.Context, c *storetest.Cluster, client, n int) error {
	r, err := c.Cas(client%3).CompareAndSwap(ctx, &kvrpc.CasRequest{
		Namespace: "default", Key: fmt.Sprintf("c%d-%d", client, n), Value: "0123456789abcdef0123456789abcdef",
	})
	if err == nil && !r.GetSuccess() {
		err = fmt.Errorf("CAS refused: %v", r)
	}
	return err
}

// BenchmarkGet64 measures linearizable Get throughput with 64 clients.
func BenchmarkGet64(b *testing.B) {
	benchStrong(b, 64, func(ctx context.Context, c *storetest.Cluster, client, n int) error {
		_, err := c.Cas(client%3).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: fmt.Sprintf("k%d", n%100)})
		return err
	}, benchOptions{})
}

type benchOptions struct {
	modes map[string]string
	tls   bool
}

func benchStrong(b *testing.B, clients int, op func(ctx context.Context, c *storetest.Cluster, client, n int) error, o benchOptions) {
	fs := storetest.NewSyncCountingFS()
	var certs *storetest.Certs
	if o.tls {
		certs = storetest.NewCerts(b, 3)
	}
	c := storetest.NewCluster(b, 3, storetest.Options{NamespaceModes: o.modes, Certs: certs, Configure: func(i int, cfg *store.Config) {
		cfg.FS = fs
		cfg.TickInterval = 100 * time.Millisecond
		cfg.AntiEntropyInterval = 10 * time.Second // the default
	}})
	ctx := context.Background()
	for k := range 100 {
		if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%d", k), Value: "v"}); err != nil {
			b.Fatal(err)
		}
	}
	syncs0 := fs.Syncs.Load()
	elapsed := storetest.RunClients(b, clients, func(client, n int) error { return op(ctx, c, client, n) })
	syncs := fs.Syncs.Load() - syncs0
	b.ReportMetric(float64(syncs)/elapsed.Seconds(), "fsyncs/s")
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "ops/fsync")
}

// BenchmarkRawPut64 measures eventual RawPut throughput with 64 clients
// spread over the three stores.
func BenchmarkRawPut64(b *testing.B) {
	benchStrong(b, 64, rawPutOp, benchOptions{modes: map[string]string{"logs": "eventual"}})
}

// BenchmarkRawPut64TLS is BenchmarkRawPut64 with TLS everywhere.
func BenchmarkRawPut64TLS(b *testing.B) {
	benchStrong(b, 64, rawPutOp, benchOptions{modes: map[string]string{"logs": "eventual"}, tls: true})
}

func rawPutOp(ctx context.Context, c *storetest.Cluster, client, n int) error {
	_, err := c.Raw(client%3).RawPut(ctx, &kvrpc.RawPutRequest{
		Namespace: "logs", Key: fmt.Sprintf("c%d-%d", client, n), Value: "0123456789abcdef0123456789abcdef",
	})
	return err
}

// BenchmarkConvergeAfterPartition measures how long a store that was cut
// off while the others took b.N writes needs to hold all of them once the
// partition heals (anti-entropy every 200ms).
func BenchmarkConvergeAfterPartition(b *testing.B) {
	c := storetest.NewCluster(b, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	ctx := context.Background()
	c.Links.Isolate(3, 3)
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > b.N {
					return
				}
				if _, err := c.Raw(w%2).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("k%08d", n), Value: "v"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	start := time.Now()
	c.Links.Heal()
	for {
		resp, err := c.Raw(2).RawScan(ctx, &kvrpc.RawScanRequest{Namespace: "logs", Limit: 1, StartKey: fmt.Sprintf("k%08d", b.N)})
		if err == nil && len(resp.GetKvs()) == 1 {
			if n, _ := countKeys(ctx, c, 2); n >= b.N {
				break
			}
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatal("no convergence in 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(time.Since(start).Seconds()*1000, "ms-to-converge")
}

func countKeys(ctx context.Context, c *storetest.Cluster, i int) (int, error) {
	n, start := 0, ""
	for {
		resp, err := c.Raw(i).RawScan(ctx, &kvrpc.RawScanRequest{Namespace: "logs", StartKey: start, Limit: 10000})
		if err != nil {
			return n, err
		}
		n += len(resp.GetKvs())
		if !resp.GetMore() {
			return n, nil
		}
		start = resp.GetKvs()[len(resp.GetKvs())-1].GetKey() + "\x00"
	}
}

// BenchmarkCAS1 and BenchmarkRawPut1 measure the latency of one client's
// writes (ns/op is the round trip): a strong write waits for a quorum's
// fsyncs, an eventual write for one local fsync.
func BenchmarkCAS1(b *testing.B) {
	benchStrong(b, 1, func(ctx context.Context, c *storetest.Cluster, client, n int) error {
		_, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("one-%d", n), Value: "v"})
		return err
	}, benchOptions{})
}

func BenchmarkRawPut1(b *testing.B) {
	benchStrong(b, 1, func(ctx context.Context, c *storetest.Cluster, client, n int) error {
		_, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("one-%d", n), Value: "v"})
		return err
	}, benchOptions{modes: map[string]string{"logs": "eventual"}})
}
