// Package raftstore runs every Raft group of a store from one loop: the
// meta group (static mode) and one group per strong namespace.
//
// Each round of the loop collects the Ready of every group, writes all
// their snapshots, entries and hard states in one pebble batch synced once,
// sends messages, applies the committed entries of every group in one
// batch, then advances. Many client operations therefore share one fsync.
//
// Proposals and reads may be made on any replica: Raft forwards proposals to
// the leader, and ReadIndex reads (ReadOnlySafe) are confirmed by it, so a
// client never needs to know who leads.
package raftstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
)

// Errors returned to callers of Propose and ReadIndex.
var (
	ErrNoLeader      = errors.New("raftstore: group has no leader")
	ErrGroupNotFound = errors.New("raftstore: no such group on this store")
	ErrStopped       = errors.New("raftstore: stopped")
)

// StateMachine is a group's replicated state. Apply runs in the Raft loop;
// it must be deterministic and write only through ac.Batch.
type StateMachine interface {
	// Apply applies a committed command and returns the result handed to
	// the proposer (when the proposal was made on this store).
	Apply(ac *ApplyContext, index uint64, cmd []byte) any
	// ApplyConfChange is told about every applied membership change.
	ApplyConfChange(ac *ApplyContext, cc *eraftpb.ConfChange)
	// Restored runs after a snapshot replaced the group's state in the DB.
	Restored() error
}

// ApplyContext is the batch a round's committed entries are applied to.
type ApplyContext struct {
	// Batch is indexed: reads through it see earlier entries of the round.
	Batch *pebble.Batch
	after []func()
	err   error
}

// Fail reports that the state machine could not apply an entry because
// of a storage failure: the loop stops, as for any persistence error.
func (ac *ApplyContext) Fail(err error) {
	if ac.err == nil {
		ac.err = err
	}
}

// AfterCommit runs f once the batch is committed, still in the loop. In
// memory state that mirrors the DB is published there.
func (ac *ApplyContext) AfterCommit(f func()) { ac.after = append(ac.after, f) }

// Transport carries messages to other stores. Both methods must not block.
type Transport interface {
	Send(to uint64, msgs []*storepb.RaftMessage)
	// SendSnapshot sends a MsgSnap. The transport must call StreamSnapshot
	// exactly once for it and then ReportSnapshot.
	SendSnapshot(to, group uint64, m *eraftpb.Message)
}

// Config configures a RaftStore.
type Config struct {
	StoreID   uint64
	DB        *pebble.DB
	Transport Transport
	Logger    *zap.Logger
	// NewStateMachine returns the state machine of a group.
	NewStateMachine func(group uint64) StateMachine
	// WantReplica decides whether a message for a group this store does not
	// have creates an empty replica (which then catches up by snapshot).
	WantReplica func(group uint64) bool
	// DesiredVoters returns the stores that should be voters of a group;
	// the leader adds missing ones, one at a time. Nil: no reconciliation.
	DesiredVoters func(group uint64) []uint64
	// OnFatal is called when a write to the DB fails; the loop stops.
	OnFatal func(error)

	TickInterval   time.Duration // default 100ms
	ElectionTicks  int           // default 10
	HeartbeatTicks int           // default 1
	// CompactThreshold: the log is truncated when more than this many
	// applied entries are durable, keeping CompactKeep of them for slow
	// followers. Defaults 10000 and 5000.
	CompactThreshold uint64
	CompactKeep      uint64
}

func (c *Config) setDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.CompactThreshold == 0 {
		c.CompactThreshold = 10000
	}
	if c.CompactKeep == 0 || c.CompactKeep > c.CompactThreshold {
		c.CompactKeep = c.CompactThreshold / 2
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.OnFatal == nil {
		log := c.Logger
		c.OnFatal = func(err error) { log.Fatal("raft persistence failed", zap.Error(err)) }
	}
}

// Stats are cumulative counters of the loop's work.
type Stats struct {
	Rounds         uint64 // rounds that had work
	SyncedBatches  uint64 // persist batches committed with a sync
	EntriesWritten uint64 // log entries persisted
	EntriesApplied uint64 // committed entries applied
	SnapshotsSent  uint64 // snapshots handed to the transport
	ReadIndexes    uint64 // ReadIndex requests issued (each serves a batch of reads)
	Reads          uint64 // reads served through them
}

type stats struct {
	rounds, synced, written, applied, snapsSent, readIndexes, reads atomic.Uint64
}

// Stats returns the loop's counters.
func (rs *RaftStore) Stats() Stats {
	s := &rs.stats
	return Stats{
		Rounds: s.rounds.Load(), SyncedBatches: s.synced.Load(), EntriesWritten: s.written.Load(),
		EntriesApplied: s.applied.Load(), SnapshotsSent: s.snapsSent.Load(), ReadIndexes: s.readIndexes.Load(), Reads: s.reads.Load(),
	}
}

// Status is a snapshot of a group's Raft state.
type Status struct {
	Group    uint64
	Leader   uint64
	Term     uint64
	Commit   uint64
	Applied  uint64
	Voters   []uint64
	IsLeader bool
	// SnapshotsApplied counts snapshots this replica installed since start.
	SnapshotsApplied uint64
}

// RaftStore is the multi-Raft engine of one store.
type RaftStore struct {
	cfg Config
	db  *pebble.DB
	log *zap.Logger

	mu     sync.RWMutex // guards groups for readers outside the loop
	groups map[uint64]*group
	order  []*group // loop-owned, stable iteration order

	inbox   inbox
	waitMu  sync.Mutex
	waiters map[uint64]chan result

	snapMu   sync.Mutex
	snaps    map[uint64]*pendingSnapshot
	nextSnap uint64

	reqSeq  atomic.Uint64
	readSeq uint64

	stats stats

	stopc    chan struct{}
	donec    chan struct{}
	stopOnce sync.Once
	started  atomic.Bool
	failed   atomic.Bool
}

type result struct {
	val any
	err error
}

// Open loads every group found in the DB. Call Start to run the loop.
func Open(cfg Config) (*RaftStore, error) {
	cfg.setDefaults()
	rs := &RaftStore{
		cfg:     cfg,
		db:      cfg.DB,
		log:     cfg.Logger,
		groups:  make(map[uint64]*group),
		waiters: make(map[uint64]chan result),
		snaps:   make(map[uint64]*pendingSnapshot),
		stopc:   make(chan struct{}),
		donec:   make(chan struct{}),
	}
	rs.inbox.init()
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	rs.reqSeq.Store(binary.BigEndian.Uint64(seed[:8]) >> 1)
	rs.readSeq = binary.BigEndian.Uint64(seed[8:])
	ids, err := listGroups(cfg.DB)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := rs.openGroup(id); err != nil {
			return nil, fmt.Errorf("raftstore: open group %d: %w", id, err)
		}
	}
	return rs, nil
}

// Start runs the Raft loop.
func (rs *RaftStore) Start() {
	rs.started.Store(true)
	go rs.run()
}

// Stop ends the loop and fails every waiting call with ErrStopped.
func (rs *RaftStore) Stop() {
	rs.stopOnce.Do(func() {
		close(rs.stopc)
		if !rs.started.Load() {
			close(rs.donec)
		}
	})
	<-rs.donec
	rs.snapMu.Lock()
	for t, ps := range rs.snaps {
		_ = ps.snap.Close()
		delete(rs.snaps, t)
	}
	rs.snapMu.Unlock()
}

// run is the Raft loop. One round: take events, then handle every group's
// Ready: persist (one synced batch), send, apply (one batch), advance.
func (rs *RaftStore) run() {
	defer close(rs.donec)
	ticker := time.NewTicker(rs.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-rs.stopc:
			return
		case now := <-ticker.C:
			rs.tick(now)
		case <-rs.inbox.ready:
		}
		for _, fn := range rs.inbox.take() {
			fn()
		}
		rs.issueReads()
		if !rs.handleReady() {
			return
		}
	}
}

// handleReady carries out one round for every group with work. It returns
// false if persistence failed and the loop must stop.
func (rs *RaftStore) handleReady() bool {
	var rds []*ready
	for _, g := range rs.order {
		if g.rn.HasReady() {
			rd := g.rn.Ready()
			g.noteSoftState(rd.SoftState)
			rds = append(rds, &ready{g: g, rd: rd})
		}
	}
	if len(rds) == 0 {
		return true
	}
	rs.stats.rounds.Add(1)
	// A leader may send before its own log is durable (Raft thesis
	// §10.2.1): it counts itself towards a commit only after Advance. A
	// follower's replies promise durability, so they wait for the sync.
	for _, r := range rds {
		if r.g.isLeader() {
			rs.send(r.g, r.rd.Messages)
			r.sent = true
		}
	}
	if err := rs.persist(rds); err != nil {
		rs.fail(err)
		return false
	}
	for _, r := range rds {
		if !r.sent {
			rs.send(r.g, r.rd.Messages)
		}
	}
	if err := rs.apply(rds); err != nil {
		rs.fail(err)
		return false
	}
	for _, r := range rds {
		r.g.rn.Advance(r.rd)
		r.g.publishStatus()
	}
	return true
}

type ready struct {
	g    *group
	rd   raft.Ready
	sent bool
}

// persist writes every group's snapshot, entries and hard state in one
// batch, synced if any group must sync, then installs them in memory.
func (rs *RaftStore) persist(rds []*ready) error {
	b := rs.db.NewBatch()
	defer b.Close()
	mustSync := false
	var restored []*group
	for _, r := range rds {
		g, rd := r.g, r.rd
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := g.writeSnapshot(b, rd.Snapshot); err != nil {
				return err
			}
			mustSync = true
			restored = append(restored, g)
		}
		if err := g.writeEntries(b, rd.Entries); err != nil {
			return err
		}
		if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
			hs, err := proto.Marshal(rd.HardState)
			if err != nil {
				return err
			}
			if err := b.Set(keys.HardState(g.id), hs, nil); err != nil {
				return err
			}
		}
		mustSync = mustSync || rd.MustSync
		rs.stats.written.Add(uint64(len(rd.Entries)))
	}
	if !b.Empty() {
		opts := pebble.NoSync
		if mustSync {
			opts = pebble.Sync
		}
		if err := b.Commit(opts); err != nil {
			return fmt.Errorf("raftstore: persist: %w", err)
		}
		if mustSync {
			rs.stats.synced.Add(1)
		}
	}
	if mustSync {
		// Every apply batch committed before this synced batch is durable.
		for _, g := range rs.order {
			g.durableApplied = g.applied.index
		}
	}
	for _, r := range rds {
		if err := r.g.install(r.rd); err != nil {
			return err
		}
	}
	for _, g := range restored {
		if err := g.sm.Restored(); err != nil {
			return fmt.Errorf("raftstore: group %d restore: %w", g.id, err)
		}
		g.appliedIdx.Store(g.applied.index)
		g.notifyReads()
	}
	return nil
}

// apply applies every group's committed entries in one batch, publishes
// the results and wakes the reads that waited for them.
func (rs *RaftStore) apply(rds []*ready) error {
	b := rs.db.NewIndexedBatch()
	defer b.Close()
	ac := &ApplyContext{Batch: b}
	var touched []*group
	var results []func()
	applied := 0
	for _, r := range rds {
		g, rd := r.g, r.rd
		for _, rs0 := range rd.ReadStates {
			g.readStateArrived(rs0)
		}
		if len(rd.CommittedEntries) == 0 {
			continue
		}
		for _, e := range rd.CommittedEntries {
			if e.GetIndex() <= g.applied.index {
				continue // already in the state (restored from a snapshot)
			}
			res, err := rs.applyEntry(ac, g, e)
			if err == nil {
				err = ac.err
			}
			if err != nil {
				return err
			}
			if res != nil {
				results = append(results, res)
			}
			g.applied.index, g.applied.term = e.GetIndex(), e.GetTerm()
			applied++
		}
		ab, err := encodeApplied(g.applied)
		if err != nil {
			return err
		}
		if err := b.Set(keys.Applied(g.id), ab, nil); err != nil {
			return err
		}
		touched = append(touched, g)
	}
	if !b.Empty() {
		// Unsynced: the entries are durable in the log; after a crash they
		// are applied again from the last durable applied index.
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("raftstore: apply: %w", err)
		}
	}
	rs.stats.applied.Add(uint64(applied))
	for _, f := range ac.after {
		f()
	}
	for _, f := range results {
		f()
	}
	for _, g := range touched {
		g.appliedIdx.Store(g.applied.index)
		g.notifyReads()
		if err := rs.maybeCompact(g); err != nil {
			return err
		}
	}
	return nil
}

// applyEntry applies one committed entry and returns how to notify its
// proposer, if it was proposed here.
func (rs *RaftStore) applyEntry(ac *ApplyContext, g *group, e *eraftpb.Entry) (func(), error) {
	switch e.GetType() {
	case eraftpb.EntryNormal:
		if len(e.GetData()) == 0 {
			return nil, nil // a new leader's empty entry
		}
		origin, id, cmd, err := unframe(e.GetData())
		if err != nil {
			// A malformed entry is applied as a no-op on every replica.
			rs.log.Error("skipping malformed entry", zap.Uint64("group", g.id), zap.Uint64("index", e.GetIndex()), zap.Error(err))
			return nil, nil
		}
		res := g.sm.Apply(ac, e.GetIndex(), cmd)
		if origin != rs.cfg.StoreID {
			return nil, nil
		}
		return func() { rs.deliver(id, result{val: res}) }, nil
	case eraftpb.EntryConfChange:
		cc := &eraftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return nil, fmt.Errorf("raftstore: group %d conf change at %d: %w", g.id, e.GetIndex(), err)
		}
		g.applied.conf = g.rn.ApplyConfChange(cc)
		g.sm.ApplyConfChange(ac, cc)
		id := cc.GetId()
		return func() { rs.deliver(id, result{}) }, nil
	default:
		return nil, fmt.Errorf("raftstore: group %d: unsupported entry type %v", g.id, e.GetType())
	}
}

// maybeCompact truncates the log below a durable applied index.
func (rs *RaftStore) maybeCompact(g *group) error {
	if g.durableApplied <= g.trunc+rs.cfg.CompactThreshold {
		return nil
	}
	to := g.durableApplied - rs.cfg.CompactKeep
	term, err := g.storage.Term(to)
	if err != nil {
		return nil // already compacted in memory; try after the next round
	}
	b := rs.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(keys.LogEntry(g.id, 0), keys.LogEntry(g.id, to+1), nil); err != nil {
		return err
	}
	if err := b.Set(keys.Truncated(g.id), encodeIndexTerm(to, term), nil); err != nil {
		return err
	}
	// Unsynced: losing it in a crash only keeps more log.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("raftstore: compact: %w", err)
	}
	if err := g.storage.Compact(to); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return err
	}
	g.trunc = to
	return nil
}

func (rs *RaftStore) send(g *group, msgs []*eraftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	byPeer := make(map[uint64][]*storepb.RaftMessage)
	for _, m := range msgs {
		if m.GetType() == eraftpb.MsgSnap {
			rs.stats.snapsSent.Add(1)
			rs.cfg.Transport.SendSnapshot(m.GetTo(), g.id, m)
			continue
		}
		data, err := proto.Marshal(m)
		if err != nil {
			rs.log.Error("marshal raft message", zap.Error(err))
			continue
		}
		byPeer[m.GetTo()] = append(byPeer[m.GetTo()], &storepb.RaftMessage{GroupId: g.id, Data: data})
	}
	for to, ms := range byPeer {
		rs.cfg.Transport.Send(to, ms)
	}
}

func (rs *RaftStore) tick(now time.Time) {
	for _, g := range rs.order {
		g.rn.Tick()
		g.retryStaleReads(now)
		rs.reconcileVoters(g, now)
	}
	rs.gcSnapshots(now)
}

// reconcileVoters makes the leader add stores that should be voters.
func (rs *RaftStore) reconcileVoters(g *group, now time.Time) {
	if rs.cfg.DesiredVoters == nil || !g.isLeader() || now.Before(g.nextReconcile) {
		return
	}
	// Raft refuses a change while one is pending, so trying often is cheap.
	g.nextReconcile = now.Add(200 * time.Millisecond)
	for _, id := range rs.cfg.DesiredVoters(g.id) {
		if !slices.Contains(g.applied.conf.GetVoters(), id) {
			rs.log.Info("adding voter", zap.Uint64("group", g.id), zap.Uint64("store", id))
			cc := &eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(id)}
			if err := g.rn.ProposeConfChange(cc); err != nil {
				rs.log.Debug("propose voter", zap.Error(err))
			}
			return // one change at a time
		}
	}
}

func (rs *RaftStore) fail(err error) {
	rs.failed.Store(true)
	rs.log.Error("raft loop stops: persistence failed", zap.Error(err))
	rs.cfg.OnFatal(err)
}

// Failed reports whether the loop stopped after a persistence error.
func (rs *RaftStore) Failed() bool { return rs.failed.Load() }

// post runs fn in the loop.
func (rs *RaftStore) post(fn func()) { rs.inbox.put(fn) }

func (rs *RaftStore) newRequestID() uint64 { return rs.reqSeq.Add(1) }

func (rs *RaftStore) addWaiter(id uint64) chan result {
	ch := make(chan result, 1)
	rs.waitMu.Lock()
	rs.waiters[id] = ch
	rs.waitMu.Unlock()
	return ch
}

func (rs *RaftStore) removeWaiter(id uint64) {
	rs.waitMu.Lock()
	delete(rs.waiters, id)
	rs.waitMu.Unlock()
}

func (rs *RaftStore) deliver(id uint64, r result) {
	rs.waitMu.Lock()
	ch := rs.waiters[id]
	delete(rs.waiters, id)
	rs.waitMu.Unlock()
	if ch != nil {
		ch <- r
	}
}

func (rs *RaftStore) wait(ctx context.Context, ch chan result) (any, error) {
	select {
	case r := <-ch:
		return r.val, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-rs.stopc:
		return nil, ErrStopped
	case <-rs.donec:
		return nil, ErrStopped
	}
}

// Propose replicates cmd through the group and returns what its state
// machine's Apply returned, once applied on this store.
func (rs *RaftStore) Propose(ctx context.Context, group uint64, cmd []byte) (any, error) {
	id := rs.newRequestID()
	data := frame(rs.cfg.StoreID, id, cmd)
	ch := rs.addWaiter(id)
	defer rs.removeWaiter(id)
	rs.post(func() {
		g := rs.groups[group]
		switch {
		case g == nil:
			rs.deliver(id, result{err: ErrGroupNotFound})
		case g.lead == raft.None:
			rs.deliver(id, result{err: ErrNoLeader})
		default:
			if err := g.rn.Propose(data); err != nil {
				rs.deliver(id, result{err: fmt.Errorf("%w: %v", ErrNoLeader, err)})
			}
		}
	})
	return rs.wait(ctx, ch)
}

// ProposeConfChange proposes a membership change and waits until it is
// applied on this store.
func (rs *RaftStore) ProposeConfChange(ctx context.Context, group uint64, cc *eraftpb.ConfChange) error {
	id := rs.newRequestID()
	cc.Id = new(id)
	ch := rs.addWaiter(id)
	defer rs.removeWaiter(id)
	rs.post(func() {
		g := rs.groups[group]
		switch {
		case g == nil:
			rs.deliver(id, result{err: ErrGroupNotFound})
		case g.lead == raft.None:
			rs.deliver(id, result{err: ErrNoLeader})
		default:
			if err := g.rn.ProposeConfChange(cc); err != nil {
				rs.deliver(id, result{err: fmt.Errorf("%w: %v", ErrNoLeader, err)})
			}
		}
	})
	_, err := rs.wait(ctx, ch)
	return err
}

// ReadIndex returns once this store has applied every entry committed
// before the call: reads of the state machine after it are linearizable.
func (rs *RaftStore) ReadIndex(ctx context.Context, group uint64) error {
	w := &readWaiter{ch: make(chan error, 1)}
	rs.post(func() {
		g := rs.groups[group]
		if g == nil {
			w.ch <- ErrGroupNotFound
			return
		}
		g.pendingReads = append(g.pendingReads, w)
	})
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-rs.donec:
		return ErrStopped
	}
}

// issueReads sends one ReadIndex per group for every read that arrived
// this round. Each attempt gets a new request id.
func (rs *RaftStore) issueReads() {
	for _, g := range rs.order {
		if len(g.pendingReads) == 0 {
			continue
		}
		if g.lead == raft.None {
			for _, w := range g.pendingReads {
				w.ch <- ErrNoLeader
			}
			g.pendingReads = nil
			continue
		}
		rs.readSeq++
		ctx := binary.BigEndian.AppendUint64(nil, rs.readSeq)
		g.reads[string(ctx)] = &readBatch{waiters: g.pendingReads, sent: time.Now()}
		rs.stats.readIndexes.Add(1)
		rs.stats.reads.Add(uint64(len(g.pendingReads)))
		g.pendingReads = nil
		g.rn.ReadIndex(ctx)
	}
}

// Campaign makes this store's replica of group start an election.
func (rs *RaftStore) Campaign(group uint64) {
	rs.post(func() {
		if g := rs.groups[group]; g != nil {
			_ = g.rn.Campaign()
		}
	})
}

// Step delivers messages received from another store.
func (rs *RaftStore) Step(msgs []*storepb.RaftMessage) {
	decoded := make([]*eraftpb.Message, 0, len(msgs))
	groups := make([]uint64, 0, len(msgs))
	for _, m := range msgs {
		em := &eraftpb.Message{}
		if err := proto.Unmarshal(m.GetData(), em); err != nil {
			rs.log.Warn("dropping undecodable raft message", zap.Error(err))
			continue
		}
		decoded = append(decoded, em)
		groups = append(groups, m.GetGroupId())
	}
	rs.post(func() {
		for i, m := range decoded {
			rs.stepLocal(groups[i], m)
		}
	})
}

// StepSnapshot delivers a MsgSnap whose data has been reassembled.
func (rs *RaftStore) StepSnapshot(group uint64, m *eraftpb.Message) {
	rs.post(func() { rs.stepLocal(group, m) })
}

func (rs *RaftStore) stepLocal(group uint64, m *eraftpb.Message) {
	g := rs.groups[group]
	if g == nil {
		if rs.cfg.WantReplica == nil || !rs.cfg.WantReplica(group) {
			return
		}
		var err error
		if g, err = rs.openGroup(group); err != nil {
			rs.log.Error("create replica", zap.Uint64("group", group), zap.Error(err))
			return
		}
		rs.log.Info("created empty replica", zap.Uint64("group", group), zap.Uint64("from", m.GetFrom()))
	}
	if err := g.rn.Step(m); err != nil {
		rs.log.Debug("step", zap.Uint64("group", group), zap.Error(err))
	}
}

// ReportUnreachable tells every group that a store could not be reached.
func (rs *RaftStore) ReportUnreachable(to uint64) {
	rs.post(func() {
		for _, g := range rs.order {
			g.rn.ReportUnreachable(to)
		}
	})
}

// ReportSnapshot tells a group how sending a snapshot ended.
func (rs *RaftStore) ReportSnapshot(group, to uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	rs.post(func() {
		if g := rs.groups[group]; g != nil {
			g.rn.ReportSnapshot(to, st)
		}
	})
}

// CreateGroup makes sure this store has a replica of group. If the store
// has no state for it and is among voters, it bootstraps the group with
// those voters and the initial state machine keys (every store that
// bootstraps a group must pass the same voters and keys); otherwise it
// creates an empty replica that catches up from the leader. campaign makes
// the new replica start an election at once.
func (rs *RaftStore) CreateGroup(ctx context.Context, group uint64, voters []uint64, initial []KV, campaign bool) error {
	done := make(chan error, 1)
	rs.post(func() { done <- rs.createGroup(group, voters, initial, campaign) })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-rs.donec:
		return ErrStopped
	}
}

// CreateGroupAsync is CreateGroup without waiting: work queued after it
// (proposals, reads) finds the group. Safe to call from the loop itself.
func (rs *RaftStore) CreateGroupAsync(group uint64, voters []uint64, initial []KV, campaign bool) {
	rs.post(func() {
		if err := rs.createGroup(group, voters, initial, campaign); err != nil {
			rs.log.Error("create group", zap.Uint64("group", group), zap.Error(err))
		}
	})
}

func (rs *RaftStore) createGroup(group uint64, voters []uint64, initial []KV, campaign bool) error {
	if rs.groups[group] != nil {
		return nil
	}
	member := slices.Contains(voters, rs.cfg.StoreID)
	if member {
		b := rs.db.NewBatch()
		err := writeBootstrap(b, group, slices.Sorted(slices.Values(voters)), initial)
		if err == nil {
			err = b.Commit(pebble.Sync)
		}
		_ = b.Close()
		if err != nil {
			return fmt.Errorf("raftstore: bootstrap group %d: %w", group, err)
		}
	}
	g, err := rs.openGroup(group)
	if err != nil {
		return err
	}
	if campaign && member {
		_ = g.rn.Campaign()
	}
	return nil
}

// HasGroup reports whether this store has a replica of group.
func (rs *RaftStore) HasGroup(group uint64) bool {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	return rs.groups[group] != nil
}

// Status returns a group's Raft status as of the end of the last round.
func (rs *RaftStore) Status(group uint64) (Status, bool) {
	rs.mu.RLock()
	g := rs.groups[group]
	rs.mu.RUnlock()
	if g == nil {
		return Status{}, false
	}
	return *g.status.Load(), true
}

// Groups lists the groups this store has a replica of.
func (rs *RaftStore) Groups() []uint64 {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	out := make([]uint64, 0, len(rs.groups))
	for id := range rs.groups {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Initialized reports whether this store's replica of group has any state
// (it was bootstrapped or has received a snapshot).
func (rs *RaftStore) Initialized(group uint64) bool {
	st, ok := rs.Status(group)
	return ok && len(st.Voters) > 0
}

// openGroup loads a group and adds it to the loop. Loop only (or Open).
func (rs *RaftStore) openGroup(id uint64) (*group, error) {
	lg, err := loadGroup(rs.db, id)
	if err != nil {
		return nil, err
	}
	g := &group{
		id:             id,
		rs:             rs,
		sm:             rs.cfg.NewStateMachine(id),
		applied:        lg.applied,
		trunc:          lg.trunc,
		durableApplied: lg.applied.index,
		reads:          make(map[string]*readBatch),
	}
	if last, err := lg.ms.LastIndex(); err == nil {
		g.lastIndex = last
	}
	g.storage = &groupStorage{MemoryStorage: lg.ms, snapshot: g.makeSnapshot}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        rs.cfg.StoreID,
		ElectionTick:              rs.cfg.ElectionTicks,
		HeartbeatTick:             rs.cfg.HeartbeatTicks,
		Storage:                   g.storage,
		Applied:                   lg.applied.index,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  8 << 20,
		MaxUncommittedEntriesSize: 256 << 20,
		MaxInflightMsgs:           512,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		StepDownOnRemoval:         true,
		Logger:                    newRaftLogger(rs.log.With(zap.Uint64("group", id))),
	})
	if err != nil {
		return nil, err
	}
	g.rn = rn
	g.appliedIdx.Store(lg.applied.index)
	g.publishStatus()
	rs.mu.Lock()
	rs.groups[id] = g
	rs.mu.Unlock()
	rs.order = append(rs.order, g)
	return g, nil
}

// frame prefixes a command with its origin store and request id so that
// the proposing store can hand the result to the waiting caller.
func frame(origin, id uint64, cmd []byte) []byte {
	b := make([]byte, 0, 17+len(cmd))
	b = append(b, 0xA1)
	b = binary.BigEndian.AppendUint64(b, origin)
	b = binary.BigEndian.AppendUint64(b, id)
	return append(b, cmd...)
}

func unframe(data []byte) (origin, id uint64, cmd []byte, err error) {
	if len(data) < 17 || data[0] != 0xA1 {
		return 0, 0, nil, fmt.Errorf("raftstore: entry of %d bytes has no frame", len(data))
	}
	return binary.BigEndian.Uint64(data[1:]), binary.BigEndian.Uint64(data[9:]), data[17:], nil
}

// inbox is the loop's unbounded queue of work.
type inbox struct {
	mu    sync.Mutex
	fns   []func()
	ready chan struct{}
}

func (ib *inbox) init() { ib.ready = make(chan struct{}, 1) }

func (ib *inbox) put(fn func()) {
	ib.mu.Lock()
	ib.fns = append(ib.fns, fn)
	ib.mu.Unlock()
	select {
	case ib.ready <- struct{}{}:
	default:
	}
}

func (ib *inbox) take() []func() {
	ib.mu.Lock()
	fns := ib.fns
	ib.fns = nil
	ib.mu.Unlock()
	return fns
}
