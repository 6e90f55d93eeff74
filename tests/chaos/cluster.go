package chaos

// An in-process cluster for fault injection: real stores on loopback, each
// on its own crashable in-memory file system, with a transport whose every
// link can drop, delay, duplicate or cut messages. A crash keeps only what
// the store had synced (and, at random, some of what it had not), as a
// power loss would.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/transport"
)

// LocalOptions configure a LocalCluster.
type LocalOptions struct {
	N              int
	Seed           uint64
	NamespaceModes map[string]string
	// CompactThreshold is small so that stores that fall behind catch up
	// by snapshot.
	CompactThreshold uint64
	// UnsafeFollowerReads breaks the stores (see store.Config); it has an
	// effect only in builds with the rdb_unsafe_reads tag.
	UnsafeFollowerReads bool
	Logger              *zap.Logger
	Logf                func(string, ...any)
	// OnFatal receives persistence failures of the stores.
	OnFatal func(store int, err error)
}

// LocalCluster is a cluster of in-process stores.
type LocalCluster struct {
	opts  LocalOptions
	Links *Links

	mu      sync.Mutex
	cfgs    []store.Config
	fs      []*vfs.MemFS
	stores  []*store.Store
	conns   []*grpc.ClientConn
	crashMu sync.Mutex
	crashR  *rand.Rand
}

// NewLocalCluster starts opts.N stores: store 1 bootstraps, the others
// join through it. It returns once every store serves.
func NewLocalCluster(ctx context.Context, opts LocalOptions) (*LocalCluster, error) {
	c := &LocalCluster{
		opts:   opts,
		Links:  NewLinks(opts.Seed),
		cfgs:   make([]store.Config, opts.N),
		fs:     make([]*vfs.MemFS, opts.N),
		stores: make([]*store.Store, opts.N),
		conns:  make([]*grpc.ClientConn, opts.N),
		crashR: rand.New(rand.NewPCG(opts.Seed, 7)),
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	addrs := make([]string, opts.N)
	for i := range opts.N {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs[i] = l.Addr().String()
		_ = l.Close()
	}
	for i := range opts.N {
		id := uint64(i + 1)
		c.fs[i] = vfs.NewCrashableMem()
		c.cfgs[i] = store.Config{
			StoreID:             id,
			Addr:                addrs[i],
			DataDir:             fmt.Sprintf("/store-%d", id),
			NamespaceModes:      opts.NamespaceModes,
			Logger:              logger.Named(fmt.Sprintf("s%d", id)),
			Faults:              c.Links.From(id),
			TickInterval:        50 * time.Millisecond,
			ElectionTicks:       10,
			CompactThreshold:    opts.CompactThreshold,
			RequestTimeout:      5 * time.Second,
			AntiEntropyInterval: 200 * time.Millisecond,
			UnsafeFollowerReads: opts.UnsafeFollowerReads,
			OnFatal: func(err error) {
				if opts.OnFatal != nil {
					opts.OnFatal(int(id-1), err)
				}
			},
		}
		if i > 0 {
			c.cfgs[i].Peers = map[uint64]string{1: addrs[0]}
		}
		conn, err := grpc.NewClient(addrs[i], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		c.conns[i] = conn
	}
	for i := range opts.N {
		if err := c.Start(ctx, i); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitServing(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// N is the number of stores.
func (c *LocalCluster) N() int { return len(c.cfgs) }

// Conn is a client connection to store i.
func (c *LocalCluster) Conn(i int) grpc.ClientConnInterface { return c.conns[i] }

// Running reports whether store i is up.
func (c *LocalCluster) Running(i int) bool { return c.Store(i) != nil }

// Store returns store i, nil while it is down.
func (c *LocalCluster) Store(i int) *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[i]
}

// Start opens store i on its file system and starts it.
func (c *LocalCluster) Start(ctx context.Context, i int) error {
	c.mu.Lock()
	if c.stores[i] != nil {
		c.mu.Unlock()
		return nil
	}
	cfg := c.cfgs[i]
	cfg.FS = c.fs[i]
	c.mu.Unlock()
	var s *store.Store
	var err error
	// The port was ours a moment ago; retry while the OS releases it.
	for {
		s, err = store.Open(cfg)
		if err == nil {
			if err = s.Start(); err != nil {
				s.Stop()
			}
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("start store %d: %w", i+1, err)
	}
	c.mu.Lock()
	c.stores[i] = s
	c.mu.Unlock()
	return nil
}

// Crash kills store i; its next start sees only what a power loss at the
// moment of the kill would have left: what was synced and, at random, up
// to unsyncedPercent of the blocks that were not.
func (c *LocalCluster) Crash(i, unsyncedPercent int) {
	c.mu.Lock()
	s := c.stores[i]
	c.stores[i] = nil
	fs := c.fs[i]
	c.mu.Unlock()
	if s == nil {
		return
	}
	var image *vfs.MemFS
	s.Kill(func() {
		c.crashMu.Lock()
		defer c.crashMu.Unlock()
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent}
		if unsyncedPercent > 0 {
			cfg.RNG = rand.New(rand.NewPCG(c.crashR.Uint64(), c.crashR.Uint64()))
		}
		image = fs.CrashClone(cfg)
	})
	c.mu.Lock()
	c.fs[i] = image
	c.mu.Unlock()
}

// Stop stops store i gracefully.
func (c *LocalCluster) Stop(i int) {
	c.mu.Lock()
	s := c.stores[i]
	c.stores[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// Close stops every store and closes the client connections.
func (c *LocalCluster) Close() {
	for i := range c.cfgs {
		c.Stop(i)
	}
	for _, conn := range c.conns {
		if conn != nil {
			_ = conn.Close()
		}
	}
}

// WaitServing waits until every running store answers for the namespaces
// and is a voter of every strong namespace's group.
func (c *LocalCluster) WaitServing(ctx context.Context) error {
	for i := range c.cfgs {
		err := poll(ctx, func() error {
			s := c.Store(i)
			if s == nil {
				return nil
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			for ns, mode := range c.opts.NamespaceModes {
				if _, err := raftpb.NewRaftServiceClient(c.conns[i]).GetMode(cctx, &raftpb.GetModeRequest{Namespace: ns}); err != nil {
					return err
				}
				if mode != "strong" {
					continue
				}
				if st, ok := s.GroupStatus(ns); !ok || len(st.Voters) != c.N() {
					return fmt.Errorf("store %d: group of %s has voters %v", i+1, ns, st.Voters)
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

// poll calls cond until it succeeds or ctx ends.
func poll(ctx context.Context, cond func() error) error {
	wait := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// Links holds the fault of every store-to-store link. Losses and
// duplicates are drawn from the run's seed.
type Links struct {
	mu    sync.Mutex
	rng   *rand.Rand
	links map[[2]uint64]LinkFault
}

// LinkFault is what happens on one link: cut, or each batch of messages
// lost or sent twice with a probability, and delayed.
type LinkFault struct {
	Cut   bool
	Loss  float64
	Dup   float64
	Delay time.Duration
}

// NewLinks returns healthy links.
func NewLinks(seed uint64) *Links {
	return &Links{rng: rand.New(rand.NewPCG(seed, 3)), links: map[[2]uint64]LinkFault{}}
}

// Set sets the fault of the link from -> to (store ids).
func (l *Links) Set(from, to uint64, f LinkFault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.links[[2]uint64{from, to}] = f
}

// Heal makes every link healthy.
func (l *Links) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.links)
}

// From is store from's view of its outgoing links.
func (l *Links) From(from uint64) transport.Faults { return linksFrom{l, from} }

type linksFrom struct {
	l    *Links
	from uint64
}

// Link decides the fate of one send: the transport asks before every
// batch of Raft messages, snapshot and call.
func (f linksFrom) Link(to uint64) transport.LinkFault {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	lf, ok := f.l.links[[2]uint64{f.from, to}]
	if !ok {
		return transport.LinkFault{}
	}
	out := transport.LinkFault{Partitioned: lf.Cut, Delay: lf.Delay}
	if lf.Loss > 0 && f.l.rng.Float64() < lf.Loss {
		out.Partitioned = true
	}
	if lf.Dup > 0 && f.l.rng.Float64() < lf.Dup {
		out.DupRate = 1
	}
	return out
}
