// Package meta is the authority of a static-mode cluster (no placement
// driver): a Raft group of every store, the meta group, that replicates the
// store list (through membership changes) and the namespace table (through
// MetaCommands). A row's version is the index of the entry that wrote it.
//
// It implements modetable.Authority for the store, answers Join requests
// from new stores, seeds the table, and runs the mode-switch driver while
// this store leads the meta group.
package meta

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
	"github.com/rdb-project/rdb/store/modeswitch"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/raftstore"
)

// firstGroupID is the first namespace group id; 1 is the meta group.
const firstGroupID uint64 = 2

// Config is what the meta group needs from its store.
type Config struct {
	StoreID       uint64
	AdvertiseAddr string
	// Peers are stores to join through (--peer): id -> address.
	Peers map[uint64]string
	// NamespaceModes seed the table when the cluster is new.
	NamespaceModes map[string]string
	DB             *pebble.DB
	Table          *modetable.Table
	Logger         *zap.Logger
	// Client returns a store's internal client.
	Client func(id uint64) (storepb.StoreInternalClient, error)
	// GroupState returns this store's replica state of a namespace group
	// (nil: no replica), for the switch driver.
	GroupState func(group uint64) *storepb.GroupState
	// MaxNamespaces bounds the namespaces this store's proposals create
	// (0: no limit).
	MaxNamespaces int
	// LearnClusterID persists the cluster's id as this store's (m/cluster)
	// when the meta group's state or a join names it; an error if the
	// store already belongs to another cluster.
	LearnClusterID func(id uint64) error
	// ClusterID is this store's cluster id (0: not known yet).
	ClusterID func() uint64
	// OnStoresChanged, if set, is called (on the raft loop: it must not
	// block) after the set of stores changed: every namespace group's
	// wanted voters changed with it.
	OnStoresChanged func()
}

// Meta is the meta group's state machine and the static authority.
type Meta struct {
	cfg  Config
	log  *zap.Logger
	raft *raftstore.RaftStore

	mu        sync.RWMutex
	stores    map[uint64]string // store id -> address, as applied
	nextGroup uint64
	rows      int    // namespaces in the table, as applied
	clusterID uint64 // the cluster's id, as applied (0: a cluster born without one)

	// changes feeds the switch driver the rows applied since it last
	// looked.
	changes modeswitch.Feed

	// startCommit is the meta log's durable commit index when the store
	// started; caughtUp is set once the store has applied it again.
	startCommit uint64
	caughtUp    atomic.Bool
}

// result is what applying a MetaCommand returns to its proposer.
type result struct {
	rec     *storepb.NamespaceRecord
	changed bool
	err     error // a client error: the command was applied as a no-op
}

// state is the meta group's state as the DB holds it.
type state struct {
	stores    map[uint64]string
	nextGroup uint64
	rows      []*storepb.NamespaceRecord
	clusterID uint64
}

// New loads the meta state this store holds (its rows into the table). A
// state that cannot be read is an error: the store must not start with an
// empty one in its place.
func New(cfg Config) (*Meta, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.LearnClusterID == nil {
		cfg.LearnClusterID = func(uint64) error { return nil }
	}
	if cfg.ClusterID == nil {
		cfg.ClusterID = func() uint64 { return 0 }
	}
	m := &Meta{cfg: cfg, log: cfg.Logger, stores: make(map[uint64]string)}
	if cfg.Table != nil {
		cfg.Table.OnChange(func(_, cur *storepb.NamespaceRecord) { m.changes.Add(cur) })
	}
	st, err := loadState(cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if err := m.install(st); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	return m, nil
}

// SetRaft gives the meta group its Raft engine, opened after it and not
// started yet: the meta log's commit index it loaded is what this store
// must apply again before it takes raw writes (CaughtUp).
func (m *Meta) SetRaft(rs *raftstore.RaftStore) {
	m.raft = rs
	st, _ := rs.Status(keys.MetaGroupID)
	m.startCommit = st.Commit
}

func loadState(r pebble.Reader) (*state, error) {
	st := &state{stores: make(map[uint64]string), nextGroup: firstGroupID}
	if err := kvread.ScanPrefix(r, keys.MetaStorePrefix(), func(_, v []byte) error {
		var info storepb.StoreInfo
		if err := proto.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("decode store: %w", err)
		}
		st.stores[info.GetId()] = info.GetAddr()
		return nil
	}); err != nil {
		return nil, err
	}
	if b, ok, err := kvread.Get(r, keys.MetaNextGroup()); err != nil {
		return nil, err
	} else if ok {
		if len(b) != 8 {
			return nil, fmt.Errorf("next group id of %d bytes", len(b))
		}
		st.nextGroup = binary.BigEndian.Uint64(b)
	}
	if b, ok, err := kvread.Get(r, keys.MetaClusterID()); err != nil {
		return nil, err
	} else if ok {
		if st.clusterID, err = clusterid.Decode(b); err != nil {
			return nil, err
		}
	}
	if err := kvread.ScanPrefix(r, keys.MetaNamespacePrefix(), func(_, v []byte) error {
		rec := &storepb.NamespaceRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("decode namespace row: %w", err)
		}
		st.rows = append(st.rows, rec)
		return nil
	}); err != nil {
		return nil, err
	}
	return st, nil
}

// install makes a loaded state the current one and applies its rows to
// the table (rows never go back: the table keeps the newer of two). The
// state's cluster id becomes this store's (a store that joined learns it
// from the snapshot that brought it the state, if not from its join).
func (m *Meta) install(st *state) error {
	m.mu.Lock()
	m.stores, m.nextGroup, m.rows = st.stores, st.nextGroup, len(st.rows)
	if st.clusterID != 0 {
		m.clusterID = st.clusterID
	}
	m.mu.Unlock()
	for _, r := range st.rows {
		m.cfg.Table.Apply(r)
	}
	if st.clusterID == 0 {
		return nil
	}
	if err := m.cfg.LearnClusterID(st.clusterID); err != nil {
		return fmt.Errorf("the meta group's state names cluster %s: %w", clusterid.String(st.clusterID), err)
	}
	return nil
}

// ClusterID is the cluster's id as the meta group's state holds it (0: the
// cluster was born without one, or this store has not received the state
// yet).
func (m *Meta) ClusterID() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.clusterID
}

// storeList returns the stores, by id.
func (m *Meta) storeList() []*storepb.StoreInfo {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*storepb.StoreInfo, 0, len(m.stores))
	for id, addr := range m.stores {
		out = append(out, &storepb.StoreInfo{Id: id, Addr: addr})
	}
	slices.SortFunc(out, func(a, b *storepb.StoreInfo) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

func (m *Meta) hasStore(id uint64, addr string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.stores[id] == addr
}

func (m *Meta) storeIDs() []uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids := make([]uint64, 0, len(m.stores))
	for id := range m.stores {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// StateMachine returns the meta group's state machine.
func (m *Meta) StateMachine() raftstore.StateMachine { return (*stateMachine)(m) }

// stateMachine is Meta as the Raft loop sees it.
type stateMachine Meta

func (sm *stateMachine) Apply(ac *raftstore.ApplyContext, index uint64, cmd []byte) (any, error) {
	m := (*Meta)(sm)
	var c storepb.MetaCommand
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return nil, fmt.Errorf("decode meta command: %w", err)
	}
	switch x := c.GetCmd().(type) {
	case *storepb.MetaCommand_CreateNamespace:
		req := x.CreateNamespace
		return m.setRow(ac, index, c.GetMaxNamespaces(), req.GetName(), req.GetMode(), namespace.SetRequest{OnlyIfAbsent: true, FromDefault: req.GetFromDefault()})
	case *storepb.MetaCommand_SetMode:
		req := x.SetMode
		return m.setRow(ac, index, c.GetMaxNamespaces(), req.GetName(), req.GetMode(), namespace.SetRequest{Force: req.GetForce()})
	case *storepb.MetaCommand_SetStoreAddr:
		return result{}, m.putStore(ac, x.SetStoreAddr)
	}
	return nil, errors.New("unknown meta command")
}

// setRow applies the one row rule (namespace.Next) to a namespace. Invalid
// input, or a creation past max namespaces, is answered to the proposer,
// and the entry changes nothing.
func (m *Meta) setRow(ac *raftstore.ApplyContext, index, maxRows uint64, name, mode string, req namespace.SetRequest) (result, error) {
	if err := api.ValidateNamespace(name); err != nil {
		return result{err: err}, nil
	}
	md, err := namespace.ParseMode(mode)
	if err != nil {
		return result{err: err}, nil
	}
	req.Mode = md
	cur, err := readRow(ac.Batch, name)
	if err != nil {
		return result{}, err
	}
	next, changed := namespace.Next(cur, name, req)
	if !changed {
		return result{rec: cur}, nil
	}
	if cur == nil {
		m.mu.Lock()
		full := maxRows > 0 && uint64(m.rows) >= maxRows
		if !full {
			m.rows++
		}
		m.mu.Unlock()
		if full {
			return result{err: status.Errorf(codes.ResourceExhausted,
				"the cluster already has %d namespaces, the most rdb-server --max-namespaces allows: raise it to create more", maxRows)}, nil
		}
		ac.Finally(func(committed bool) {
			if !committed {
				m.mu.Lock()
				m.rows--
				m.mu.Unlock()
			}
		})
	}
	next.Version = index
	if namespace.NeedsGroup(next) {
		if err := m.assignGroup(ac, next); err != nil {
			return result{}, err
		}
	}
	if err := m.writeRow(ac, next); err != nil {
		return result{}, err
	}
	return result{rec: next, changed: true}, nil
}

func readRow(r pebble.Reader, ns string) (*storepb.NamespaceRecord, error) {
	b, ok, err := kvread.Get(r, keys.MetaNamespace(ns))
	if err != nil || !ok {
		return nil, err
	}
	rec := &storepb.NamespaceRecord{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("decode namespace row %q: %w", ns, err)
	}
	return rec, nil
}

func (m *Meta) writeRow(ac *raftstore.ApplyContext, rec *storepb.NamespaceRecord) error {
	b, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	if err := ac.Batch.Set(keys.MetaNamespace(rec.GetName()), b, nil); err != nil {
		return err
	}
	ac.AfterCommit(func() { m.cfg.Table.Apply(rec) })
	return nil
}

// assignGroup gives a namespace that becomes strong its Raft group, whose
// voters are every store. The first of them campaigns at once: the list
// starts at a store chosen by the group id, so leaders are spread over the
// stores rather than all on the lowest id.
func (m *Meta) assignGroup(ac *raftstore.ApplyContext, rec *storepb.NamespaceRecord) error {
	m.mu.Lock()
	rec.GroupId = m.nextGroup
	m.nextGroup++
	next := m.nextGroup
	m.mu.Unlock()
	ids := m.storeIDs()
	if n := uint64(len(ids)); n > 0 {
		k := int(rec.GetGroupId() % n)
		ids = slices.Concat(ids[k:], ids[:k])
	}
	rec.GroupPeers = ids
	ac.Finally(func(committed bool) {
		if !committed {
			m.mu.Lock()
			m.nextGroup = rec.GroupId
			m.mu.Unlock()
		}
	})
	return ac.Batch.Set(keys.MetaNextGroup(), binary.BigEndian.AppendUint64(nil, next), nil)
}

func (m *Meta) putStore(ac *raftstore.ApplyContext, info *storepb.StoreInfo) error {
	b, err := proto.Marshal(&storepb.StoreInfo{Id: info.GetId(), Addr: info.GetAddr()})
	if err != nil {
		return err
	}
	if err := ac.Batch.Set(keys.MetaStore(info.GetId()), b, nil); err != nil {
		return err
	}
	id, addr := info.GetId(), info.GetAddr()
	m.mu.Lock()
	m.stores[id] = addr
	m.mu.Unlock()
	return nil
}

func (sm *stateMachine) ApplyConfChange(ac *raftstore.ApplyContext, cc *eraftpb.ConfChange) error {
	m := (*Meta)(sm)
	switch cc.GetType() {
	case eraftpb.ConfChangeAddNode, eraftpb.ConfChangeAddLearnerNode:
		var info storepb.StoreInfo
		if err := proto.Unmarshal(cc.GetContext(), &info); err != nil || info.GetId() != cc.GetNodeId() || info.GetAddr() == "" {
			// Joins carry the new store's address; without one nobody
			// could reach it. Every replica skips the same entry.
			m.log.Error("membership change without a store address", zap.Uint64("store", cc.GetNodeId()))
			return nil
		}
		if err := m.putStore(ac, &info); err != nil {
			return err
		}
		m.log.Info("store joined", zap.Uint64("id", info.GetId()), zap.String("addr", info.GetAddr()))
		m.storesChanged()
	case eraftpb.ConfChangeRemoveNode:
		if err := ac.Batch.Delete(keys.MetaStore(cc.GetNodeId()), nil); err != nil {
			return err
		}
		m.mu.Lock()
		delete(m.stores, cc.GetNodeId())
		m.mu.Unlock()
		m.storesChanged()
	}
	return nil
}

func (m *Meta) storesChanged() {
	if m.cfg.OnStoresChanged != nil {
		m.cfg.OnStoresChanged()
	}
}

// Restore reloads the meta state a snapshot wrote into ac.Batch.
func (sm *stateMachine) Restore(ac *raftstore.ApplyContext) error {
	m := (*Meta)(sm)
	st, err := loadState(ac.Batch)
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	ac.AfterCommit(func() {
		if err := m.install(st); err != nil {
			// Peers' calls name their cluster, so a snapshot of another
			// cluster cannot get here; say so loudly if one did.
			m.log.Error("installed a meta snapshot of another cluster", zap.Error(err))
		}
		m.storesChanged()
	})
	return nil
}

// CaughtUp reports whether the store has applied its meta log as far as it
// had durably committed it before it started: until then its table may be
// older than what it reported before a crash, and it takes no raw writes.
func (m *Meta) CaughtUp() bool {
	if m.caughtUp.Load() {
		return true
	}
	st, ok := m.raft.Status(keys.MetaGroupID)
	if !ok || st.Applied < m.startCommit {
		return false
	}
	m.caughtUp.Store(true)
	return true
}

// Stores lists every store of the cluster.
func (m *Meta) Stores() []*storepb.StoreInfo { return m.storeList() }

// StoreAddr returns the address of a store of the cluster.
func (m *Meta) StoreAddr(id uint64) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	addr, ok := m.stores[id]
	return addr, ok
}

// Ensure creates a namespace a client names before the table has it. A
// namespace this store was started with (--namespace-mode) gets that mode:
// a client can call before the seed loop has proposed the row, and the
// first row wins, so creating it with the default would drop the
// configured mode.
func (m *Meta) Ensure(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	if mode, ok := m.cfg.NamespaceModes[ns]; ok {
		return m.create(ctx, ns, mode, false)
	}
	return m.create(ctx, ns, string(namespace.DefaultMode), true)
}

// SetMode sets a namespace's mode through the meta group.
func (m *Meta) SetMode(ctx context.Context, ns, mode string, force bool) (*storepb.NamespaceRecord, bool, error) {
	res, err := m.propose(ctx, &storepb.MetaCommand{Cmd: &storepb.MetaCommand_SetMode{
		SetMode: &storepb.SetMode{Name: ns, Mode: mode, Force: force},
	}})
	if err != nil {
		return nil, false, err
	}
	return res.rec, res.changed, nil
}

func (m *Meta) create(ctx context.Context, ns, mode string, fromDefault bool) (*storepb.NamespaceRecord, error) {
	res, err := m.propose(ctx, &storepb.MetaCommand{Cmd: &storepb.MetaCommand_CreateNamespace{
		CreateNamespace: &storepb.NamespaceRecord{Name: ns, Mode: mode, FromDefault: fromDefault},
	}})
	if err != nil {
		return nil, err
	}
	return res.rec, nil
}

func (m *Meta) propose(ctx context.Context, c *storepb.MetaCommand) (result, error) {
	c.MaxNamespaces = uint64(max(m.cfg.MaxNamespaces, 0))
	b, err := proto.Marshal(c)
	if err != nil {
		return result{}, err
	}
	v, err := m.raft.ProposeRetrying(ctx, keys.MetaGroupID, b)
	if err != nil {
		return result{}, raftstore.WriteError(err, "the meta group")
	}
	res := v.(result)
	return res, res.err
}

var _ modetable.Authority = (*Meta)(nil)
