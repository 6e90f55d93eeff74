// Package store is an rdb store: one pebble DB, a Raft group per strong
// namespace, last-writer-wins replicas of the eventual namespaces, and the
// gRPC services clients and other stores call.
//
// A store runs in one of two modes. In static mode (no placement driver)
// the first store bootstraps a meta Raft group that replicates the mode
// table and the store list; later stores join it through any peer. In PD
// mode the placement driver is the authority for both, and the store
// follows it.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/modeswitch"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/raftstore"
	"github.com/rdb-project/rdb/store/transport"
)

// Config configures a store.
type Config struct {
	// StoreID identifies the store in the cluster; it is its Raft node id.
	StoreID uint64
	// Addr is the address the gRPC server listens on.
	Addr string
	// AdvertiseAddr is the address other stores use (default: Addr).
	AdvertiseAddr string
	// DataDir holds the pebble DB.
	DataDir string
	// Peers are stores to join through (static mode): id -> address.
	Peers map[uint64]string
	// NamespaceModes seed the table when the cluster is first bootstrapped
	// (or, with a PD, when PD does not have the namespace yet).
	NamespaceModes map[string]string
	// PD lists placement driver endpoints; empty means static mode.
	PD []string

	Logger *zap.Logger
	// FS replaces the file system (tests use a crashable one).
	FS vfs.FS
	// Listener, if set, is used instead of listening on Addr.
	Listener net.Listener
	// Faults injects transport faults (tests only).
	Faults transport.Faults

	TickInterval        time.Duration // Raft tick, default 100ms
	ElectionTicks       int           // default 10
	CompactThreshold    uint64        // Raft log entries before compaction, default 10000
	RequestTimeout      time.Duration // default 5s
	AntiEntropyInterval time.Duration // default 10s
	AntiEntropySettle   time.Duration // default AntiEntropyInterval/2
	TombstoneGrace      time.Duration // default 24h
	// OnFatal is called when persistence fails; default: log and exit.
	OnFatal func(error)
	// MetricsAddr, if set, serves Prometheus metrics (/metrics) and pprof
	// (/debug/pprof/) over HTTP.
	MetricsAddr string
	// UnsafeFollowerReads serves Get and Scan from this store's replica
	// without ReadIndex: stale reads. It exists to show that the
	// linearizability checker catches them, and works only in binaries
	// built with the test-only tag rdb_unsafe_reads.
	UnsafeFollowerReads bool
}

func (c *Config) validate() error {
	if c.StoreID == 0 {
		return errors.New("store id must be a positive integer (--store-id)")
	}
	if c.Addr == "" && c.Listener == nil {
		return errors.New("an address to listen on is required (--addr HOST:PORT)")
	}
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.Addr
		if c.Listener != nil {
			c.AdvertiseAddr = c.Listener.Addr().String()
		}
	}
	if c.DataDir == "" {
		c.DataDir = fmt.Sprintf("rdb-store-%d", c.StoreID)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	return nil
}

// Store is one rdb store.
type Store struct {
	cfg   Config
	log   *zap.Logger
	db    *pebble.DB
	clock *hlc.Clock
	raft  *raftstore.RaftStore
	tr    *transport.Transport
	table *modetable.Table
	auth  modetable.Authority
	lww   *lww.Engine
	meta  *metaSM // static mode only
	// driver carries out mode switches (static mode, on the meta leader).
	driver *modeswitch.Driver

	groupsMu sync.RWMutex
	groups   map[uint64]*nsGroup
	// stateChanged is signalled when a group's switch state changes.
	stateChanged chan struct{}

	grpc    *grpc.Server
	lis     net.Listener
	health  *health.Server
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Open opens (or creates) a store's data and prepares its services. Call
// Start to serve.
func Open(cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.FS == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	db, err := openDB(cfg.DataDir, cfg.FS)
	if err != nil {
		return nil, err
	}
	s, err := open(cfg, db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func open(cfg Config, db *pebble.DB) (*Store, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		cfg:    cfg,
		log:    cfg.Logger.With(zap.Uint64("store", cfg.StoreID)),
		db:     db,
		table:  modetable.New(),
		groups: make(map[uint64]*nsGroup),
		ctx:    ctx,

		stateChanged: make(chan struct{}, 1),
		cancel:       cancel,
	}
	if err := s.checkIdent(); err != nil {
		cancel()
		return nil, err
	}
	upper, err := hlc.LoadPersisted(db)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("load clock bound: %w", err)
	}
	if s.clock, err = hlc.New(hlc.Config{StoreID: cfg.StoreID, Persisted: upper, Persist: hlc.PebblePersist(db)}); err != nil {
		cancel()
		return nil, err
	}
	s.tr = transport.New(transport.Config{
		StoreID: cfg.StoreID,
		Logger:  s.log.Named("transport"),
		Resolve: s.resolve,
		Faults:  cfg.Faults,
	})
	if len(cfg.PD) == 0 {
		s.meta = newMetaSM(s)
		s.auth = &staticAuthority{s: s}
	} else {
		if s.auth, err = newPDAuthority(s); err != nil {
			cancel()
			return nil, err
		}
	}
	s.table.OnChange(s.onTableChange)
	s.lww, err = lww.New(lww.Config{
		StoreID:             cfg.StoreID,
		DB:                  db,
		Clock:               s.clock,
		Logger:              s.log.Named("lww"),
		Peers:               s.peerClients,
		Serving:             s.lwwServing,
		Namespaces:          s.eventualNamespaces,
		AntiEntropyInterval: cfg.AntiEntropyInterval,
		AntiEntropySettle:   cfg.AntiEntropySettle,
		TombstoneGrace:      cfg.TombstoneGrace,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	onFatal := cfg.OnFatal
	if onFatal == nil {
		onFatal = func(err error) { s.log.Fatal("persistence failed: stopping", zap.Error(err)) }
	}
	s.raft, err = raftstore.Open(raftstore.Config{
		StoreID:          cfg.StoreID,
		DB:               db,
		Transport:        s.tr,
		Logger:           s.log.Named("raft"),
		NewStateMachine:  s.newStateMachine,
		WantReplica:      s.wantReplica,
		DesiredVoters:    s.desiredVoters,
		OnFatal:          onFatal,
		TickInterval:     cfg.TickInterval,
		ElectionTicks:    cfg.ElectionTicks,
		CompactThreshold: cfg.CompactThreshold,
	})
	if err != nil {
		_ = s.lww.Close()
		cancel()
		return nil, err
	}
	s.tr.SetRaft(s.raft)
	return s, nil
}

// checkIdent makes sure the data dir belongs to this store id.
func (s *Store) checkIdent() error {
	b, ok, err := getValue(s.db, keys.Ident())
	if err != nil {
		return err
	}
	if ok {
		var info storepb.StoreInfo
		if err := proto.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("data dir identity: %w", err)
		}
		if info.GetId() != s.cfg.StoreID {
			return fmt.Errorf("data dir %s belongs to store %d, not store %d: pass --store-id %d or another --data-dir",
				s.cfg.DataDir, info.GetId(), s.cfg.StoreID, info.GetId())
		}
		return nil
	}
	b, err = proto.Marshal(&storepb.StoreInfo{Id: s.cfg.StoreID, Addr: s.cfg.AdvertiseAddr})
	if err != nil {
		return err
	}
	return s.db.Set(keys.Ident(), b, pebble.Sync)
}

// Start serves gRPC and starts the background work: joining or
// bootstrapping (static mode) or following PD.
func (s *Store) Start() error {
	lis := s.cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.lis = lis
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20), grpc.MaxSendMsgSize(64 << 20)}
	if s.cfg.MetricsAddr != "" {
		s.metrics = newMetrics(s)
		opts = append(opts, grpc.UnaryInterceptor(s.metrics.unary))
	}
	s.grpc = grpc.NewServer(opts...)
	raftpb.RegisterRaftServiceServer(s.grpc, &modeService{s: s})
	kvrpc.RegisterKvCasServer(s.grpc, &casService{s: s})
	kvrpc.RegisterKvRawServer(s.grpc, &rawService{s: s})
	storepb.RegisterStoreInternalServer(s.grpc, &internalService{s: s})
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	if s.cfg.MetricsAddr != "" {
		if err := s.serveDebug(s.cfg.MetricsAddr); err != nil {
			_ = lis.Close()
			return fmt.Errorf("metrics address %s: %w", s.cfg.MetricsAddr, err)
		}
	}
	s.raft.Start()
	// Rows loaded from disk did not go through the change hook: make sure
	// every group this store should have exists (a crash may have come
	// between a row and its group's bootstrap).
	for _, rec := range s.table.List() {
		s.onTableChange(nil, rec)
	}
	s.lww.Start()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("grpc server", zap.Error(err))
		}
	}()
	var err error
	if s.meta != nil {
		err = s.startStatic()
	} else {
		err = s.startPD()
	}
	if err != nil {
		s.Stop()
		return err
	}
	s.log.Info("store started", zap.String("addr", s.lis.Addr().String()), zap.String("data_dir", s.cfg.DataDir),
		zap.Bool("pd_mode", s.meta == nil))
	return nil
}

// Addr is the address the store serves on.
func (s *Store) Addr() string {
	if s.lis == nil {
		return s.cfg.Addr
	}
	return s.lis.Addr().String()
}

// ID is the store's id.
func (s *Store) ID() uint64 { return s.cfg.StoreID }

// Stop shuts the store down: it stops serving, then stops the Raft loop,
// replication and the DB.
func (s *Store) Stop() {
	s.once.Do(func() {
		s.cancel()
		if s.health != nil {
			s.health.Shutdown()
		}
		if s.grpc != nil {
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				s.grpc.Stop()
			}
		}
		s.wg.Wait()
		s.raft.Stop()
		_ = s.lww.Close()
		s.tr.Close()
		if c, ok := s.auth.(interface{ close() }); ok {
			c.close()
		}
		if err := s.db.Close(); err != nil {
			s.log.Warn("close db", zap.Error(err))
		}
		s.log.Info("store stopped")
	})
}

// resolve returns a store's address: from the authority's store list,
// else from the --peer flags.
func (s *Store) resolve(id uint64) (string, bool) {
	for _, st := range s.auth.Stores() {
		if st.GetId() == id {
			return st.GetAddr(), true
		}
	}
	addr, ok := s.cfg.Peers[id]
	return addr, ok
}

// peerClients returns the internal clients of every other store.
func (s *Store) peerClients() map[uint64]storepb.StoreInternalClient {
	out := make(map[uint64]storepb.StoreInternalClient)
	for _, st := range s.auth.Stores() {
		if st.GetId() == s.cfg.StoreID {
			continue
		}
		if c, err := s.tr.Client(st.GetId()); err == nil {
			out[st.GetId()] = c
		}
	}
	return out
}

func (s *Store) storeIDs() []uint64 {
	var ids []uint64
	for _, st := range s.auth.Stores() {
		ids = append(ids, st.GetId())
	}
	slices.Sort(ids)
	return ids
}

func (s *Store) newStateMachine(group uint64) raftstore.StateMachine {
	if group == keys.MetaGroupID && s.meta != nil {
		return s.meta
	}
	g := newNSGroup(s, group)
	s.groupsMu.Lock()
	s.groups[group] = g
	s.groupsMu.Unlock()
	return g
}

func (s *Store) notifyStateChange() {
	select {
	case s.stateChanged <- struct{}{}:
	default:
	}
}

func (s *Store) group(id uint64) *nsGroup {
	s.groupsMu.RLock()
	defer s.groupsMu.RUnlock()
	return s.groups[id]
}

// wantReplica: a message for a group this store lacks creates a replica
// if the group is the meta group or belongs to a namespace we know.
func (s *Store) wantReplica(group uint64) bool {
	if group == keys.MetaGroupID {
		return s.meta != nil
	}
	_, ok := s.table.NamespaceOfGroup(group)
	return ok
}

// desiredVoters: every store is a voter of every namespace group.
func (s *Store) desiredVoters(group uint64) []uint64 {
	if group == keys.MetaGroupID {
		return nil // the meta group changes membership by Join only
	}
	return s.storeIDs()
}

// onTableChange runs after a row is applied: a namespace that now has a
// Raft group gets a replica here.
func (s *Store) onTableChange(old, cur *storepb.NamespaceRecord) {
	gid := cur.GetGroupId()
	if gid == 0 || s.raft.HasGroup(gid) {
		return
	}
	peers := cur.GetGroupPeers()
	if !slices.Contains(peers, s.cfg.StoreID) {
		return // created empty when the leader first calls
	}
	initial, err := initialGroupState(gid, cur)
	if err != nil {
		s.log.Error("group initial state", zap.Error(err))
		return
	}
	// The first of the peers campaigns at once so that a new namespace gets
	// a leader without waiting for an election timeout.
	campaign := slices.Min(peers) == s.cfg.StoreID
	s.raft.CreateGroupAsync(gid, peers, initial, campaign)
}

func getValue(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

// DefaultDataDir is where a store keeps its data when --data-dir is not
// given: one directory per store id, so that stores started from one
// directory do not collide.
func DefaultDataDir(storeID uint64) string {
	return filepath.Join(".", fmt.Sprintf("rdb-store-%d", storeID))
}

// GroupStatus returns the Raft status of a namespace's group on this
// store (tests and operators use it to find leaders).
func (s *Store) GroupStatus(ns string) (raftstore.Status, bool) {
	rec, ok := s.table.Get(ns)
	if !ok || rec.GetGroupId() == 0 {
		return raftstore.Status{}, false
	}
	return s.raft.Status(rec.GetGroupId())
}

// MetaStatus returns the Raft status of the meta group (static mode).
func (s *Store) MetaStatus() (raftstore.Status, bool) { return s.raft.Status(keys.MetaGroupID) }

// NamespaceRow returns this store's applied row of a namespace.
func (s *Store) NamespaceRow(ns string) (*storepb.NamespaceRecord, bool) { return s.table.Get(ns) }
