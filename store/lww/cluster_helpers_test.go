package lww

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quietPebble discards pebble's own logs.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// openDB opens a pebble DB tuned as the store tunes its own: 16 MiB
// memtables and bloom filters, which the read of every write relies on.
func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	opts := &pebble.Options{
		MemTableSize:                16 << 20,
		MemTableStopWritesThreshold: 4,
		L0StopWritesThreshold:       1000,
		Logger:                      quietPebble{},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// loadClockBound and persistClockBound store the clock's upper bound as the
// store does (store/clockbound.go, unexported there; these tests cannot
// import package store, which imports lww), so a restarted engine's clock
// starts after everything it handed out.
func loadClockBound(db *pebble.DB) (int64, error) {
	v, closer, err := db.Get(keys.HLCUpper())
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	return hlc.DecodeUpper(v)
}

func persistClockBound(db *pebble.DB) func(upper int64) error {
	return func(upper int64) error {
		return db.Set(keys.HLCUpper(), hlc.EncodeUpper(upper), pebble.Sync)
	}
}

// testLogger logs warnings and errors to the test log (everything with
// LWW_TEST_DEBUG=1).
func testLogger(t testing.TB) *zap.Logger {
	level := zapcore.WarnLevel
	if os.Getenv("LWW_TEST_DEBUG") != "" {
		level = zapcore.DebugLevel
	}
	return zaptest.NewLogger(t, zaptest.Level(level))
}

// fakeTime is a physical clock that follows real time plus an offset the
// test can move forward, shared by every node of a cluster.
type fakeTime struct{ offset atomic.Int64 }

func (f *fakeTime) now() int64              { return time.Now().UnixNano() + f.offset.Load() }
func (f *fakeTime) advance(d time.Duration) { f.offset.Add(int64(d)) }

// eventually polls cond until it returns nil or the bound passes.
func eventually(t testing.TB, bound time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", bound, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testServer is a StoreInternal server that delegates the LWW calls to
// the node's current engine.
type testServer struct {
	storepb.UnimplementedStoreInternalServer
	eng atomic.Pointer[Engine]
}

var errNoEngine = status.Error(codes.Unavailable, "no engine")

func (s *testServer) Replicate(stream storepb.StoreInternal_ReplicateServer) error {
	e := s.eng.Load()
	if e == nil {
		return errNoEngine
	}
	return e.HandleReplicate(stream)
}

func (s *testServer) Digest(ctx context.Context, req *storepb.DigestRequest) (*storepb.DigestResponse, error) {
	e := s.eng.Load()
	if e == nil {
		return nil, errNoEngine
	}
	return e.HandleDigest(ctx, req)
}

func (s *testServer) Repair(ctx context.Context, req *storepb.RepairRequest) (*storepb.RepairResponse, error) {
	e := s.eng.Load()
	if e == nil {
		return nil, errNoEngine
	}
	return e.HandleRepair(ctx, req)
}

// node is one store of a test cluster.
type node struct {
	id    uint64
	dir   string
	addr  string
	db    *pebble.DB
	clock *hlc.Clock
	eng   *Engine
	srv   *grpc.Server
	svc   *testServer
	lis   net.Listener // until the node starts
	up    bool
}

// cluster is a set of engines, each with its own pebble DB and gRPC server
// on loopback, connected to one another.
type cluster struct {
	t     testing.TB
	time  *fakeTime
	nodes map[uint64]*node
	ids   []uint64
	tune  func(*Config)

	mu      sync.Mutex
	conns   map[uint64]*grpc.ClientConn
	clients map[uint64]storepb.StoreInternalClient
	cut     map[[2]uint64]bool // cut[{a, b}]: a does not see b
	serving map[uint64]func(string) bool
}

// newCluster starts n nodes, ids 1..n. tune adjusts each engine's config.
func newCluster(t testing.TB, n int, tune func(*Config)) *cluster {
	c := &cluster{
		t:       t,
		time:    &fakeTime{},
		nodes:   map[uint64]*node{},
		tune:    tune,
		conns:   map[uint64]*grpc.ClientConn{},
		clients: map[uint64]storepb.StoreInternalClient{},
		cut:     map[[2]uint64]bool{},
		serving: map[uint64]func(string) bool{},
	}
	for i := 1; i <= n; i++ {
		id := uint64(i)
		nd := &node{id: id, dir: t.TempDir(), svc: &testServer{}}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nd.addr = lis.Addr().String()
		c.nodes[id] = nd
		c.ids = append(c.ids, id)
		nd.lis = lis
		conn, err := grpc.NewClient("passthrough:///"+nd.addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			t.Fatal(err)
		}
		c.conns[id] = conn
		c.clients[id] = storepb.NewStoreInternalClient(conn)
	}
	for _, id := range c.ids {
		c.startNode(c.nodes[id], c.nodes[id].lis)
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) startNode(nd *node, lis net.Listener) {
	t := c.t
	t.Helper()
	nd.db = openDB(t, nd.dir)
	upper, err := loadClockBound(nd.db)
	if err != nil {
		t.Fatal(err)
	}
	nd.clock, err = hlc.New(hlc.Config{StoreID: nd.id, Physical: c.time.now, Persisted: upper, Persist: persistClockBound(nd.db)})
	if err != nil {
		t.Fatal(err)
	}
	id := nd.id
	cfg := Config{
		StoreID:             id,
		DB:                  nd.db,
		Clock:               nd.clock,
		Logger:              testLogger(t).With(zap.Uint64("store", id)),
		Peers:               func() map[uint64]storepb.StoreInternalClient { return c.peersOf(id) },
		Serving:             func(ns string) bool { return c.isServing(id, ns) },
		AntiEntropyInterval: 200 * time.Millisecond,
		FlushInterval:       2 * time.Millisecond,
		RPCTimeout:          2 * time.Second,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	nd.eng, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.svc.eng.Store(nd.eng)
	nd.srv = grpc.NewServer()
	storepb.RegisterStoreInternalServer(nd.srv, nd.svc)
	go nd.srv.Serve(lis)
	nd.eng.Start()
	nd.up = true
}

func (c *cluster) stopNode(nd *node) {
	if !nd.up {
		return
	}
	nd.up = false
	nd.svc.eng.Store(nil)
	nd.srv.Stop()
	if err := nd.eng.Close(); err != nil {
		c.t.Error(err)
	}
	if err := nd.db.Close(); err != nil {
		c.t.Error(err)
	}
}

// stop closes node id: its server, engine and DB.
func (c *cluster) stop(id uint64) { c.stopNode(c.nodes[id]) }

// restart opens node id again on the same address and DB.
func (c *cluster) restart(id uint64) {
	c.t.Helper()
	nd := c.nodes[id]
	c.stopNode(nd)
	var lis net.Listener
	eventually(c.t, 5*time.Second, func() error {
		var err error
		lis, err = net.Listen("tcp", nd.addr)
		return err
	})
	c.startNode(nd, lis)
}

func (c *cluster) close() {
	for _, id := range c.ids {
		c.stopNode(c.nodes[id])
	}
	for _, conn := range c.conns {
		conn.Close()
	}
}

func (c *cluster) peersOf(id uint64) map[uint64]storepb.StoreInternalClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint64]storepb.StoreInternalClient, len(c.clients))
	for pid, cl := range c.clients {
		if pid != id && !c.cut[[2]uint64{id, pid}] {
			out[pid] = cl
		}
	}
	return out
}

func (c *cluster) isServing(id uint64, ns string) bool {
	c.mu.Lock()
	f := c.serving[id]
	c.mu.Unlock()
	return f == nil || f(ns)
}

// isolate hides id from every other node and every other node from id.
func (c *cluster) isolate(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.ids {
		if o != id {
			c.cut[[2]uint64{id, o}] = true
			c.cut[[2]uint64{o, id}] = true
		}
	}
}

// heal removes every partition.
func (c *cluster) heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.cut)
}

func (c *cluster) eng(id uint64) *Engine { return c.nodes[id].eng }

// dump returns every record of ns on node id, tombstones included.
func (c *cluster) dump(id uint64, ns string) []*storepb.LWWRecord {
	c.t.Helper()
	var all []*storepb.LWWRecord
	if err := c.eng(id).Dump(ns, func(recs []*storepb.LWWRecord) error {
		all = append(all, recs...)
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return all
}

// converged reports nil when every node holds the same records of ns and
// the same digests.
func (c *cluster) converged(ns string) error {
	first := c.ids[0]
	want := c.dump(first, ns)
	wantDigest := c.eng(first).Digests(ns)
	for _, id := range c.ids[1:] {
		got := c.dump(id, ns)
		if err := sameRecords(want, got); err != nil {
			return fmt.Errorf("store %d vs store %d: %w", first, id, err)
		}
		if !slices.Equal(wantDigest, c.eng(id).Digests(ns)) {
			return fmt.Errorf("store %d vs store %d: same records, different digests", first, id)
		}
	}
	return nil
}

func sameRecords(a, b []*storepb.LWWRecord) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d records vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) || x.Tombstone != y.Tombstone ||
			hlc.FromProto(x.Ts) != hlc.FromProto(y.Ts) {
			return fmt.Errorf("record %d: %s vs %s", i, recString(x), recString(y))
		}
	}
	return nil
}

func recString(r *storepb.LWWRecord) string {
	if r.Tombstone {
		return fmt.Sprintf("%q=<tombstone>@%s", r.Key, hlc.FromProto(r.Ts))
	}
	return fmt.Sprintf("%q=%q@%s", r.Key, r.Value, hlc.FromProto(r.Ts))
}

// valueOn returns key's live value on node id ("" and false if none).
func (c *cluster) valueOn(id uint64, ns, key string) (string, bool) {
	c.t.Helper()
	rec, found, err := c.eng(id).Get(ns, []byte(key))
	if err != nil {
		c.t.Fatal(err)
	}
	if !found {
		return "", false
	}
	return string(rec.Value), true
}
