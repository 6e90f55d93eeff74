// Package nsgroup is the state machine of a strong namespace's Raft group:
// the namespace's keys, each with its version (the index of the entry that
// wrote it), and the group's switch state (package modeswitch).
//
// Every write goes through the apply batch the Raft loop hands it, so a
// key, the switch state and the group's applied index always change
// together; a decode or persistence error is returned and stops the store,
// so a replica never counts an entry it did not apply. What others read of
// the state (State) is published only once the batch is committed.
//
// A group depends on its store through Deps only: the DB, the LWW engine
// its fences convert the namespace into, and the table that names the
// group's namespace.
package nsgroup

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/modeswitch"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/raftstore"
)

// Converter stages a namespace's conversion into LWW records in an apply
// batch (lww.Engine).
type Converter interface {
	StageReplace(b *pebble.Batch, ns string, ts hlc.Timestamp, kvs []lww.KV) (done func(committed bool), err error)
}

// Deps are what namespace groups need from their store.
type Deps struct {
	DB  *pebble.DB
	LWW Converter
	// Clock is moved past a fence's timestamp once it is applied, so that
	// local raw writes after the switch are stamped after it.
	Clock *hlc.Clock
	// Namespace returns the namespace whose group is group.
	Namespace func(group uint64) (string, bool)
	Logger    *zap.Logger
	// OnStateChange runs in the Raft loop after a group's switch state
	// changed and was committed. It must not block.
	OnStateChange func(group uint64)
}

// Groups are the namespace groups of one store.
type Groups struct {
	deps Deps
	mu   sync.RWMutex
	m    map[uint64]*Group
	// waiters are closed when their group is registered (Wait); an
	// entry lives only while someone waits.
	waiters map[uint64][]chan struct{}
	// cache is shared by the groups (valuecache.go).
	cache *valueCache
	// loading, while the store starts, is the iterator Open reads states
	// through (StartLoading).
	loading *pebble.Iterator
}

// StartLoading makes Open read through one iterator moving forward, until
// stop is called: at start-up the groups open in id order, and 100,000
// point reads would each set up an iterator through every level of the
// LSM. Only Open may run in between, from one goroutine.
func (gs *Groups) StartLoading() (stop func(), err error) {
	it, err := gs.deps.DB.NewIter(nil)
	if err != nil {
		return nil, err
	}
	gs.loading = it
	return func() {
		gs.loading = nil
		_ = it.Close()
	}, nil
}

// New returns an empty set of groups.
func New(deps Deps) *Groups {
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.OnStateChange == nil {
		deps.OnStateChange = func(uint64) {}
	}
	return &Groups{deps: deps, m: make(map[uint64]*Group), cache: newValueCache()}
}

// Open loads group id's state from the DB and registers it. An unreadable
// state is an error: the store must not start with an empty one instead.
func (gs *Groups) Open(id uint64) (*Group, error) {
	g := &Group{id: id, deps: &gs.deps, cache: gs.cache}
	st, err := gs.loadState(id)
	if err != nil {
		return nil, fmt.Errorf("nsgroup: group %d: %w", id, err)
	}
	g.cur = st
	g.state.Store(proto.Clone(st).(*storepb.GroupState))
	gs.mu.Lock()
	gs.m[id] = g
	for _, ch := range gs.waiters[id] {
		close(ch)
	}
	delete(gs.waiters, id)
	gs.mu.Unlock()
	return g, nil
}

// Wait waits until group id has its replica here (Open registered it) or
// ctx ends, and reports whether it is here.
func (gs *Groups) Wait(ctx context.Context, id uint64) bool {
	gs.mu.Lock()
	if gs.m[id] != nil {
		gs.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if gs.waiters == nil {
		gs.waiters = make(map[uint64][]chan struct{})
	}
	gs.waiters[id] = append(gs.waiters[id], ch)
	gs.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	ws := slices.DeleteFunc(gs.waiters[id], func(w chan struct{}) bool { return w == ch })
	if len(ws) == 0 {
		delete(gs.waiters, id)
	} else {
		gs.waiters[id] = ws
	}
	return gs.m[id] != nil
}

// Get returns group id, or nil if this store has no replica of it.
func (gs *Groups) Get(id uint64) *Group {
	if id == 0 {
		return nil
	}
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	return gs.m[id]
}

// Forget drops a group whose replica was destroyed.
func (gs *Groups) Forget(id uint64) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	delete(gs.m, id)
	gs.cache.removeGroup(id) // called by the loop, which destroyed the replica
}

// State returns group id's switch state on this store, nil if it has no
// replica.
func (gs *Groups) State(id uint64) *storepb.GroupState {
	if g := gs.Get(id); g != nil {
		return g.State()
	}
	return nil
}

// InitialKVs is the first state of a namespace's group, for its bootstrap.
func InitialKVs(group uint64, rec *storepb.NamespaceRecord) ([]raftstore.KV, error) {
	b, err := proto.Marshal(modeswitch.InitialState(rec))
	if err != nil {
		return nil, err
	}
	return []raftstore.KV{{Key: keys.GroupState(group), Value: b}}, nil
}

// Group is one namespace group's state machine on this store.
type Group struct {
	id   uint64
	deps *Deps
	// cache is the store's value cache (valuecache.go), loop only.
	cache *valueCache
	// cur is the state as applied so far (loop only); state is what others
	// read, published once the apply batch is committed.
	cur   *storepb.GroupState
	state atomic.Pointer[storepb.GroupState]
}

// State returns the group's switch state as committed on this store.
func (g *Group) State() *storepb.GroupState { return g.state.Load() }

// Result is what CAS and Delete return to their proposer.
type Result struct {
	// Aborted: the group is not active (a switch is in progress); nothing
	// was written.
	Aborted bool
	Success bool
	Found   bool
	Version uint64
	Value   []byte
}

func (gs *Groups) loadState(id uint64) (*storepb.GroupState, error) {
	it := gs.loading
	if it == nil {
		return loadState(gs.deps.DB, id)
	}
	return decodeState(kvread.SeekGet(it, keys.GroupState(id)))
}

func loadState(r pebble.Reader, id uint64) (*storepb.GroupState, error) {
	return decodeState(kvread.Get(r, keys.GroupState(id)))
}

// decodeState decodes a stored switch state (none stored: the zero state).
func decodeState(b []byte, ok bool, err error) (*storepb.GroupState, error) {
	if err != nil || !ok {
		return &storepb.GroupState{}, err
	}
	st := &storepb.GroupState{}
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode switch state: %w", err)
	}
	return st, nil
}

// Apply applies a committed GroupCommand.
func (g *Group) Apply(ac *raftstore.ApplyContext, index uint64, cmd []byte) (any, error) {
	var c storepb.GroupCommand
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return nil, fmt.Errorf("decode group command: %w", err)
	}
	switch x := c.GetCmd().(type) {
	case *storepb.GroupCommand_Cas:
		return g.applyCas(ac, index, x.Cas)
	case *storepb.GroupCommand_Delete:
		return g.applyDelete(ac, x.Delete)
	}
	next, eff, err := modeswitch.Step(g.cur, &c)
	if err != nil {
		return nil, err
	}
	if err := g.carryOut(ac, index, eff); err != nil {
		return nil, err
	}
	if next != g.cur {
		if err := g.save(ac, next); err != nil {
			return nil, err
		}
	}
	return Result{Success: true}, nil
}

// carryOut does a switch step's effect on the keys, in the apply batch.
func (g *Group) carryOut(ac *raftstore.ApplyContext, index uint64, eff modeswitch.Effect) error {
	prefix := keys.StrongPrefix(g.id)
	if eff.ClearKeys {
		if err := ac.Batch.DeleteRange(prefix, keys.PrefixEnd(prefix), nil); err != nil {
			return err
		}
		g.cache.removeGroup(g.id)
	}
	for _, r := range eff.Load {
		if r.GetTombstone() {
			continue
		}
		if err := setValue(ac.Batch, keys.StrongKey(g.id, r.GetKey()), index, r.GetValue()); err != nil {
			return err
		}
		g.wrote(ac, r.GetKey(), cachedValue{version: index, value: r.GetValue(), found: true})
	}
	if eff.Convert {
		return g.convert(ac, eff.ConvertTs)
	}
	return nil
}

// convert stages the group's keys, as the apply batch holds them, as this
// store's LWW records of the namespace at ts (every key at ts, every other
// local record deleted at ts), in the same batch. The LWW engine holds the
// namespace until the batch is committed; then its digests take the
// records and the clock moves past ts.
func (g *Group) convert(ac *raftstore.ApplyContext, ts hlc.Timestamp) error {
	ns, ok := g.deps.Namespace(g.id)
	if !ok {
		return fmt.Errorf("no namespace has group %d", g.id)
	}
	var kvs []lww.KV
	if err := scan(ac.Batch, g.id, nil, nil, -1, func(k []byte, _ uint64, v []byte) {
		kvs = append(kvs, lww.KV{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
	}); err != nil {
		return err
	}
	done, err := g.deps.LWW.StageReplace(ac.Batch, ns, ts, kvs)
	if err != nil {
		return fmt.Errorf("convert namespace %q: %w", ns, err)
	}
	ac.Finally(done)
	ac.AfterCommit(func() {
		// Best effort: a clock more than the maximum offset behind ts is
		// moved by the raw write path once it can be (see store), and until
		// then raw writes wait.
		if err := g.deps.Clock.Forward(ts); err != nil {
			g.deps.Logger.Warn("clock behind a fence timestamp", zap.String("namespace", ns), zap.Stringer("ts", ts), zap.Error(err))
		}
		g.deps.Logger.Info("namespace converted to eventual", zap.String("namespace", ns), zap.Int("keys", len(kvs)), zap.Stringer("ts", ts))
	})
	return nil
}

// save stages the next switch state and publishes it after the commit.
func (g *Group) save(ac *raftstore.ApplyContext, st *storepb.GroupState) error {
	b, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	if err := ac.Batch.Set(keys.GroupState(g.id), b, nil); err != nil {
		return err
	}
	g.become(ac, st)
	return nil
}

// become makes st the group's state as applied so far, and publishes it
// once ac's batch is committed (or goes back if the batch is dropped).
func (g *Group) become(ac *raftstore.ApplyContext, st *storepb.GroupState) {
	prev := g.cur
	g.cur = st
	pub := proto.Clone(st).(*storepb.GroupState)
	ac.Finally(func(committed bool) {
		if !committed {
			g.cur = prev
			return
		}
		g.state.Store(pub)
		if namespace.GroupActive(pub) != namespace.GroupActive(prev) {
			g.deps.Logger.Info("namespace group switch state", zap.Uint64("group", g.id),
				zap.Uint64("active_epoch", pub.GetActiveEpoch()), zap.Uint64("fenced_epoch", pub.GetFencedEpoch()))
		}
		g.deps.OnStateChange(g.id)
	})
}

func (g *Group) applyCas(ac *raftstore.ApplyContext, index uint64, c *storepb.CasCommand) (Result, error) {
	if !namespace.GroupActive(g.cur) {
		return Result{Aborted: true}, nil
	}
	ver, val, found, err := g.current(ac, c.GetKey())
	if err != nil {
		return Result{}, err
	}
	if ver != c.GetExpectedVersion() {
		return Result{Found: found, Version: ver, Value: val}, nil
	}
	if err := setValue(ac.Batch, keys.StrongKey(g.id, c.GetKey()), index, c.GetValue()); err != nil {
		return Result{}, err
	}
	g.wrote(ac, c.GetKey(), cachedValue{version: index, value: c.GetValue(), found: true})
	return Result{Success: true, Found: true, Version: index}, nil
}

func (g *Group) applyDelete(ac *raftstore.ApplyContext, c *storepb.DeleteCommand) (Result, error) {
	if !namespace.GroupActive(g.cur) {
		return Result{Aborted: true}, nil
	}
	ver, val, found, err := g.current(ac, c.GetKey())
	if err != nil {
		return Result{}, err
	}
	if c.GetExpectedVersion() != 0 && ver != c.GetExpectedVersion() {
		return Result{Found: found, Version: ver, Value: val}, nil
	}
	if found {
		if err := ac.Batch.Delete(keys.StrongKey(g.id, c.GetKey()), nil); err != nil {
			return Result{}, err
		}
		g.wrote(ac, c.GetKey(), cachedValue{})
	}
	return Result{Success: true, Found: found, Version: ver}, nil
}

// ApplyConfChange: membership is Raft's business; the state machine has
// nothing to record.
func (g *Group) ApplyConfChange(*raftstore.ApplyContext, *eraftpb.ConfChange) error { return nil }

// Restore reloads the state a received snapshot wrote into ac.Batch. If
// the snapshot was taken after a fence that converted the keys (and before
// any load began), this replica converts them too, in the same batch: it
// may not have applied that fence itself.
func (g *Group) Restore(ac *raftstore.ApplyContext) error {
	// The snapshot replaced the keys.
	g.cache.follow(ac)
	g.cache.removeGroup(g.id)
	st, err := loadState(ac.Batch, g.id)
	if err != nil {
		return fmt.Errorf("group %d: %w", g.id, err)
	}
	if modeswitch.NeedsConversion(st) {
		if err := g.convert(ac, hlc.FromProto(st.GetFenceTs())); err != nil {
			return err
		}
	}
	// Published after the conversion's records (Finally runs in order).
	g.become(ac, st)
	return nil
}

// Read returns a key's version and value as r holds them.
func (g *Group) Read(r pebble.Reader, key []byte) (version uint64, value []byte, found bool, err error) {
	b, ok, err := kvread.Get(r, keys.StrongKey(g.id, key))
	if err != nil || !ok {
		return 0, nil, false, err
	}
	version, value, err = decodeValue(b)
	if err != nil {
		return 0, nil, false, fmt.Errorf("group %d key %q: %w", g.id, key, err)
	}
	return version, value, true, nil
}

// Scan calls fn with the group's keys in [start, end) (end empty: to the
// end), at most limit of them, as r holds them. fn's arguments are valid
// only during the call.
func (g *Group) Scan(r pebble.Reader, start, end []byte, limit int, fn func(key []byte, version uint64, value []byte)) error {
	return scan(r, g.id, start, end, limit, fn)
}

func scan(r pebble.Reader, group uint64, start, end []byte, limit int, fn func(key []byte, version uint64, value []byte)) error {
	prefix := keys.StrongPrefix(group)
	upper := keys.PrefixEnd(prefix)
	if len(end) > 0 {
		upper = keys.StrongKey(group, end)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: keys.StrongKey(group, start), UpperBound: upper})
	if err != nil {
		return err
	}
	n := 0
	for it.First(); it.Valid() && (limit < 0 || n < limit); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		ver, val, err := decodeValue(v)
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("group %d key %q: %w", group, it.Key()[len(prefix):], err)
		}
		fn(it.Key()[len(prefix):], ver, val)
		n++
	}
	return it.Close()
}

// encodeValue is how a key of a strong namespace is stored: its version
// (the index of the entry that wrote it), then its value.
func encodeValue(version uint64, value []byte) []byte {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, version)
	return append(b, value...)
}

// setValue sets key to value at version in b, encoded (encodeValue) in
// place in the batch rather than through a copy of the value.
func setValue(b *pebble.Batch, key []byte, version uint64, value []byte) error {
	op := b.SetDeferred(len(key), 8+len(value))
	copy(op.Key, key)
	binary.BigEndian.PutUint64(op.Value, version)
	copy(op.Value[8:], value)
	return op.Finish()
}

func decodeValue(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("stored value of %d bytes has no version", len(b))
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}
