package raftstore

// The Raft loop. One round reads like the Raft paper:
//
//  1. take the queued work (messages, proposals, reads, group changes);
//  2. collect the Ready of every group that has one;
//  3. a leader sends now: it counts itself towards a commit only after
//     Advance, i.e. after its own write (Raft thesis §10.2.1);
//  4. persist snapshots, entries and hard states of every group in one
//     batch, synced once if any group must sync;
//  5. followers send: their replies promise durability;
//  6. apply every group's committed entries in one batch, each group's
//     applied index with them;
//  7. Advance.
//
// Invariants: entries and the hard state are durable before a follower
// acknowledges them and before anyone applies them; a state and the applied
// index that describes it are written in one batch; a persistence or apply
// error stops the loop (OnFatal) and nothing after it is counted as done.

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
)

// run is the Raft loop.
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
		var err error
		for _, it := range rs.inbox.take() {
			if it.create {
				rs.unqueue(it.group)
			} else if err = rs.flushBoots(); err != nil {
				// Work queued after a creation finds the group.
				break // callers still waiting learn the loop stopped
			}
			it.fn()
		}
		if err == nil {
			err = rs.flushBoots()
		}
		if err != nil {
			rs.log.Error("raft loop stops: persistence failed", zap.Error(err))
			rs.cfg.OnFatal(err)
			return
		}
		rs.issueReads()
		if err := rs.handleReady(); err != nil {
			rs.log.Error("raft loop stops: persistence failed", zap.Error(err))
			rs.cfg.OnFatal(err)
			return
		}
		// Every group's log is now in storage as raft has it.
		for _, g := range rs.moved {
			g.logMoved = false
		}
		rs.moved = rs.moved[:0]
	}
}

type ready struct {
	g    *group
	rd   raft.Ready
	sent bool
}

// handleReady carries out one round for every group with work.
//
// Only the groups touched since the last round (rs.dirty) can have work: a
// sleeping group that nothing touched is not looked at.
func (rs *RaftStore) handleReady() error {
	var rds []*ready
	for _, g := range rs.dirty {
		g.dirty = false
		if g.rn.HasReady() {
			rd := g.rn.Ready()
			g.noteSoftState(rd.SoftState)
			rds = append(rds, &ready{g: g, rd: rd})
		}
	}
	clear(rs.dirty)
	rs.dirty = rs.dirty[:0]
	if len(rds) == 0 {
		return nil
	}
	rs.stats.rounds.Add(1)
	for _, r := range rds {
		if r.g.isLeader() {
			rs.send(r.g, r.rd.Messages)
			r.sent = true
		}
	}
	rs.flush()
	if err := rs.persist(rds); err != nil {
		return err
	}
	for _, r := range rds {
		if !r.sent {
			rs.send(r.g, r.rd.Messages)
		}
	}
	rs.flush()
	if err := rs.apply(rds); err != nil {
		return err
	}
	for _, r := range rds {
		r.g.rn.Advance(r.rd)
		r.g.publishStatus()
		if r.g.rn.HasReady() {
			// More committed entries than one Ready carries: another round.
			rs.markDirty(r.g)
		}
	}
	if len(rs.dirty) > 0 {
		rs.post(func() {})
	}
	return nil
}

// persist writes every group's snapshot, entries and hard state in one
// batch, synced if any group must sync, then makes them visible to Raft. A
// received snapshot's state is staged by the group's state machine
// (Restore) in the same batch.
func (rs *RaftStore) persist(rds []*ready) error {
	var b *pebble.Batch
	if slices.ContainsFunc(rds, func(r *ready) bool { return !raft.IsEmptySnap(r.rd.Snapshot) }) {
		b = rs.db.NewIndexedBatch() // Restore reads the new state through it
	} else {
		// Sized for the round's entries: a batch that grows by doubling
		// allocates about twice what it holds, and rounds of 1 MiB
		// entries are most of what a store allocates.
		size := 0
		for _, r := range rds {
			for _, e := range r.rd.Entries {
				size += proto.Size(e) + batchRecordOverhead
			}
		}
		b = rs.db.NewBatchWithSize(size)
	}
	defer b.Close()
	ac, committed := NewApplyContext(b), false
	defer func() { ac.Done(committed) }()
	mustSync := false
	var restored []*group
	for _, r := range rds {
		g, rd := r.g, r.rd
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := g.writeSnapshot(b, rd.Snapshot); err != nil {
				return err
			}
			// Before the Ready's entries are written, never after: they
			// extend the log past the snapshot, and a later overwrite must
			// know where the log ends to delete the tail it replaces.
			g.lastIndex = rd.Snapshot.GetMetadata().GetIndex()
			g.logBytes = 0
			if err := g.sm.Restore(ac); err != nil {
				return fmt.Errorf("raftstore: group %d: restore snapshot: %w", g.id, err)
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
	committed = true
	if mustSync {
		// Every apply batch committed before this synced batch is durable.
		for _, g := range rs.undurable {
			g.durableApplied = g.applied.index
			g.undurable = false
		}
		clear(rs.undurable)
		rs.undurable = rs.undurable[:0]
	}
	for _, r := range rds {
		if err := r.g.install(r.rd); err != nil {
			return err
		}
	}
	ac.Done(true)
	for _, g := range restored {
		rs.notePeers(g.applied.conf, time.Now())
		g.appliedIdx.Store(g.applied.index)
		g.publishStatus()
		g.notifyReads()
	}
	return nil
}

// batchRecordOverhead is about what a batch record costs beyond its value:
// the record's header and a key of the log or of a namespace.
const batchRecordOverhead = 64

// apply applies every group's committed entries in one batch, publishes
// the results and wakes the reads that waited for them.
func (rs *RaftStore) apply(rds []*ready) error {
	// Sized for what the entries usually write: their commands' data.
	size := 0
	for _, r := range rds {
		for _, e := range r.rd.CommittedEntries {
			size += len(e.GetData()) + batchRecordOverhead
		}
	}
	b := rs.db.NewIndexedBatchWithSize(size)
	defer b.Close()
	ac, committed := NewApplyContext(b), false
	defer func() { ac.Done(committed) }()
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
			if err != nil {
				return fmt.Errorf("raftstore: group %d: apply entry %d: %w", g.id, e.GetIndex(), err)
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
		if !g.undurable {
			g.undurable = true
			rs.undurable = append(rs.undurable, g)
		}
	}
	if !b.Empty() {
		// Unsynced: the entries are durable in the log; after a crash they
		// are applied again from the last durable applied index.
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("raftstore: apply: %w", err)
		}
	}
	committed = true
	rs.stats.applied.Add(uint64(applied))
	ac.Done(true)
	for _, f := range results {
		f()
	}
	for _, g := range touched {
		g.appliedIdx.Store(g.applied.index)
		// A read that waited for this index may look at the membership
		// (GroupStatus): it must see the changes just applied.
		g.publishStatus()
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
			return nil, err
		}
		res, err := g.sm.Apply(ac, e.GetIndex(), cmd)
		if err != nil {
			return nil, err
		}
		if origin != rs.cfg.StoreID {
			return nil, nil
		}
		return func() { rs.deliver(id, result{val: res}) }, nil
	case eraftpb.EntryConfChange:
		cc := &eraftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return nil, fmt.Errorf("conf change: %w", err)
		}
		id := cc.GetId()
		if err := checkConfChange(g.applied.conf, cc); err != nil {
			// Raft would panic applying it. Every replica refuses it alike:
			// they all hold the same configuration at this index.
			rs.log.Error("committed conf change refused", zap.Uint64("group", g.id), zap.Uint64("index", e.GetIndex()),
				zap.Stringer("type", cc.GetType()), zap.Uint64("node", cc.GetNodeId()), zap.Error(err))
			err = fmt.Errorf("raftstore: conf change refused: %w", err)
			return func() { rs.deliver(id, result{err: err}) }, nil
		}
		g.applied.conf = g.rn.ApplyConfChange(cc)
		g.membersKnown = false
		rs.notePeers(g.applied.conf, time.Now())
		if err := g.sm.ApplyConfChange(ac, cc); err != nil {
			return nil, err
		}
		if cc.GetType() == eraftpb.ConfChangeRemoveNode && cc.GetNodeId() == rs.cfg.StoreID {
			rs.log.Info("this store's replica applied its own removal", zap.Uint64("group", g.id), zap.Uint64("index", e.GetIndex()))
			if rs.cfg.OnRemoved != nil {
				rs.cfg.OnRemoved(g.id)
			}
		}
		return func() { rs.deliver(id, result{}) }, nil
	default:
		return nil, fmt.Errorf("unsupported entry type %v", e.GetType())
	}
}

// maybeCompact truncates the log below a durable applied index, when the
// log holds more than CompactThreshold entries or CompactBytes bytes.
func (rs *RaftStore) maybeCompact(g *group) error {
	var to uint64
	switch n := g.lastIndex - g.trunc; {
	case g.durableApplied > g.trunc+rs.cfg.CompactThreshold:
		to = g.durableApplied - rs.cfg.CompactKeep
	case g.logBytes > rs.cfg.CompactBytes && n > 0 && g.durableApplied > g.trunc:
		// Keep about a quarter of the budget's worth of entries, at the
		// log's mean entry size.
		keep := max(1, n*(rs.cfg.CompactBytes/4)/g.logBytes)
		if g.durableApplied <= g.trunc+keep {
			return nil
		}
		to = g.durableApplied - keep
	default:
		return nil
	}
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
	if n := g.lastIndex - g.trunc; n > 0 {
		g.logBytes = g.logBytes * (g.lastIndex - to) / n
	}
	g.storage.compact(to, term)
	g.trunc = to
	return nil
}

// send queues a group's messages in the round's outbox (flush hands them
// to the transport); snapshots go on their own stream.
func (rs *RaftStore) send(g *group, msgs []*eraftpb.Message) {
	for _, m := range msgs {
		if m.GetFrom() != rs.cfg.StoreID {
			// A follower passes on a proposal or read it received to its
			// leader with the proposer's From; every store refuses a
			// message not From its sender (intake rule 1), so it is lost
			// here rather than there.
			continue
		}
		if ctx := m.GetContext(); m.GetType() == eraftpb.MsgHeartbeat && len(ctx) == 8 {
			// The read position it asks to confirm (intake rule 10).
			pos := binary.LittleEndian.Uint64(ctx)
			if m.GetTerm() != g.hbTerm {
				g.hbTerm, g.hbCtx = m.GetTerm(), pos
			} else {
				g.hbCtx = max(g.hbCtx, pos)
			}
		}
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
		if m.GetType() == eraftpb.MsgHeartbeat || m.GetType() == eraftpb.MsgHeartbeatResp {
			rs.stats.heartbeats.Add(1)
		}
		rs.queue(m.GetTo(), &storepb.RaftMessage{GroupId: g.id, Data: data})
	}
}

// queue adds a message to the outbox.
func (rs *RaftStore) queue(to uint64, m *storepb.RaftMessage) {
	if rs.outbox == nil {
		rs.outbox = make(map[uint64][]*storepb.RaftMessage)
	}
	rs.outbox[to] = append(rs.outbox[to], m)
}

// flush hands the outbox to the transport: one batch per store, whatever
// the number of groups that spoke to it. With tens of thousands of awake
// groups, a batch per group would overflow the transport's queue (which
// drops what does not fit) in one tick. Loop only.
func (rs *RaftStore) flush() {
	for to, ms := range rs.outbox {
		rs.cfg.Transport.Send(to, ms)
		delete(rs.outbox, to)
	}
}

// tick advances every group's logical clock and does the loop's periodic
// work.
// Only awake groups tick (quiesce.go); a leader idle long enough puts its
// group to sleep here. Backwards: a group put to sleep swaps places with
// the last, which was already visited.
func (rs *RaftStore) tick(now time.Time) {
	for i := len(rs.ticking) - 1; i >= 0; i-- {
		g := rs.ticking[i]
		if g.isLeader() && rs.maybeQuiesce(g) {
			continue
		}
		if g.holdTicks > 0 {
			g.holdTicks--
		} else {
			g.rn.Tick()
			rs.markDirty(g)
		}
		g.retryStaleReads(now)
		rs.reconcileMembers(g, now)
	}
	rs.checkLiveness(now)
	rs.wakeStartLeaders(now)
	rs.drainWakes()
	rs.flush()
	rs.gcSnapshots(now)
	rs.drops.flush(rs.log, now)
}
