// Package store is an rdb store: one pebble DB, a Raft group per strong
// namespace, last-writer-wins replicas of the eventual namespaces, and the
// gRPC services clients and other stores call.
//
// A store runs in one of two modes. In static mode (no placement driver)
// the first store bootstraps a meta Raft group that replicates the mode
// table and the store list; later stores join it through any peer (package
// meta). In PD mode the placement driver is the authority for both, and
// the store follows it (package pdfollow).
//
// This package wires the parts together (store.go) and serves the gRPC
// services: the mode table (modes.go), the KV APIs (kv.go) and what
// stores and PD call on each other (internal.go). What a namespace may
// serve is decided in package namespace, the switch protocol lives in
// package modeswitch, strong namespaces' state machines in package nsgroup.
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
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/meta"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/nsgroup"
	"github.com/rdb-project/rdb/store/pdfollow"
	"github.com/rdb-project/rdb/store/raftstore"
	"github.com/rdb-project/rdb/store/security"
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
	// TLS is the store's certificate (CN store:<id>), its key and the
	// cluster's CA: the store serves clients and peers with it and dials
	// peers and PD with it. Empty: an insecure cluster.
	TLS security.Files
	// MaxNamespaces bounds the namespaces of a static-mode cluster
	// (ResourceExhausted past it; PD has its own).
	MaxNamespaces int
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
	if c.MaxNamespaces == 0 {
		c.MaxNamespaces = DefaultMaxNamespaces
	}
	return c.TLS.Check("")
}

// DefaultMaxNamespaces is Config.MaxNamespaces' default.
const DefaultMaxNamespaces = 1_000_000

// Limits of what one message may carry: peers send Raft batches of up to
// 32 MiB; a client's request is far smaller (values are at most 1 MiB).
const (
	maxPeerMessage   = 64 << 20
	maxClientMessage = 20 << 20
	// maxStreams bounds the concurrent calls on one connection.
	maxStreams = 1024
	// streamWorkers is the pool of goroutines that serve calls. A call
	// served by a new goroutine grows its stack (copied each time it
	// doubles) through gRPC, the handler and pebble: 16% of a store's CPU
	// under 64 clients' Gets. A worker keeps its stack from call to call;
	// calls past the pool start a goroutine as before.
	streamWorkers = 128
)

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
	meta  *meta.Meta         // static mode only
	pd    *pdfollow.Follower // PD mode only
	fwd   forwarder          // where forwarded calls went, and how many
	work  placeWork          // PD mode: eventual replicas to fill or release
	// changes: what the next heartbeat to PD is to look at (report.go).
	changes reportChanges
	lww     *lww.Engine
	groups  *nsgroup.Groups
	// cluster is this store's cluster id (0 until it is known).
	cluster *clusterIdentity
	// stateChanged is signalled when a group's switch state changes.
	stateChanged chan struct{}
	// collectNow wakes replica collection: a replica here applied its own
	// removal, or refused a message from a store its configuration does
	// not name (suspects holds those groups).
	collectNow chan struct{}
	suspectMu  sync.Mutex
	suspects   map[uint64]struct{}
	// unheld (under suspectMu): groups whose row does not list this store,
	// the replicas collection looks at besides the awake and the suspect.
	unheld map[uint64]struct{}

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
// Start to serve. A state that cannot be read fails Open.
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
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		cfg:          cfg,
		log:          cfg.Logger.With(zap.Uint64("store", cfg.StoreID)),
		db:           db,
		table:        modetable.New(),
		stateChanged: make(chan struct{}, 1),
		collectNow:   make(chan struct{}, 1),
		ctx:          ctx,
		cancel:       cancel,
	}
	if err := s.open(); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// open builds the store's parts over its DB, in dependency order.
func (s *Store) open() error {
	cfg := s.cfg
	if err := s.checkIdent(); err != nil {
		return err
	}
	if err := s.checkMode(); err != nil {
		return err
	}
	var err error
	if s.cluster, err = loadClusterIdentity(s.db, s.log); err != nil {
		return err
	}
	upper, err := loadClockBound(s.db)
	if err != nil {
		return fmt.Errorf("load clock bound: %w", err)
	}
	if s.clock, err = hlc.New(hlc.Config{StoreID: cfg.StoreID, Persisted: upper, Persist: persistClockBound(s.db)}); err != nil {
		return err
	}
	peerCreds, err := cfg.TLS.ClientCredentials()
	if err != nil {
		return err
	}
	s.tr = transport.New(transport.Config{
		StoreID: cfg.StoreID,
		Logger:  s.log.Named("transport"),
		Resolve: s.resolve,
		Faults:  cfg.Faults,
		Creds:   peerCreds,
		// Every call to another store names this store's cluster.
		ClusterID: s.cluster.ID,
	})
	s.lww, err = lww.New(lww.Config{
		StoreID:             cfg.StoreID,
		DB:                  s.db,
		Clock:               s.clock,
		Logger:              s.log.Named("lww"),
		Peers:               s.peerClients,
		Serving:             s.lwwServing,
		Holders:             s.holders,
		Namespaces:          s.table.Eventual,
		AntiEntropyInterval: cfg.AntiEntropyInterval,
		AntiEntropySettle:   cfg.AntiEntropySettle,
		TombstoneGrace:      cfg.TombstoneGrace,
	})
	if err != nil {
		return err
	}
	s.changes.on = len(cfg.PD) > 0
	s.groups = nsgroup.New(nsgroup.Deps{
		DB:        s.db,
		LWW:       s.lww,
		Clock:     s.clock,
		Namespace: s.table.NamespaceOfGroup,
		Logger:    s.log.Named("nsgroup"),
		OnStateChange: func(group uint64) {
			s.changes.noteGroup(group)
			s.notifyStateChange()
		},
	})
	// The authority loads the table this store holds, before anything
	// watches it.
	if len(cfg.PD) == 0 {
		s.meta, err = meta.New(meta.Config{
			StoreID: cfg.StoreID, AdvertiseAddr: cfg.AdvertiseAddr, Peers: cfg.Peers, NamespaceModes: cfg.NamespaceModes,
			DB: s.db, Table: s.table, Logger: s.log.Named("meta"),
			Client: s.tr.Client, GroupState: s.groups.State, MaxNamespaces: cfg.MaxNamespaces,
			LearnClusterID: s.cluster.Learn, ClusterID: s.cluster.ID,
			OnStoresChanged: func() { s.raft.WakeAll() },
		})
		s.auth = s.meta
	} else {
		var creds credentials.TransportCredentials
		if creds, err = cfg.TLS.ClientCredentials(); err != nil {
			return err
		}
		s.pd, err = pdfollow.New(pdfollow.Config{
			StoreID: cfg.StoreID, AdvertiseAddr: cfg.AdvertiseAddr, PD: cfg.PD, NamespaceModes: cfg.NamespaceModes,
			Credentials: creds,
			DB:          s.db, Table: s.table, Logger: s.log.Named("pd"),
			Report: s.report, Changed: s.stateChanged,
			ClusterID: s.cluster.ID, LearnClusterID: s.cluster.Learn,
			TransferLeader: func(group, to uint64) { s.raft.TransferLeader(group, to) },
		})
		s.auth = s.pd
	}
	if err != nil {
		return err
	}
	s.table.OnChange(s.onTableChange)
	stopLoading, err := s.groups.StartLoading()
	if err != nil {
		return err
	}
	s.raft, err = raftstore.Open(raftstore.Config{
		StoreID:          cfg.StoreID,
		DB:               s.db,
		Transport:        s.tr,
		Logger:           s.log.Named("raft"),
		NewStateMachine:  s.newStateMachine,
		WantReplica:      s.wantReplica,
		ValidateCommand:  s.validateCommand,
		DesiredVoters:    s.desiredVoters,
		OnGroupDestroyed: s.groups.Forget,
		OnStatusChange:   s.changes.noteGroup,
		OnRemoved:        s.removedHere,
		OnRefusedMember:  s.refusedMember,
		LearnersFirst:    s.pd != nil,
		OnFatal:          s.fatal,
		AlwaysAwake:      s.alwaysAwake,
		TickInterval:     cfg.TickInterval,
		ElectionTicks:    cfg.ElectionTicks,
		CompactThreshold: cfg.CompactThreshold,
		FS:               dbFS(cfg.FS),
		StagingDir:       filepath.Join(cfg.DataDir, "snapshots-staging"),
	})
	stopLoading()
	if err != nil {
		return err
	}
	if s.meta != nil {
		s.meta.SetRaft(s.raft)
	}
	s.tr.SetRaft(transportRaft{s.raft})
	return nil
}

// transportRaft is the engine as the transport sees it.
type transportRaft struct{ *raftstore.RaftStore }

func (r transportRaft) StageSnapshot(group uint64, md *eraftpb.SnapshotMetadata) (transport.SnapshotStage, error) {
	st, err := r.RaftStore.StageSnapshot(group, md)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// fatal stops the store after a persistence failure (by default the
// process exits: a store that cannot write must not go on serving).
func (s *Store) fatal(err error) {
	if s.cfg.OnFatal != nil {
		s.cfg.OnFatal(err)
		return
	}
	s.log.Fatal("persistence failed: stopping", zap.Error(err))
}

// checkIdent makes sure the data dir belongs to this store id.
func (s *Store) checkIdent() error {
	b, ok, err := kvread.Get(s.db, keys.Ident())
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
// bootstrapping (static mode) or following PD. If it fails, everything
// Open took is released (the data directory can be opened again at once).
func (s *Store) Start() error {
	if err := s.start(); err != nil {
		s.Stop()
		return err
	}
	s.log.Info("store started", zap.String("addr", s.lis.Addr().String()), zap.String("data_dir", s.cfg.DataDir),
		zap.Bool("pd_mode", s.pd != nil))
	return nil
}

func (s *Store) start() error {
	lis := s.cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
		}
	}
	s.lis = lis
	creds, err := s.cfg.TLS.ServerCredentials()
	if err != nil {
		_ = lis.Close()
		return err
	}
	if !s.cfg.TLS.Enabled() {
		s.log.Warn("store runs without TLS: anyone who reaches its port can call every API, the internal ones included (see --cert-file)")
	}
	unary := []grpc.UnaryServerInterceptor{storePolicy.UnaryInterceptor(), s.clusterUnary, limitClientMessages, s.forwardUnary}
	if s.cfg.MetricsAddr != "" {
		s.metrics = newMetrics(s)
		unary = append([]grpc.UnaryServerInterceptor{s.metrics.unary}, unary...)
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(maxPeerMessage), grpc.MaxSendMsgSize(maxPeerMessage),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(storePolicy.StreamInterceptor(), s.clusterStream),
	)
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
	for _, rec := range s.table.Rows() {
		s.ensureGroup(rec, false)
	}
	s.lww.Start()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("grpc server", zap.Error(err))
		}
	}()
	if s.meta != nil {
		if err := s.meta.Start(s.ctx, &s.wg); err != nil {
			return err
		}
	} else {
		s.pd.Start(s.ctx, &s.wg, s.fatal)
		s.wg.Go(func() { s.replicaGCLoop(s.ctx) })
		s.wg.Go(func() { s.eventualPlacementLoop(s.ctx) })
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
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

// ClusterID is the id of the cluster this store belongs to (0 while it
// does not know it: a store that has not joined or registered yet).
func (s *Store) ClusterID() uint64 { return s.cluster.ID() }

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
		} else if s.lis != nil {
			_ = s.lis.Close()
		}
		s.wg.Wait()
		s.release()
		s.log.Info("store stopped")
	})
}

// release stops the engines (what Open started) and closes the DB. Each
// part may be missing: Open may have failed half way.
func (s *Store) release() {
	s.cancel()
	if s.raft != nil {
		s.raft.Stop()
	}
	if s.tr != nil {
		s.tr.Close()
	}
	if s.lww != nil {
		_ = s.lww.Close()
	}
	if s.pd != nil {
		s.pd.Close()
	}
	if err := s.db.Close(); err != nil {
		s.log.Warn("close db", zap.Error(err))
	}
}

// resolve returns a store's address: from the authority's store list,
// else from the --peer flags.
func (s *Store) resolve(id uint64) (string, bool) {
	if addr, ok := s.auth.StoreAddr(id); ok {
		return addr, true
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

// newStateMachine loads a group's state machine for the Raft engine.
func (s *Store) newStateMachine(group uint64) (raftstore.StateMachine, error) {
	if group == keys.MetaGroupID && s.meta != nil {
		return s.meta.StateMachine(), nil
	}
	return s.groups.Open(group)
}

func (s *Store) notifyStateChange() {
	select {
	case s.stateChanged <- struct{}{}:
	default:
	}
}

// wantReplica: a message for a group this store lacks creates a replica
// if the group is the meta group, or belongs to a namespace we know that
// this store holds (holds).
func (s *Store) wantReplica(group uint64) bool {
	if group == keys.MetaGroupID {
		return s.meta != nil
	}
	ns, ok := s.table.NamespaceOfGroup(group)
	if !ok {
		return false
	}
	rec, ok := s.table.Get(ns)
	return ok && s.holds(rec)
}

// alwaysAwake: the meta group never sleeps. Its followers must apply the
// rows it commits without being used (a store learns its namespaces' modes
// and groups from them), and the switch driver needs its leader.
func (s *Store) alwaysAwake(group uint64) bool { return group == keys.MetaGroupID }

// holders is the LWW engine's Config.Holders: the stores a namespace's
// row lists, or every store.
func (s *Store) holders(ns string) ([]uint64, bool) {
	rec, ok := s.table.Get(ns)
	if !ok || len(rec.GetReplicas()) == 0 {
		return nil, true
	}
	return rec.GetReplicas(), false
}

// holds tells whether this store should hold a replica of a namespace: in
// static mode every store holds every namespace; in PD mode the stores its
// row lists (a row from before placement lists none: every store).
func (s *Store) holds(rec *storepb.NamespaceRecord) bool {
	r := rec.GetReplicas()
	return len(r) == 0 || slices.Contains(r, s.cfg.StoreID)
}

// desiredVoters: in static mode every store is a voter of every namespace
// group; in PD mode the namespace's replicas are.
func (s *Store) desiredVoters(group uint64) []uint64 {
	if group == keys.MetaGroupID {
		return nil // the meta group changes membership by Join only
	}
	if s.pd != nil {
		ns, ok := s.table.NamespaceOfGroup(group)
		if !ok {
			return nil
		}
		rec, _ := s.table.Get(ns)
		return slices.Sorted(slices.Values(rec.GetReplicas()))
	}
	var ids []uint64
	for _, st := range s.auth.Stores() {
		ids = append(ids, st.GetId())
	}
	slices.Sort(ids)
	return ids
}

// onTableChange runs after a row is applied: a namespace that now has a
// Raft group with this store among its peers gets its replica here.
func (s *Store) onTableChange(old, cur *storepb.NamespaceRecord) {
	s.noteRowChange(old, cur)
	s.ensureGroup(cur, true)
}

// ensureGroup creates this store's replica of a row's group if it should
// have one; wake (a row just applied) wakes an existing replica, whose
// leader may have a membership change to make. Start-up does not wake
// them: its replicas know no leader, and waking 100,000 of them would
// start 100,000 elections.
func (s *Store) ensureGroup(cur *storepb.NamespaceRecord, wake bool) {
	s.notePlacement(cur)
	gid := cur.GetGroupId()
	if gid == 0 {
		return
	}
	if s.raft.HasGroup(gid) {
		if s.pd != nil && !s.holds(cur) {
			s.suspectMu.Lock()
			if s.unheld == nil {
				s.unheld = make(map[uint64]struct{})
			}
			s.unheld[gid] = struct{}{}
			s.suspectMu.Unlock()
		}
		// Its leader may have a membership change to make: a sleeping
		// group would not look.
		if wake {
			s.raft.Wake(gid)
		}
		return
	}
	peers := cur.GetGroupPeers()
	if !slices.Contains(peers, s.cfg.StoreID) || !s.holds(cur) {
		return // created empty when the leader first calls
	}
	initial, err := nsgroup.InitialKVs(gid, cur)
	if err != nil {
		s.log.Error("group initial state", zap.Error(err))
		return
	}
	// The first of the peers campaigns at once so that a new namespace gets
	// a leader without waiting for an election timeout (PD puts first the
	// store that leads fewest groups; the meta group rotates the list by
	// the group id).
	campaign := peers[0] == s.cfg.StoreID
	s.raft.CreateGroupAsync(gid, peers, initial, campaign)
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

// Replicas counts the Raft group replicas this store holds.
func (s *Store) Replicas() int { return len(s.raft.Groups()) }
