package meta

// Starting a static-mode store: bootstrap a new cluster, or join one
// through a --peer; then seed the table, keep this store's address
// current, and drive mode switches while this store leads the meta group.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/modeswitch"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/raftstore"
)

// Start bootstraps the cluster (no --peer and no data) or joins it through
// a peer, and starts the background work, which runs until ctx ends (wg
// counts it).
func (m *Meta) Start(ctx context.Context, wg *sync.WaitGroup) error {
	switch {
	case m.raft.HasGroup(keys.MetaGroupID) && m.raft.Initialized(keys.MetaGroupID):
		// A restart: the data has everything.
	case len(m.cfg.Peers) == 0:
		if id := m.cfg.ClusterID(); id != 0 {
			return fmt.Errorf("this data dir belongs to cluster %s but holds no meta group (it began to join and stopped before it had the cluster's state): "+
				"it cannot bootstrap a new cluster; start it with --peer of a store of its cluster, or use another --data-dir", clusterid.String(id))
		}
		info, err := proto.Marshal(&storepb.StoreInfo{Id: m.cfg.StoreID, Addr: m.cfg.AdvertiseAddr})
		if err != nil {
			return err
		}
		// The cluster is born here: its id is in the meta group's initial
		// state, so every snapshot carries it to the stores that join.
		id := clusterid.New()
		initial := []raftstore.KV{
			{Key: keys.MetaStore(m.cfg.StoreID), Value: info},
			{Key: keys.MetaNextGroup(), Value: binary.BigEndian.AppendUint64(nil, firstGroupID)},
			{Key: keys.MetaClusterID(), Value: clusterid.Encode(id)},
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := m.raft.CreateGroup(cctx, keys.MetaGroupID, []uint64{m.cfg.StoreID}, initial, true); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		loaded, err := loadState(m.cfg.DB)
		if err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		if err := m.install(loaded); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		m.log.Info("bootstrapped a new cluster", zap.String("cluster_id", clusterid.String(loaded.clusterID)))
	default:
		// An empty replica of the meta group, filled by the leader once the
		// membership change that adds us commits.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := m.raft.CreateGroup(cctx, keys.MetaGroupID, nil, nil, false); err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); m.joinLoop(ctx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); m.seedLoop(ctx) }()
	go func() { defer wg.Done(); m.runDriverWhileLeader(ctx) }()
	return nil
}

// joinLoop asks the --peer stores, in turn, to add this store until one
// does.
func (m *Meta) joinLoop(ctx context.Context) {
	ids := make([]uint64, 0, len(m.cfg.Peers))
	for id := range m.cfg.Peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil || m.raft.Initialized(keys.MetaGroupID) {
			return
		}
		id := ids[attempt%len(ids)]
		err := m.joinThrough(ctx, id)
		if err == nil {
			m.log.Info("joined the cluster", zap.Uint64("through", id))
			return
		}
		switch {
		case attempt%10 != 0:
		case clusterid.IsMismatch(err):
			m.log.Error("the peer belongs to another cluster: this store cannot join it (check --peer, or use another --data-dir)",
				zap.Uint64("peer", id), zap.String("addr", m.cfg.Peers[id]), zap.Error(err))
		default:
			m.log.Info("waiting to join the cluster", zap.Uint64("peer", id), zap.String("addr", m.cfg.Peers[id]), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (m *Meta) joinThrough(ctx context.Context, peer uint64) error {
	c, err := m.cfg.Client(peer)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.Join(cctx, &storepb.JoinRequest{StoreId: m.cfg.StoreID, Addr: m.cfg.AdvertiseAddr})
	if err != nil {
		return err
	}
	// This store is a member now: it names the cluster in its calls from
	// here on (a retry of the join answers again, should this fail).
	return m.cfg.LearnClusterID(resp.GetClusterId())
}

// Join handles a Join request: a membership change of the meta group.
func (m *Meta) Join(ctx context.Context, req *storepb.JoinRequest) (*storepb.JoinResponse, error) {
	if req.GetStoreId() == 0 || req.GetAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "join needs a store id and an address")
	}
	for _, st := range m.storeList() {
		if st.GetId() == req.GetStoreId() && st.GetAddr() == req.GetAddr() {
			return &storepb.JoinResponse{Stores: m.storeList(), ClusterId: m.ClusterID()}, nil
		}
		if st.GetId() == req.GetStoreId() {
			// A join would move the member's traffic to the caller. A
			// member changes its own address, by restarting with the new
			// --addr (it proposes the change itself).
			return nil, status.Errorf(codes.AlreadyExists,
				"store %d is a member at %s: a member's address changes only when it restarts with its new --addr", st.GetId(), st.GetAddr())
		}
		if st.GetAddr() == req.GetAddr() {
			return nil, status.Errorf(codes.AlreadyExists, "address %s belongs to store %d", req.GetAddr(), st.GetId())
		}
	}
	info, err := proto.Marshal(&storepb.StoreInfo{Id: req.GetStoreId(), Addr: req.GetAddr()})
	if err != nil {
		return nil, err
	}
	// Raft drops a membership change proposed while another is pending
	// (stores joining at once), without telling the proposer: so propose
	// with a short wait, and again, until the store is a member.
	for {
		cc := &eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(req.GetStoreId()), Context: info}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := m.raft.ProposeConfChange(pctx, keys.MetaGroupID, cc)
		cancel()
		if err == nil || m.hasStore(req.GetStoreId(), req.GetAddr()) {
			return &storepb.JoinResponse{Stores: m.storeList(), ClusterId: m.ClusterID()}, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, raftstore.WriteError(err, "the meta group")
		}
	}
}

// seedLoop creates the default namespace and the --namespace-mode seeds
// if the table does not have them, and keeps this store's address current.
func (m *Meta) seedLoop(ctx context.Context) {
	type seed struct {
		mode        string
		fromDefault bool
	}
	seeds := map[string]seed{namespace.Default: {mode: string(namespace.DefaultMode), fromDefault: true}}
	for ns, mode := range m.cfg.NamespaceModes {
		seeds[ns] = seed{mode: mode}
	}
	for {
		pending := 0
		for ns, sr := range seeds {
			if _, ok := m.cfg.Table.Get(ns); ok {
				delete(seeds, ns)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := m.create(cctx, ns, sr.mode, sr.fromDefault)
			cancel()
			if err != nil {
				pending++
			}
		}
		if pending == 0 && m.updateOwnAddress(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// updateOwnAddress records a new --addr for this store after a restart. It
// reports whether the meta group has the current address.
func (m *Meta) updateOwnAddress(ctx context.Context) bool {
	for _, st := range m.storeList() {
		if st.GetId() != m.cfg.StoreID {
			continue
		}
		if st.GetAddr() == m.cfg.AdvertiseAddr {
			return true
		}
		c, err := proto.Marshal(&storepb.MetaCommand{Cmd: &storepb.MetaCommand_SetStoreAddr{
			SetStoreAddr: &storepb.StoreInfo{Id: m.cfg.StoreID, Addr: m.cfg.AdvertiseAddr},
		}})
		if err != nil {
			return true
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err = m.raft.ProposeRetrying(cctx, keys.MetaGroupID, c)
		return err == nil
	}
	return false // not a member yet
}

// cluster is the switch driver's view of the cluster from this store.
type cluster struct{ m *Meta }

func (c cluster) Namespaces() []*storepb.NamespaceRecord      { return c.m.cfg.Table.Rows() }
func (c cluster) Changes() ([]*storepb.NamespaceRecord, bool) { return c.m.changes.Take() }
func (c cluster) Stores() []*storepb.StoreInfo                { return c.m.storeList() }
func (c cluster) Client(id uint64) (storepb.StoreInternalClient, error) {
	return c.m.cfg.Client(id)
}
func (c cluster) KnownState(group uint64) (*storepb.GroupState, bool) {
	st := c.m.cfg.GroupState(group)
	return st, st != nil
}

// runDriverWhileLeader runs the switch driver while this store leads the
// meta group.
func (m *Meta) runDriverWhileLeader(ctx context.Context) {
	d := modeswitch.New(cluster{m}, m.log.Named("switch"), 0)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	// running is the driver of the current leadership, if any.
	var running *driverRun
	defer func() { running.stop() }()
	for {
		st, _ := m.raft.Status(keys.MetaGroupID)
		switch {
		case st.IsLeader && running == nil:
			running = startDriver(ctx, d)
		case !st.IsLeader && running != nil:
			running.stop()
			running = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.cfg.Table.Changed():
			d.Kick()
		}
	}
}

// driverRun is the switch driver running for one leadership.
type driverRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startDriver(ctx context.Context, d *modeswitch.Driver) *driverRun {
	dctx, cancel := context.WithCancel(ctx)
	r := &driverRun{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); d.Run(dctx) }()
	return r
}

// stop ends the run and waits for the driver to return; nil is a no-op.
func (r *driverRun) stop() {
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
}
