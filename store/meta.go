package store

// The meta group (static mode): a Raft group of every store that
// replicates the store list (through membership changes) and the mode
// table (through MetaCommands). A row's version is the index of the entry
// that wrote it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/raftstore"
)

// firstGroupID is the first namespace group id; 1 is the meta group.
const firstGroupID uint64 = 2

// metaSM is the meta group's state machine. Its rows are mirrored into
// the store's mode table once committed.
type metaSM struct {
	s *Store

	mu        sync.RWMutex
	stores    map[uint64]string // store id -> address, as applied
	nextGroup uint64
}

// metaResult is what applying a MetaCommand returns to its proposer.
type metaResult struct {
	rec     *storepb.NamespaceRecord
	changed bool
	err     error
}

func newMetaSM(s *Store) *metaSM {
	m := &metaSM{s: s, stores: make(map[uint64]string)}
	if err := m.load(); err != nil {
		s.log.Error("load meta state", zap.Error(err))
	}
	return m
}

// load reads the meta state from the DB into memory and the mode table.
func (m *metaSM) load() error {
	stores := make(map[uint64]string)
	if err := scanPrefix(m.s.db, keys.MetaStorePrefix(), func(k, v []byte) error {
		var info storepb.StoreInfo
		if err := proto.Unmarshal(v, &info); err != nil {
			return err
		}
		stores[info.GetId()] = info.GetAddr()
		return nil
	}); err != nil {
		return err
	}
	next := firstGroupID
	if b, ok, err := getValue(m.s.db, keys.MetaNextGroup()); err != nil {
		return err
	} else if ok {
		next = decodeUint64(b)
	}
	var rows []*storepb.NamespaceRecord
	if err := scanPrefix(m.s.db, keys.MetaNamespacePrefix(), func(k, v []byte) error {
		rec := &storepb.NamespaceRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return err
		}
		rows = append(rows, rec)
		return nil
	}); err != nil {
		return err
	}
	m.mu.Lock()
	m.stores, m.nextGroup = stores, next
	m.mu.Unlock()
	for _, r := range rows {
		m.s.table.Apply(r)
	}
	return nil
}

func (m *metaSM) storeList() []*storepb.StoreInfo {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*storepb.StoreInfo, 0, len(m.stores))
	for id, addr := range m.stores {
		out = append(out, &storepb.StoreInfo{Id: id, Addr: addr})
	}
	slices.SortFunc(out, func(a, b *storepb.StoreInfo) int { return int(a.GetId()) - int(b.GetId()) })
	return out
}

func (m *metaSM) hasStore(id uint64, addr string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.stores[id] == addr
}

func (m *metaSM) storeIDs() []uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids := make([]uint64, 0, len(m.stores))
	for id := range m.stores {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *metaSM) Apply(ac *raftstore.ApplyContext, index uint64, cmd []byte) any {
	var c storepb.MetaCommand
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return metaResult{err: api.Internal("meta command: %v", err)}
	}
	switch x := c.GetCmd().(type) {
	case *storepb.MetaCommand_CreateNamespace:
		return m.createNamespace(ac, index, x.CreateNamespace)
	case *storepb.MetaCommand_SetMode:
		return m.setMode(ac, index, x.SetMode)
	case *storepb.MetaCommand_SetStoreAddr:
		return metaResult{err: m.putStore(ac, x.SetStoreAddr)}
	}
	return metaResult{err: api.Internal("unknown meta command")}
}

func (m *metaSM) readRow(ac *raftstore.ApplyContext, ns string) (*storepb.NamespaceRecord, error) {
	b, ok, err := getValue(ac.Batch, keys.MetaNamespace(ns))
	if err != nil || !ok {
		return nil, err
	}
	rec := &storepb.NamespaceRecord{}
	return rec, proto.Unmarshal(b, rec)
}

func (m *metaSM) writeRow(ac *raftstore.ApplyContext, rec *storepb.NamespaceRecord) error {
	b, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	if err := ac.Batch.Set(keys.MetaNamespace(rec.GetName()), b, nil); err != nil {
		return err
	}
	ac.AfterCommit(func() { m.s.table.Apply(rec) })
	return nil
}

// assignGroup gives a namespace that becomes strong its Raft group, whose
// voters are every store.
func (m *metaSM) assignGroup(ac *raftstore.ApplyContext, rec *storepb.NamespaceRecord) error {
	if rec.GetGroupId() != 0 {
		return nil
	}
	m.mu.Lock()
	rec.GroupId = m.nextGroup
	m.nextGroup++
	next := m.nextGroup
	m.mu.Unlock()
	rec.GroupPeers = m.storeIDs()
	return ac.Batch.Set(keys.MetaNextGroup(), encodeUint64(next), nil)
}

func (m *metaSM) createNamespace(ac *raftstore.ApplyContext, index uint64, req *storepb.NamespaceRecord) metaResult {
	if err := api.ValidateNamespace(req.GetName()); err != nil {
		return metaResult{err: err}
	}
	if err := api.ValidateMode(req.GetMode()); err != nil {
		return metaResult{err: err}
	}
	cur, err := m.readRow(ac, req.GetName())
	if err != nil {
		return metaResult{err: api.Internal("read namespace: %v", err)}
	}
	if cur != nil {
		return metaResult{rec: cur}
	}
	rec := &storepb.NamespaceRecord{
		Name: req.GetName(), Mode: req.GetMode(), FromDefault: req.GetFromDefault(),
		Version: index, Epoch: 1,
	}
	if rec.Mode == api.ModeStrong {
		if err := m.assignGroup(ac, rec); err != nil {
			return metaResult{err: api.Internal("assign group: %v", err)}
		}
	}
	if err := m.writeRow(ac, rec); err != nil {
		return metaResult{err: api.Internal("write namespace: %v", err)}
	}
	return metaResult{rec: rec, changed: true}
}

func (m *metaSM) setMode(ac *raftstore.ApplyContext, index uint64, req *storepb.SetMode) metaResult {
	if err := api.ValidateNamespace(req.GetName()); err != nil {
		return metaResult{err: err}
	}
	if err := api.ValidateMode(req.GetMode()); err != nil {
		return metaResult{err: err}
	}
	cur, err := m.readRow(ac, req.GetName())
	if err != nil {
		return metaResult{err: api.Internal("read namespace: %v", err)}
	}
	if cur == nil {
		return m.createNamespace(ac, index, &storepb.NamespaceRecord{Name: req.GetName(), Mode: req.GetMode()})
	}
	if cur.GetMode() == req.GetMode() && !cur.GetFromDefault() && (!req.GetForce() || cur.GetForce()) {
		return metaResult{rec: cur} // nothing to change
	}
	rec := proto.Clone(cur).(*storepb.NamespaceRecord)
	rec.Version, rec.FromDefault, rec.Force = index, false, req.GetForce()
	if cur.GetMode() != req.GetMode() {
		rec.Mode = req.GetMode()
		rec.Epoch++
		if rec.Mode == api.ModeStrong {
			if err := m.assignGroup(ac, rec); err != nil {
				return metaResult{err: api.Internal("assign group: %v", err)}
			}
		}
	}
	if err := m.writeRow(ac, rec); err != nil {
		return metaResult{err: api.Internal("write namespace: %v", err)}
	}
	return metaResult{rec: rec, changed: true}
}

func (m *metaSM) putStore(ac *raftstore.ApplyContext, info *storepb.StoreInfo) error {
	b, err := proto.Marshal(&storepb.StoreInfo{Id: info.GetId(), Addr: info.GetAddr()})
	if err != nil {
		return err
	}
	if err := ac.Batch.Set(keys.MetaStore(info.GetId()), b, nil); err != nil {
		return err
	}
	m.mu.Lock()
	m.stores[info.GetId()] = info.GetAddr()
	m.mu.Unlock()
	return nil
}

func (m *metaSM) ApplyConfChange(ac *raftstore.ApplyContext, cc *eraftpb.ConfChange) {
	switch cc.GetType() {
	case eraftpb.ConfChangeAddNode, eraftpb.ConfChangeAddLearnerNode:
		var info storepb.StoreInfo
		if err := proto.Unmarshal(cc.GetContext(), &info); err != nil || info.GetId() != cc.GetNodeId() {
			m.s.log.Error("membership change without a store address", zap.Uint64("store", cc.GetNodeId()))
			return
		}
		if err := m.putStore(ac, &info); err != nil {
			m.s.log.Error("record store", zap.Error(err))
		}
		m.s.log.Info("store joined", zap.Uint64("id", info.GetId()), zap.String("addr", info.GetAddr()))
	case eraftpb.ConfChangeRemoveNode:
		if err := ac.Batch.Delete(keys.MetaStore(cc.GetNodeId()), nil); err != nil {
			m.s.log.Error("remove store", zap.Error(err))
		}
		m.mu.Lock()
		delete(m.stores, cc.GetNodeId())
		m.mu.Unlock()
	}
}

func (m *metaSM) Restored() error { return m.load() }

// staticAuthority decides the table through the meta group.
type staticAuthority struct{ s *Store }

func (a *staticAuthority) Stores() []*storepb.StoreInfo { return a.s.meta.storeList() }

// Ensure creates a namespace a client names before the table has it. A
// namespace this store was started with (--namespace-mode) gets that mode:
// a client can call before seedLoop has proposed the row, and the first
// row wins, so creating it with the default would drop the configured mode.
func (a *staticAuthority) Ensure(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	if mode, ok := a.s.cfg.NamespaceModes[ns]; ok {
		return a.seed(ctx, ns, mode, false)
	}
	return a.seed(ctx, ns, api.DefaultMode, true)
}

func (a *staticAuthority) SetMode(ctx context.Context, ns, mode string, force bool) (*storepb.NamespaceRecord, bool, error) {
	res, err := a.propose(ctx, &storepb.MetaCommand{Cmd: &storepb.MetaCommand_SetMode{
		SetMode: &storepb.SetMode{Name: ns, Mode: mode, Force: force},
	}})
	if err != nil {
		return nil, false, err
	}
	return res.rec, res.changed, nil
}

func (a *staticAuthority) seed(ctx context.Context, ns, mode string, fromDefault bool) (*storepb.NamespaceRecord, error) {
	res, err := a.propose(ctx, &storepb.MetaCommand{Cmd: &storepb.MetaCommand_CreateNamespace{
		CreateNamespace: &storepb.NamespaceRecord{Name: ns, Mode: mode, FromDefault: fromDefault},
	}})
	if err != nil {
		return nil, err
	}
	return res.rec, nil
}

func (a *staticAuthority) propose(ctx context.Context, c *storepb.MetaCommand) (metaResult, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return metaResult{}, err
	}
	v, err := a.s.propose(ctx, keys.MetaGroupID, b, "the meta group")
	if err != nil {
		return metaResult{}, err
	}
	res := v.(metaResult)
	return res, res.err
}

// startStatic bootstraps the cluster (no --peer and no data) or joins it
// through a peer, then seeds the table.
func (s *Store) startStatic() error {
	switch {
	case s.raft.HasGroup(keys.MetaGroupID) && s.raft.Initialized(keys.MetaGroupID):
		// A restart: the data has everything.
	case len(s.cfg.Peers) == 0:
		info, err := proto.Marshal(&storepb.StoreInfo{Id: s.cfg.StoreID, Addr: s.cfg.AdvertiseAddr})
		if err != nil {
			return err
		}
		initial := []raftstore.KV{
			{Key: keys.MetaStore(s.cfg.StoreID), Value: info},
			{Key: keys.MetaNextGroup(), Value: encodeUint64(firstGroupID)},
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		if err := s.raft.CreateGroup(ctx, keys.MetaGroupID, []uint64{s.cfg.StoreID}, initial, true); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if err := s.meta.load(); err != nil {
			return err
		}
		s.log.Info("bootstrapped a new cluster")
	default:
		// An empty replica of the meta group, filled by the leader once the
		// membership change that adds us commits.
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		if err := s.raft.CreateGroup(ctx, keys.MetaGroupID, nil, nil, false); err != nil {
			return err
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.joinLoop() }()
	}
	s.health.SetServingStatus("", healthServing)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.seedLoop() }()
	go func() { defer s.wg.Done(); s.runDriverWhileMetaLeader() }()
	return nil
}

// joinLoop asks the --peer stores, in turn, to add this store until one
// does.
func (s *Store) joinLoop() {
	ids := make([]uint64, 0, len(s.cfg.Peers))
	for id := range s.cfg.Peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if s.ctx.Err() != nil || s.raft.Initialized(keys.MetaGroupID) {
			return
		}
		id := ids[attempt%len(ids)]
		err := s.joinThrough(id)
		if err == nil {
			s.log.Info("joined the cluster", zap.Uint64("through", id))
			return
		}
		if attempt%10 == 0 {
			s.log.Info("waiting to join the cluster", zap.Uint64("peer", id), zap.String("addr", s.cfg.Peers[id]), zap.Error(err))
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (s *Store) joinThrough(peer uint64) error {
	c, err := s.tr.Client(peer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	_, err = c.Join(ctx, &storepb.JoinRequest{StoreId: s.cfg.StoreID, Addr: s.cfg.AdvertiseAddr})
	return err
}

// join handles a Join request: a membership change of the meta group.
func (s *Store) join(ctx context.Context, req *storepb.JoinRequest) (*storepb.JoinResponse, error) {
	if s.meta == nil {
		return nil, status.Error(codes.FailedPrecondition, "this store follows a placement driver: start new stores with --pd, not --peer")
	}
	if req.GetStoreId() == 0 || req.GetAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "join needs a store id and an address")
	}
	for _, st := range s.meta.storeList() {
		if st.GetId() == req.GetStoreId() && st.GetAddr() == req.GetAddr() {
			return &storepb.JoinResponse{Stores: s.meta.storeList()}, nil
		}
		if st.GetId() != req.GetStoreId() && st.GetAddr() == req.GetAddr() {
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
		err := s.raft.ProposeConfChange(pctx, keys.MetaGroupID, cc)
		cancel()
		if err == nil || s.meta.hasStore(req.GetStoreId(), req.GetAddr()) {
			return &storepb.JoinResponse{Stores: s.meta.storeList()}, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, s.raftError(err, "the meta group")
		}
	}
}

// seedLoop creates the default namespace and the --namespace-mode seeds
// if the table does not have them, and keeps this store's address current.
func (s *Store) seedLoop() {
	auth := s.auth.(*staticAuthority)
	seeds := map[string]seedRow{api.DefaultNamespace: {mode: api.DefaultMode, fromDefault: true}}
	for ns, mode := range s.cfg.NamespaceModes {
		seeds[ns] = seedRow{mode: mode}
	}
	for {
		pending := 0
		for ns, sr := range seeds {
			if _, ok := s.table.Get(ns); ok {
				delete(seeds, ns)
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
			_, err := auth.seed(ctx, ns, sr.mode, sr.fromDefault)
			cancel()
			if err != nil {
				pending++
			}
		}
		if pending == 0 && s.updateOwnAddress() {
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type seedRow struct {
	mode        string
	fromDefault bool
}

// updateOwnAddress records a new --addr for this store after a restart.
func (s *Store) updateOwnAddress() bool {
	for _, st := range s.meta.storeList() {
		if st.GetId() != s.cfg.StoreID {
			continue
		}
		if st.GetAddr() == s.cfg.AdvertiseAddr {
			return true
		}
		c, err := proto.Marshal(&storepb.MetaCommand{Cmd: &storepb.MetaCommand_SetStoreAddr{
			SetStoreAddr: &storepb.StoreInfo{Id: s.cfg.StoreID, Addr: s.cfg.AdvertiseAddr},
		}})
		if err != nil {
			return true
		}
		ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
		defer cancel()
		_, err = s.propose(ctx, keys.MetaGroupID, c, "the meta group")
		return err == nil
	}
	return false // not a member yet
}

func scanPrefix(r pebble.Reader, prefix []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

func encodeUint64(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func decodeUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
