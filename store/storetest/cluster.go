// Package storetest is the one harness for tests that need stores: real
// stores in-process (real pebble in t.TempDir() or on a crashable in-memory
// file system, real gRPC on loopback), links between them that a test can
// cut or make lossy (Links), and bounded waits (Eventually, Poll). The
// store tests, the PD-mode tests and the fault-injection suite all build
// on Cluster.
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/namespace"
)

// Options tune a test cluster.
type Options struct {
	// NamespaceModes seed every store's table (--namespace-mode).
	NamespaceModes map[string]string
	// CompactThreshold is the Raft log compaction threshold.
	CompactThreshold uint64
	// AntiEntropyInterval for eventual namespaces (default 200ms).
	AntiEntropyInterval time.Duration
	// PD endpoints: stores run in PD mode.
	PD []string
	// CrashableFS runs every store on its own crashable in-memory file
	// system: Crash then keeps only what the store had synced (and, at
	// random, some of what it had not), as a power loss would.
	CrashableFS bool
	// Seed drives the random parts of faults (link losses, crash images).
	Seed uint64
	// Certs, if set, runs the cluster with TLS: each store with its
	// certificate, and the cluster's client connections as "admin".
	Certs *Certs
	// Logger receives the stores' logs (default: none, or the test's log
	// with Verbose or $RDB_TEST_VERBOSE).
	Logger *zap.Logger
	// Configure, if set, edits each store's config before it opens.
	Configure func(i int, cfg *store.Config)
	// Verbose logs stores through the test logger.
	Verbose bool
}

// Cluster is a set of in-process stores.
type Cluster struct {
	t     testing.TB
	opts  Options
	Links *Links

	mu     sync.Mutex
	stores []*store.Store
	cfgs   []store.Config
	fs     []*vfs.MemFS // with CrashableFS
	conns  []*grpc.ClientConn
	crashR *rand.Rand
}

// NewCluster starts n stores on loopback: store 1 bootstraps, the others
// join through it (static mode), or all register with PD if opts.PD is set.
// It waits until every store serves the default namespace, and stops the
// stores when the test ends.
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, t, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.WaitReady()
	return c
}

// Start starts n stores as NewCluster does, returning an error instead of
// failing the test, and does not wait for them to serve (WaitServing).
func Start(ctx context.Context, t testing.TB, n int, opts Options) (*Cluster, error) {
	c := &Cluster{
		t: t, opts: opts, Links: NewLinks(opts.Seed),
		stores: make([]*store.Store, n), cfgs: make([]store.Config, n), fs: make([]*vfs.MemFS, n),
		conns: make([]*grpc.ClientConn, n), crashR: rand.New(rand.NewPCG(opts.Seed, 7)),
	}
	t.Cleanup(c.StopAll)
	logger := opts.Logger
	if logger == nil && (opts.Verbose || os.Getenv("RDB_TEST_VERBOSE") != "") {
		logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	addrs := make([]string, n)
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = addr
	}
	for i := range n {
		id := uint64(i + 1)
		cfg := store.Config{
			StoreID:             id,
			Addr:                addrs[i],
			DataDir:             fmt.Sprintf("/store-%d", id),
			NamespaceModes:      opts.NamespaceModes,
			PD:                  opts.PD,
			Logger:              logger.Named(fmt.Sprintf("s%d", id)),
			TickInterval:        50 * time.Millisecond,
			ElectionTicks:       10,
			CompactThreshold:    opts.CompactThreshold,
			AntiEntropyInterval: opts.AntiEntropyInterval,
			Faults:              c.Links.From(id),
			OnFatal:             func(err error) { t.Errorf("store %d: persistence failed: %v", id, err) },
		}
		creds := insecure.NewCredentials()
		if opts.Certs != nil {
			cfg.TLS = opts.Certs.Store(id)
			var err error
			if creds, err = opts.Certs.Client("admin").ClientCredentials(); err != nil {
				return nil, err
			}
		}
		if opts.CrashableFS {
			c.fs[i] = vfs.NewCrashableMem()
		} else {
			cfg.DataDir = t.TempDir()
		}
		if cfg.AntiEntropyInterval == 0 {
			cfg.AntiEntropyInterval = 200 * time.Millisecond
		}
		if len(opts.PD) == 0 && i > 0 {
			cfg.Peers = map[uint64]string{1: addrs[0]}
		}
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		c.cfgs[i] = cfg
		conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, err
		}
		c.conns[i] = conn
	}
	for i := range n {
		if err := c.StartStore(ctx, i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// N is the number of stores.
func (c *Cluster) N() int { return len(c.cfgs) }

// Addr is store i's address.
func (c *Cluster) Addr(i int) string { return c.cfgs[i].Addr }

// Config is store i's configuration.
func (c *Cluster) Config(i int) store.Config { return c.cfgs[i] }

// Store returns store i (nil while stopped).
func (c *Cluster) Store(i int) *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[i]
}

// ClusterID is the cluster's id as the first running store that knows it
// says (0: none does yet).
func (c *Cluster) ClusterID() uint64 {
	for i := range c.cfgs {
		if s := c.Store(i); s != nil && s.ClusterID() != 0 {
			return s.ClusterID()
		}
	}
	return 0
}

// Reconfigure edits store i's configuration for its next start (stop it
// first).
func (c *Cluster) Reconfigure(i int, edit func(cfg *store.Config)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	edit(&c.cfgs[i])
}

// Running reports whether store i is started.
func (c *Cluster) Running(i int) bool { return c.Store(i) != nil }

// Start opens and starts store i with its config (and data), failing the
// test if it cannot.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.StartStore(ctx, i); err != nil {
		c.t.Fatal(err)
	}
}

// StartStore opens and starts store i unless it runs. The port was the
// store's a moment ago: it retries while the OS releases it, until ctx
// ends.
func (c *Cluster) StartStore(ctx context.Context, i int) error {
	c.mu.Lock()
	if c.stores[i] != nil {
		c.mu.Unlock()
		return nil
	}
	cfg := c.cfgs[i]
	if c.fs[i] != nil {
		cfg.FS = c.fs[i]
	}
	c.mu.Unlock()
	var s *store.Store
	err := Poll(ctx, func() error {
		var err error
		if s, err = store.Open(cfg); err != nil {
			return err
		}
		return s.Start() // a failed Start releases what Open took
	})
	if err != nil {
		return fmt.Errorf("start store %d: %w", cfg.StoreID, err)
	}
	c.mu.Lock()
	c.stores[i] = s
	c.mu.Unlock()
	return nil
}

// Stop stops store i gracefully.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.stores[i]
	c.stores[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// Crash kills store i; its next start sees only what a power loss at the
// moment of the kill would have left: what was synced and, at random, up
// to unsyncedPercent of the blocks that were not. It needs CrashableFS.
func (c *Cluster) Crash(i, unsyncedPercent int) {
	c.mu.Lock()
	s := c.stores[i]
	c.stores[i] = nil
	fs := c.fs[i]
	c.mu.Unlock()
	if s == nil {
		return
	}
	if fs == nil {
		panic("storetest: Crash needs Options.CrashableFS")
	}
	var image *vfs.MemFS
	s.Kill(func() {
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent}
		c.mu.Lock()
		if unsyncedPercent > 0 {
			cfg.RNG = rand.New(rand.NewPCG(c.crashR.Uint64(), c.crashR.Uint64()))
		}
		c.mu.Unlock()
		image = fs.CrashClone(cfg)
	})
	c.mu.Lock()
	c.fs[i] = image
	c.mu.Unlock()
}

// Restart stops and starts store i with the same config and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.Start(i)
}

// StopAll stops every store and closes client connections.
func (c *Cluster) StopAll() {
	for i := range c.stores {
		c.Stop(i)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, conn := range c.conns {
		if conn != nil {
			_ = conn.Close()
			c.conns[i] = nil
		}
	}
}

// Conn is a client connection to store i; it survives restarts.
func (c *Cluster) Conn(i int) grpc.ClientConnInterface {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[i]
}

// Cas is a KvCas client of store i.
func (c *Cluster) Cas(i int) kvrpc.KvCasClient { return kvrpc.NewKvCasClient(c.Conn(i)) }

// Raw is a KvRaw client of store i.
func (c *Cluster) Raw(i int) kvrpc.KvRawClient { return kvrpc.NewKvRawClient(c.Conn(i)) }

// Modes is a RaftService client of store i.
func (c *Cluster) Modes(i int) raftpb.RaftServiceClient {
	return raftpb.NewRaftServiceClient(c.Conn(i))
}

// WaitReady waits until every running store serves, failing the test
// after 20s.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitServing(ctx); err != nil {
		c.t.Fatal(err)
	}
}

// WaitServing waits until every running store answers GetMode for the
// default namespace and the seeded ones, and every strong one's group has
// all its voters on the stores that hold it.
func (c *Cluster) WaitServing(ctx context.Context) error {
	modes := map[string]string{namespace.Default: string(namespace.Strong)}
	for ns, m := range c.opts.NamespaceModes {
		modes[ns] = m
	}
	for i := range c.cfgs {
		err := Poll(ctx, func() error {
			s := c.Store(i)
			if s == nil {
				return nil
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			for ns, mode := range modes {
				if _, err := c.Modes(i).GetMode(cctx, &raftpb.GetModeRequest{Namespace: ns}); err != nil {
					return err
				}
				if mode != string(namespace.Strong) {
					continue
				}
				// Every store holds it, or (PD placement) the stores its
				// row lists.
				want := c.N()
				if rec, ok := s.NamespaceRow(ns); ok && len(rec.GetReplicas()) > 0 {
					if !slices.Contains(rec.GetReplicas(), s.ID()) {
						continue
					}
					want = len(rec.GetReplicas())
				}
				if st, ok := s.GroupStatus(ns); !ok || len(st.Voters) != want {
					return fmt.Errorf("group of %s has voters %v", ns, st.Voters)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store %d does not serve: %w", i+1, err)
		}
	}
	return nil
}
