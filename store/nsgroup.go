package store

// The state machine of a strong namespace's Raft group: the keys with
// their versions, and the group's switch state.
//
// A group is active (serves strong operations) when its active epoch is
// greater than its fenced epoch. Data enters the group only while it is not
// active (a load of merged LWW records, then Activate) and leaves it only
// at a Fence (every replica converts the state at that log position into
// LWW records). So every strong write the group applied is in the state
// a fence converts, and no strong write is applied while raw writes are
// accepted: the log orders them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/raftstore"
)

type nsGroup struct {
	s  *Store
	id uint64
	// cur is the state as applied so far (loop only); state is what others
	// read, published once the apply batch is committed.
	cur   *storepb.GroupState
	state atomic.Pointer[storepb.GroupState]
}

func newNSGroup(s *Store, id uint64) *nsGroup {
	g := &nsGroup{s: s, id: id}
	if err := g.load(); err != nil {
		s.log.Error("load group state", zap.Uint64("group", id), zap.Error(err))
		g.cur = &storepb.GroupState{}
		g.state.Store(g.cur)
	}
	return g
}

func (g *nsGroup) load() error {
	st := &storepb.GroupState{}
	b, ok, err := getValue(g.s.db, keys.GroupState(g.id))
	if err != nil {
		return err
	}
	if ok {
		if err := proto.Unmarshal(b, st); err != nil {
			return err
		}
	}
	g.cur = st
	g.state.Store(proto.Clone(st).(*storepb.GroupState))
	return nil
}

// State returns the group's switch state on this store.
func (g *nsGroup) State() *storepb.GroupState { return g.state.Load() }

func isActive(st *storepb.GroupState) bool { return st.GetActiveEpoch() > st.GetFencedEpoch() }

// initialGroupState is the first state of a namespace's group: active from
// the start if the namespace was strong when the group was created.
func initialGroupState(group uint64, rec *storepb.NamespaceRecord) ([]raftstore.KV, error) {
	st := &storepb.GroupState{}
	if rec.GetMode() == "strong" && rec.GetEpoch() == 1 {
		st.ActiveEpoch = 1
	}
	b, err := proto.Marshal(st)
	if err != nil {
		return nil, err
	}
	return []raftstore.KV{{Key: keys.GroupState(group), Value: b}}, nil
}

// strongValue is how a key of a strong namespace is stored: its version
// (the index of the entry that wrote it) then its value.
func encodeStrong(version uint64, value []byte) []byte {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, version)
	return append(b, value...)
}

func decodeStrong(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("strong value of %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// casResult is what CAS and Delete return to their proposer.
type casResult struct {
	aborted bool // the group is not active: a switch is in progress
	success bool
	found   bool
	version uint64
	value   []byte
	err     error
}

func (g *nsGroup) Apply(ac *raftstore.ApplyContext, index uint64, cmd []byte) any {
	var c storepb.GroupCommand
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return casResult{err: fmt.Errorf("group command: %w", err)}
	}
	switch x := c.GetCmd().(type) {
	case *storepb.GroupCommand_Cas:
		return g.applyCas(ac, index, x.Cas)
	case *storepb.GroupCommand_Delete:
		return g.applyDelete(ac, x.Delete)
	case *storepb.GroupCommand_LoadBegin:
		st := g.next()
		if !isActive(st) && x.LoadBegin.GetEpoch() > st.GetActiveEpoch() {
			prefix := keys.StrongPrefix(g.id)
			if err := ac.Batch.DeleteRange(prefix, keys.PrefixEnd(prefix), nil); err != nil {
				return casResult{err: err}
			}
			st.LoadingEpoch, st.LoadId, st.RecordsLoaded, st.MaxLoadedTs = x.LoadBegin.GetEpoch(), x.LoadBegin.GetLoadId(), 0, nil
		}
		return g.save(ac, st)
	case *storepb.GroupCommand_LoadBatch:
		return g.applyLoadBatch(ac, index, x.LoadBatch)
	case *storepb.GroupCommand_Activate:
		st := g.next()
		a := x.Activate
		switch {
		case isActive(st) && a.GetLoadId() == 0 && a.GetEpoch() > st.GetActiveEpoch():
			// Switched away and back before the group was fenced: it never
			// stopped being the truth, so it continues at the new epoch.
			st.ActiveEpoch = a.GetEpoch()
		case !isActive(st) && st.GetLoadingEpoch() == a.GetEpoch() && st.GetLoadId() == a.GetLoadId() &&
			a.GetLoadId() != 0 && st.GetRecordsLoaded() == a.GetRecordsLoaded():
			st.ActiveEpoch = a.GetEpoch()
			g.s.log.Info("namespace group active", zap.Uint64("group", g.id), zap.Uint64("epoch", a.GetEpoch()),
				zap.Uint64("records", a.GetRecordsLoaded()))
		}
		return g.save(ac, st)
	case *storepb.GroupCommand_Fence:
		return g.applyFence(ac, x.Fence)
	}
	return casResult{err: errors.New("unknown group command")}
}

// next returns a copy of the current state to modify.
func (g *nsGroup) next() *storepb.GroupState { return proto.Clone(g.cur).(*storepb.GroupState) }

func (g *nsGroup) save(ac *raftstore.ApplyContext, st *storepb.GroupState) any {
	b, err := proto.Marshal(st)
	if err != nil {
		return casResult{err: err}
	}
	if err := ac.Batch.Set(keys.GroupState(g.id), b, nil); err != nil {
		return casResult{err: err}
	}
	g.cur = st
	pub := proto.Clone(st).(*storepb.GroupState)
	ac.AfterCommit(func() {
		g.state.Store(pub)
		g.s.notifyStateChange()
	})
	return casResult{success: true}
}

func (g *nsGroup) readKey(r pebble.Reader, key []byte) (uint64, []byte, bool, error) {
	b, ok, err := getValue(r, keys.StrongKey(g.id, key))
	if err != nil || !ok {
		return 0, nil, false, err
	}
	v, val, err := decodeStrong(b)
	return v, val, err == nil, err
}

func (g *nsGroup) applyCas(ac *raftstore.ApplyContext, index uint64, c *storepb.CasCommand) casResult {
	if !isActive(g.cur) {
		return casResult{aborted: true}
	}
	ver, val, found, err := g.readKey(ac.Batch, c.GetKey())
	if err != nil {
		return casResult{err: err}
	}
	if ver != c.GetExpectedVersion() {
		return casResult{found: found, version: ver, value: val}
	}
	if err := ac.Batch.Set(keys.StrongKey(g.id, c.GetKey()), encodeStrong(index, c.GetValue()), nil); err != nil {
		return casResult{err: err}
	}
	return casResult{success: true, found: true, version: index}
}

func (g *nsGroup) applyDelete(ac *raftstore.ApplyContext, c *storepb.DeleteCommand) casResult {
	if !isActive(g.cur) {
		return casResult{aborted: true}
	}
	ver, val, found, err := g.readKey(ac.Batch, c.GetKey())
	if err != nil {
		return casResult{err: err}
	}
	if c.GetExpectedVersion() != 0 && ver != c.GetExpectedVersion() {
		return casResult{found: found, version: ver, value: val}
	}
	if found {
		if err := ac.Batch.Delete(keys.StrongKey(g.id, c.GetKey()), nil); err != nil {
			return casResult{err: err}
		}
	}
	return casResult{success: true, found: found, version: ver}
}

func (g *nsGroup) applyLoadBatch(ac *raftstore.ApplyContext, index uint64, lb *storepb.LoadBatch) any {
	st := g.next()
	if isActive(st) || st.GetLoadingEpoch() != lb.GetEpoch() || st.GetLoadId() != lb.GetLoadId() {
		return casResult{success: true} // another load's, or late: ignored
	}
	maxTS := hlc.FromProto(st.GetMaxLoadedTs())
	for _, r := range lb.GetRecords() {
		ts := hlc.FromProto(r.GetTs())
		if maxTS.Less(ts) {
			maxTS = ts
		}
		if r.GetTombstone() {
			continue
		}
		if err := ac.Batch.Set(keys.StrongKey(g.id, r.GetKey()), encodeStrong(index, r.GetValue()), nil); err != nil {
			return casResult{err: err}
		}
	}
	st.RecordsLoaded += uint64(len(lb.GetRecords()))
	st.MaxLoadedTs = maxTS.ToProto()
	return g.save(ac, st)
}

// applyFence ends the group's strong epoch. If the group was active, every
// replica converts the state into LWW records stamped with one timestamp,
// chosen deterministically from the entry and the state so that every
// replica writes identical records.
func (g *nsGroup) applyFence(ac *raftstore.ApplyContext, f *storepb.Fence) any {
	st := g.next()
	if st.GetFencedEpoch() >= f.GetEpoch() {
		return casResult{success: true}
	}
	if isActive(st) {
		ts := hlc.FromProto(f.GetTs())
		for _, floor := range []hlc.Timestamp{hlc.FromProto(st.GetMaxLoadedTs()), hlc.FromProto(st.GetFenceTs())} {
			if !floor.Less(ts) {
				ts = hlc.Timestamp{Wall: floor.Wall, Logical: floor.Logical + 1, StoreID: ts.StoreID}
			}
		}
		if err := g.convert(ac, ts); err != nil {
			ac.Fail(fmt.Errorf("group %d: convert to eventual: %w", g.id, err))
			return casResult{err: err}
		}
		st.FenceTs = ts.ToProto()
	}
	st.FencedEpoch = f.GetEpoch()
	return g.save(ac, st)
}

// convert writes the group's state as this store's LWW replica of the
// namespace: every key at ts, every other local key deleted at ts.
func (g *nsGroup) convert(ac *raftstore.ApplyContext, ts hlc.Timestamp) error {
	ns, ok := g.s.table.NamespaceOfGroup(g.id)
	if !ok {
		return fmt.Errorf("no namespace has group %d", g.id)
	}
	prefix := keys.StrongPrefix(g.id)
	it, err := ac.Batch.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	var kvs []lww.KV
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		_, val, err := decodeStrong(v)
		if err != nil {
			_ = it.Close()
			return err
		}
		kvs = append(kvs, lww.KV{Key: append([]byte(nil), it.Key()[len(prefix):]...), Value: append([]byte(nil), val...)})
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Local writes after the fence must be stamped after it.
	if err := g.s.clock.Forward(ts); err != nil {
		return err
	}
	if err := g.s.lww.Replace(ns, ts, kvs); err != nil {
		return err
	}
	g.s.log.Info("namespace converted to eventual", zap.String("namespace", ns), zap.Int("keys", len(kvs)), zap.Stringer("ts", ts))
	return nil
}

func (g *nsGroup) ApplyConfChange(*raftstore.ApplyContext, *eraftpb.ConfChange) {}

func (g *nsGroup) Restored() error {
	if err := g.load(); err != nil {
		return err
	}
	// A snapshot taken after a fence carries the strong state and the fence;
	// the conversion it implies is idempotent, so redo it here.
	st := g.cur
	if st.GetFencedEpoch() >= st.GetActiveEpoch() && st.GetFenceTs() != nil {
		if ns, ok := g.s.table.NamespaceOfGroup(g.id); ok {
			if err := g.convertFromDB(ns, hlc.FromProto(st.GetFenceTs())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *nsGroup) convertFromDB(ns string, ts hlc.Timestamp) error {
	prefix := keys.StrongPrefix(g.id)
	var kvs []lww.KV
	if err := scanPrefix(g.s.db, prefix, func(k, v []byte) error {
		_, val, err := decodeStrong(v)
		if err != nil {
			return err
		}
		kvs = append(kvs, lww.KV{Key: append([]byte(nil), k[len(prefix):]...), Value: append([]byte(nil), val...)})
		return nil
	}); err != nil {
		return err
	}
	if err := g.s.clock.Forward(ts); err != nil {
		return err
	}
	return g.s.lww.Replace(ns, ts, kvs)
}
