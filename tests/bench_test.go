package tests

// Head-to-head benchmarks, everything as separate processes on this
// machine: three etcd members (pd-server embeds etcd, and etcd's API is
// what its client port serves) against three rdb stores, each loaded by 64
// concurrent clients of its own Go client.
//
//   go test -run XXX -bench . -benchtime 20000x ./tests/

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/storetest"
)

const benchClients = 64

// loadN runs op b.N times spread over benchClients goroutines and reports
// throughput.
func loadN(b *testing.B, op func(ctx context.Context, client, n int) error) {
	ctx := context.Background()
	storetest.RunClients(b, benchClients, func(client, n int) error { return op(ctx, client, n) })
}

// BenchmarkEtcdPut64: three etcd members, 64 clients putting distinct keys.
func BenchmarkEtcdPut64(b *testing.B) {
	cli := etcdProcs(b)
	eventually(b, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "warm", "up")
		return err
	}, "ready")
	loadN(b, func(ctx context.Context, c, n int) error {
		_, err := cli.Put(ctx, fmt.Sprintf("c%d-%d", c, n), "0123456789abcdef0123456789abcdef")
		return err
	})
}

// BenchmarkRdbCAS64: three rdb stores, 64 clients (over one connection per
// store) compare-and-swapping distinct keys of a strong namespace.
func BenchmarkRdbCAS64(b *testing.B) {
	cs := rdbProcs(b)
	loadN(b, func(ctx context.Context, c, n int) error {
		r, err := cs[c%3].cas.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("c%d-%d", c, n), Value: "0123456789abcdef0123456789abcdef"})
		if err == nil && !r.GetSuccess() {
			err = fmt.Errorf("refused")
		}
		return err
	})
}

// BenchmarkRdbRawPut64: the same with eventual writes.
func BenchmarkRdbRawPut64(b *testing.B) {
	cs := rdbProcs(b)
	loadN(b, func(ctx context.Context, c, n int) error {
		_, err := cs[c%3].raw.RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("c%d-%d", c, n), Value: "0123456789abcdef0123456789abcdef"})
		return err
	})
}

// BenchmarkRdbGet64: linearizable reads.
func BenchmarkRdbGet64(b *testing.B) {
	cs := rdbProcs(b)
	for k := range 100 {
		if _, err := cs[0].cas.CompareAndSwap(context.Background(), &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%d", k), Value: "v"}); err != nil {
			b.Fatal(err)
		}
	}
	loadN(b, func(ctx context.Context, c, n int) error {
		_, err := cs[c%3].cas.Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: fmt.Sprintf("k%d", n%100)})
		return err
	})
}

// BenchmarkEtcdGet64: etcd's linearizable reads, for comparison.
func BenchmarkEtcdGet64(b *testing.B) {
	cli := etcdProcs(b)
	eventually(b, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for k := range 100 {
			if _, err := cli.Put(ctx, fmt.Sprintf("k%d", k), "v"); err != nil {
				return err
			}
		}
		return nil
	}, "ready")
	loadN(b, func(ctx context.Context, c, n int) error {
		_, err := cli.Get(ctx, fmt.Sprintf("k%d", n%100))
		return err
	})
}

// etcdProcs starts three etcd members (pd-server processes) and returns a
// client of all three.
func etcdProcs(b *testing.B) *clientv3.Client {
	bin := binaries(b) + "/pd-server"
	dir := b.TempDir()
	var client, peer [3]string
	for i := range 3 {
		client[i], peer[i] = freePort(b), freePort(b)
	}
	initial := fmt.Sprintf("pd1=http://%s,pd2=http://%s,pd3=http://%s", peer[0], peer[1], peer[2])
	for i := range 3 {
		startProc(b, dir, bin, "--name", fmt.Sprintf("pd%d", i+1), "--data-dir", fmt.Sprintf("pd%d", i+1),
			"--client-urls", "http://"+client[i], "--peer-urls", "http://"+peer[i],
			"--initial-cluster", initial, "--log-level", "warn")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: client[:], DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Close() })
	return cli
}

func rdbProcs(b *testing.B) []clients {
	bin := binaries(b) + "/rdb-server"
	dir := b.TempDir()
	addrs := []string{freePort(b), freePort(b), freePort(b)}
	startProc(b, dir, bin, "--store-id", "1", "--addr", addrs[0], "--namespace-mode", "logs=eventual", "--log-level", "warn")
	startProc(b, dir, bin, "--store-id", "2", "--addr", addrs[1], "--peer", "1="+addrs[0], "--namespace-mode", "logs=eventual", "--log-level", "warn")
	startProc(b, dir, bin, "--store-id", "3", "--addr", addrs[2], "--peer", "1="+addrs[0], "--namespace-mode", "logs=eventual", "--log-level", "warn")
	var cs []clients
	for _, a := range addrs {
		c := clientsOf(b, a)
		eventually(b, 30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			m, err := c.modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: "default"})
			if err == nil && m.GetState() != "active" {
				err = fmt.Errorf("default is %s", m.GetState())
			}
			return err
		}, "store %s ready", a)
		cs = append(cs, c)
	}
	return cs
}
