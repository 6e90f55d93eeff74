// Package storetest starts real stores in-process for tests: real pebble
// in t.TempDir(), real gRPC on loopback ports, and a transport whose links
// can be cut.
package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/transport"
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
	// Configure, if set, edits each store's config before it opens.
	Configure func(i int, cfg *store.Config)
	// Verbose logs stores through the test logger.
	Verbose bool
}

// Cluster is a set of in-process stores.
type Cluster struct {
	t      testing.TB
	opts   Options
	Faults *Faults

	mu     sync.Mutex
	stores []*store.Store
	cfgs   []store.Config
	conns  []*grpc.ClientConn
}

// NewCluster starts n stores on loopback: store 1 bootstraps, the others
// join through it (static mode), or all register with PD if opts.PD is set.
// It waits until every store serves the default namespace.
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, Faults: NewFaults(), stores: make([]*store.Store, n), cfgs: make([]store.Config, n), conns: make([]*grpc.ClientConn, n)}
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = FreeAddr(t)
	}
	for i := range n {
		id := uint64(i + 1)
		cfg := store.Config{
			StoreID:             id,
			Addr:                addrs[i],
			DataDir:             t.TempDir(),
			NamespaceModes:      opts.NamespaceModes,
			PD:                  opts.PD,
			TickInterval:        50 * time.Millisecond,
			ElectionTicks:       10,
			CompactThreshold:    opts.CompactThreshold,
			AntiEntropyInterval: opts.AntiEntropyInterval,
			Faults:              c.Faults.For(id),
			OnFatal:             func(err error) { t.Errorf("store %d: persistence failed: %v", id, err) },
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
	}
	t.Cleanup(c.StopAll)
	for i := range n {
		c.Start(i)
	}
	c.WaitReady()
	return c
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// N is the number of stores.
func (c *Cluster) N() int { return len(c.cfgs) }

// Addr is store i's address.
func (c *Cluster) Addr(i int) string { return c.cfgs[i].Addr }

// Store returns store i (nil while stopped).
func (c *Cluster) Store(i int) *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[i]
}

// Start opens and starts store i with its config.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	cfg := c.cfgs[i]
	if c.opts.Verbose || os.Getenv("RDB_TEST_VERBOSE") != "" {
		cfg.Logger = zaptest.NewLogger(c.t, zaptest.Level(zap.InfoLevel)).Named(fmt.Sprintf("s%d", cfg.StoreID))
	}
	var s *store.Store
	var err error
	// The port was free a moment ago; retry briefly if the OS is slow to
	// release it after a restart.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err = store.Open(cfg)
		if err == nil {
			err = s.Start()
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start store %d: %v", cfg.StoreID, err)
	}
	c.mu.Lock()
	c.stores[i] = s
	c.mu.Unlock()
}

// Stop stops store i.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.stores[i]
	c.stores[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Stop()
	}
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

func (c *Cluster) conn(i int) *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns[i] == nil {
		conn, err := grpc.NewClient(c.cfgs[i].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.t.Fatalf("dial store %d: %v", i+1, err)
		}
		c.conns[i] = conn
	}
	return c.conns[i]
}

// Cas is a KvCas client of store i.
func (c *Cluster) Cas(i int) kvrpc.KvCasClient { return kvrpc.NewKvCasClient(c.conn(i)) }

// Raw is a KvRaw client of store i.
func (c *Cluster) Raw(i int) kvrpc.KvRawClient { return kvrpc.NewKvRawClient(c.conn(i)) }

// Modes is a RaftService client of store i.
func (c *Cluster) Modes(i int) raftpb.RaftServiceClient {
	return raftpb.NewRaftServiceClient(c.conn(i))
}

// WaitReady waits until every running store answers GetMode("default")
// and every store is a voter of the default namespace's group.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	for i := range c.cfgs {
		if c.Store(i) == nil {
			continue
		}
		Eventually(c.t, 20*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := c.Modes(i).GetMode(ctx, &raftpb.GetModeRequest{Namespace: "default"}); err != nil {
				return err
			}
			st, ok := c.Store(i).GroupStatus("default")
			if !ok || len(st.Voters) != c.N() {
				return fmt.Errorf("default group voters on store %d: %v", i+1, st.Voters)
			}
			return nil
		}, "store %d serves GetMode", i+1)
	}
}

// Eventually polls cond until it returns nil or the timeout passes, then
// fails the test with the last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", fmt.Sprintf(format, args...), timeout, err)
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// Consistently checks cond repeatedly for d and fails the test the first
// time it returns an error: for things that must not happen.
func Consistently(t testing.TB, d time.Duration, cond func() error, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Faults holds per-link faults for every store of a cluster.
type Faults struct {
	mu    sync.Mutex
	links map[[2]uint64]transport.LinkFault
}

// NewFaults returns healthy links.
func NewFaults() *Faults { return &Faults{links: make(map[[2]uint64]transport.LinkFault)} }

// For returns store from's view of its outbound links.
func (f *Faults) For(from uint64) transport.Faults { return storeFaults{f: f, from: from} }

// Set sets the fault of the link from -> to.
func (f *Faults) Set(from, to uint64, lf transport.LinkFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[[2]uint64{from, to}] = lf
}

// Isolate cuts every link to and from store id, among stores 1..n.
func (f *Faults) Isolate(id uint64, n int) {
	for o := uint64(1); o <= uint64(n); o++ {
		if o != id {
			f.Set(id, o, transport.LinkFault{Partitioned: true})
			f.Set(o, id, transport.LinkFault{Partitioned: true})
		}
	}
}

// Heal restores every link.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links = make(map[[2]uint64]transport.LinkFault)
}

type storeFaults struct {
	f    *Faults
	from uint64
}

func (s storeFaults) Link(to uint64) transport.LinkFault {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.links[[2]uint64{s.from, to}]
}
