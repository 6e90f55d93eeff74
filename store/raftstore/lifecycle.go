package raftstore

// The life of the engine and of its groups: opening what the DB holds,
// starting and stopping the loop, creating a group's replica (bootstrapped,
// or empty to be filled by a snapshot), and the entry points the transport
// delivers other stores' messages through.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
)

// Open loads every group found in the DB. Call Start to run the loop.
func Open(cfg Config) (*RaftStore, error) {
	cfg.setDefaults()
	rs := &RaftStore{
		cfg:     cfg,
		db:      cfg.DB,
		log:     cfg.Logger,
		raftLog: newRaftLog(cfg.Logger),
		groups:  make(map[uint64]*group),
		waiters: make(map[uint64]*waiter),
		snaps:   make(map[uint64]*pendingSnapshot),
		staged:  make(map[uint64]*stagedSnapshot),
		peers:   make(map[uint64]*peerLiveness),
		queued:  make(map[uint64]int),
		stopc:   make(chan struct{}),
		donec:   make(chan struct{}),
	}
	rs.inbox.init()
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	rs.reqSeq.Store(binary.BigEndian.Uint64(seed[:8]) >> 1)
	rs.readSeq = binary.BigEndian.Uint64(seed[8:])
	rs.incarnation = binary.BigEndian.AppendUint64(nil, rs.reqSeq.Load()|1)
	// Ingesting a snapshot in place of a group's state (IngestAndExcise)
	// needs virtual SSTs.
	if cfg.DB.FormatMajorVersion() < pebble.FormatVirtualSSTables {
		if err := cfg.DB.RatchetFormatMajorVersion(pebble.FormatVirtualSSTables); err != nil {
			return nil, fmt.Errorf("raftstore: upgrade the DB's format: %w", err)
		}
	}
	if err := rs.clearStaging(); err != nil {
		return nil, fmt.Errorf("raftstore: clear the snapshot staging directory: %w", err)
	}
	ids, err := listGroups(cfg.DB)
	if err != nil {
		return nil, err
	}
	rd, err := newStartReader(cfg.DB)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rd.close() }()
	for _, id := range ids {
		g, err := rs.openGroupWith(rd, id)
		if err != nil {
			return nil, fmt.Errorf("raftstore: open group %d: %w", id, err)
		}
		g.loaded = true
		if g.lastIndex > g.applied.index || rs.alwaysAwake(id) {
			// Entries it may not know committed: it needs a leader now.
			rs.wake(g)
		} else if hs := g.rn.BasicStatus().HardState; hs.GetVote() == cfg.StoreID && hs.GetTerm() > 0 {
			// It voted for itself in its last term: it most likely led
			// the group, whose other replicas may all have restarted too
			// (then nothing would elect a leader until the group is
			// used, and a group that must move its replicas would never
			// move them). It wakes later, unless its peers call first
			// (wakeStartLeaders).
			rs.startWakes = append(rs.startWakes, g)
		}
	}
	return rs, nil
}

// Start runs the Raft loop.
func (rs *RaftStore) Start() {
	now := time.Now()
	// Loading took time in which no store could be heard (the server
	// does not serve yet): liveness counts from now, or a store with
	// 100,000 groups would take every peer for down at its first tick,
	// and wake every group they lead.
	for _, p := range rs.peers {
		p.lastHeard = now
	}
	rs.startWakeAt = now.Add(startWakeDelay * time.Duration(rs.cfg.ElectionTicks) * rs.cfg.TickInterval)
	rs.started.Store(true)
	go rs.run()
	go rs.sendLiveness()
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
	for t, s := range rs.staged {
		_ = rs.cfg.FS.Remove(s.path)
		delete(rs.staged, t)
	}
	rs.snapMu.Unlock()
}

// Step delivers the messages of a batch that store from sent (the
// transport's RaftBatch.FromStore). Each is checked (intake.go) before Raft
// sees it; what fails a check is dropped.
func (rs *RaftStore) Step(from uint64, msgs []*storepb.RaftMessage) {
	rs.noteArrival(from, time.Now())
	decoded := make([]*eraftpb.Message, 0, len(msgs))
	groups := make([]uint64, 0, len(msgs))
	var quiesce []bool
	undecodable := 0
	var incarnation uint64
	for _, m := range msgs {
		if m.GetGroupId() == livenessGroup {
			if inc, ok := decodeIncarnation(m.GetData()); ok {
				incarnation = inc
			} else {
				undecodable++
			}
			continue
		}
		em, err := decodeMessage(m.GetData())
		if err != nil {
			undecodable++
			continue
		}
		decoded = append(decoded, em)
		groups = append(groups, m.GetGroupId())
		if m.GetQuiesce() {
			if quiesce == nil {
				quiesce = make([]bool, len(decoded)-1, len(msgs))
			}
		}
		if quiesce != nil {
			quiesce = append(quiesce, m.GetQuiesce())
		}
	}
	rs.post(func() {
		rs.heard(from, incarnation, time.Now())
		for range undecodable {
			rs.drop(from, 0, nil, errUndecodable)
		}
		for i, m := range decoded {
			if m.GetType() == eraftpb.MsgSnap {
				// Snapshots travel on their own stream, with their data.
				rs.drop(from, groups[i], m, errSnapOffStream)
				continue
			}
			rs.stepRemote(from, groups[i], m, quiesce != nil && quiesce[i], false)
		}
	})
}

// StepSnapshot delivers a MsgSnap whose data has been reassembled, sent by
// store from (the transport's SnapshotChunk.FromStore).
func (rs *RaftStore) StepSnapshot(from, group uint64, m *eraftpb.Message) {
	rs.post(func() {
		if m.GetType() != eraftpb.MsgSnap {
			rs.drop(from, group, m, errNotSnap)
			return
		}
		rs.heard(from, 0, time.Now())
		rs.stepRemote(from, group, m, false, false)
	})
}

// stepRemote checks a message from another store and steps it into its
// group, creating an empty replica if the message may create one. A
// message that cannot be judged until the round's log changes are
// persisted is tried once more after the round (retried).
//
// Any message wakes a sleeping group but a quiesce heartbeat (which may put
// a follower to sleep) and a heartbeat response to a sleeping leader
// (quiesce.go).
func (rs *RaftStore) stepRemote(from, group uint64, m *eraftpb.Message, quiesce, retried bool) {
	g := rs.groups[group]
	if g == nil && rs.isQueued(group) {
		// Its creation is queued behind this message (a new row was
		// applied, and its leader called at once): stepped after it, the
		// message finds the bootstrapped replica. Taken now, it would
		// create an empty one, which only a snapshot can fill.
		rs.post(func() { rs.stepRemote(from, group, m, quiesce, retried) })
		return
	}
	if g == nil {
		if err := checkMessage(rs.emptyView(group), from, m); err != nil {
			rs.drop(from, group, m, err)
			return
		}
		if rs.cfg.WantReplica == nil || !rs.cfg.WantReplica(group) {
			rs.drop(from, group, m, errNoReplica)
			return
		}
		var err error
		if g, err = rs.openGroup(group); err != nil {
			rs.log.Error("create replica", zap.Uint64("group", group), zap.Error(err))
			return
		}
		rs.log.Info("created empty replica", zap.Uint64("group", group), zap.Uint64("from", from))
		rs.wake(g)
	}
	if err := checkMessage(g.view(), from, m); err != nil {
		if !retried && errors.Is(err, errLogMoved) {
			rs.post(func() { rs.stepRemote(from, group, m, quiesce, true) })
			return
		}
		rs.drop(from, group, m, err)
		if errors.Is(err, errNotMember) && rs.cfg.OnRefusedMember != nil {
			rs.cfg.OnRefusedMember(group)
		}
		return
	}
	g.received.Add(1)
	if m.GetType() == eraftpb.MsgPreVote && !g.isLeader() && ((g.lead == from && from != rs.cfg.StoreID) || g.leaderGone || rs.silent(g.lead)) {
		// Its own leader asks for votes, or the leader's store failed or
		// restarted, or has been silent for half an election timeout
		// (the store asking may have taken it for down a little before
		// this one): there is no leader to protect. The replica heard
		// from it last, so it would refuse for a whole election timeout
		// yet (CheckQuorum's lease), and the group stay leaderless that
		// long: it forgets that leader.
		rs.forgetLeader(g)
	}
	quiesce = quiesce && m.GetType() == eraftpb.MsgHeartbeat
	if g.tickIdx >= 0 || !(quiesce || m.GetType() == eraftpb.MsgHeartbeatResp) {
		rs.wake(g)
	} else {
		rs.markDirty(g)
	}
	if err := g.rn.Step(m); err != nil {
		rs.log.Debug("step", zap.Uint64("group", group), zap.Error(err))
	}
	if m.GetType() == eraftpb.MsgSnap {
		g.membersKnown = false // raft may have restored its configuration from it
	}
	if quiesce {
		rs.followerQuiesce(g, from, m)
	}
	if (m.GetType() == eraftpb.MsgApp && len(m.GetEntries()) > 0) || m.GetType() == eraftpb.MsgSnap {
		// Raft's log may now end below the storage's: see intake.go.
		if !g.logMoved {
			g.logMoved = true
			rs.moved = append(rs.moved, g)
		}
	}
}

// ReportUnreachable tells every group that a store could not be reached.
// The transport says so at every message it cannot queue: with tens of
// thousands of awake groups, the reports for a store are coalesced, and
// handed to the groups at most once per tick.
func (rs *RaftStore) ReportUnreachable(to uint64) {
	rs.unreachMu.Lock()
	if rs.unreachPending == nil {
		rs.unreachPending = make(map[uint64]bool)
	}
	first := len(rs.unreachPending) == 0
	rs.unreachPending[to] = true
	rs.unreachMu.Unlock()
	if first {
		rs.post(rs.reportUnreachable)
	}
}

// reportUnreachable hands the pending unreachable reports to the awake
// groups (a sleeping group sends nothing). Loop only.
func (rs *RaftStore) reportUnreachable() {
	rs.unreachMu.Lock()
	pending := rs.unreachPending
	rs.unreachPending = nil
	rs.unreachMu.Unlock()
	now := time.Now()
	if rs.unreachAt == nil {
		rs.unreachAt = make(map[uint64]time.Time)
	}
	for to := range pending {
		if now.Sub(rs.unreachAt[to]) < rs.cfg.TickInterval {
			continue
		}
		rs.unreachAt[to] = now
		for _, g := range rs.ticking {
			g.rn.ReportUnreachable(to)
		}
	}
}

// ReportSnapshot tells a group how sending a snapshot ended.
func (rs *RaftStore) ReportSnapshot(group, to uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	rs.post(func() {
		if g := rs.groups[group]; g != nil {
			rs.wake(g)
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
	rs.queueCreate(group, func() { rs.createGroup(group, voters, initial, campaign, func(err error) { done <- err }) })
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
	rs.queueCreate(group, func() {
		rs.createGroup(group, voters, initial, campaign, func(err error) {
			if err != nil {
				rs.log.Error("create group", zap.Uint64("group", group), zap.Error(err))
			}
		})
	})
}

// queueCreate puts a creation of group in the inbox, counted in queued
// until the loop runs it.
func (rs *RaftStore) queueCreate(group uint64, fn func()) {
	rs.queuedMu.Lock()
	rs.queued[group]++
	rs.queuedMu.Unlock()
	rs.inbox.putItem(item{create: true, group: group, fn: fn})
}

// unqueue counts off a creation of group the loop is about to run.
func (rs *RaftStore) unqueue(group uint64) {
	rs.queuedMu.Lock()
	defer rs.queuedMu.Unlock()
	if rs.queued[group]--; rs.queued[group] <= 0 {
		delete(rs.queued, group)
	}
}

// isQueued reports whether a creation of group is in the inbox, not run
// yet.
func (rs *RaftStore) isQueued(group uint64) bool {
	rs.queuedMu.Lock()
	defer rs.queuedMu.Unlock()
	return rs.queued[group] > 0
}

// boot is a group bootstrap waiting for the loop's next flush.
type boot struct {
	group    uint64
	voters   []uint64
	initial  []KV
	campaign bool
	done     func(error)
}

// createGroup creates group's replica, and calls done. A bootstrap is
// queued (rs.boots) and written with the others queued next to it in one
// synced batch (flushBoots): creating many namespaces at once costs one
// fsync per round, not one per group. Loop only.
func (rs *RaftStore) createGroup(group uint64, voters []uint64, initial []KV, campaign bool, done func(error)) {
	if rs.groups[group] != nil || rs.booting[group] {
		done(nil)
		return
	}
	member := slices.Contains(voters, rs.cfg.StoreID)
	if member {
		// A replica destroyed here once is never bootstrapped again: the
		// group has moved on since its first voters.
		_, closer, err := rs.db.Get(keys.Tombstone(group))
		if err == nil {
			_ = closer.Close()
			member = false
		} else if !errors.Is(err, pebble.ErrNotFound) {
			done(fmt.Errorf("raftstore: read tombstone of group %d: %w", group, err))
			return
		}
	}
	if member {
		if rs.booting == nil {
			rs.booting = make(map[uint64]bool)
		}
		rs.booting[group] = true
		rs.boots = append(rs.boots, boot{group: group, voters: slices.Sorted(slices.Values(voters)), initial: initial, campaign: campaign, done: done})
		return
	}
	g, err := rs.openGroup(group)
	if err != nil {
		done(err)
		return
	}
	rs.wake(g)
	done(nil)
}

// flushBoots writes the queued bootstraps in one synced batch and opens
// their groups. A failed write stops the loop, like any other. Loop only.
func (rs *RaftStore) flushBoots() error {
	if len(rs.boots) == 0 {
		return nil
	}
	boots := rs.boots
	rs.boots = nil
	clear(rs.booting)
	b := rs.db.NewBatch()
	var err error
	for _, bt := range boots {
		if err = writeBootstrap(b, bt.group, bt.voters, bt.initial); err != nil {
			break
		}
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	_ = b.Close()
	if err != nil {
		err = fmt.Errorf("raftstore: bootstrap %d groups: %w", len(boots), err)
		for _, bt := range boots {
			bt.done(err)
		}
		return err
	}
	for _, bt := range boots {
		// Its state is what was just written: not read back.
		g, err := rs.openLoaded(bootstrapState(bt.voters), bt.group)
		if err != nil {
			bt.done(err)
			continue
		}
		rs.wake(g)
		if bt.campaign {
			_ = g.rn.Campaign()
		} else {
			// The replica made to campaign (the group's designated
			// leader) may have campaigned before this store had the
			// group, and had its votes dropped: its retry comes within
			// two election timeouts. Hold this replica's own timer for
			// one, so that the retry wins and leaders stay spread.
			g.holdTicks = rs.cfg.ElectionTicks
		}
		bt.done(nil)
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

// Initialized reports whether this store's replica of group has any state
// (it was bootstrapped or has received a snapshot).
func (rs *RaftStore) Initialized(group uint64) bool {
	st, ok := rs.Status(group)
	return ok && len(st.Voters) > 0
}

// openGroup loads a group and adds it to the loop. Loop only (or Open).
func (rs *RaftStore) openGroup(id uint64) (*group, error) {
	return rs.openGroupWith(dbReader{rs.db}, id)
}

// openGroupWith is openGroup reading through r.
func (rs *RaftStore) openGroupWith(r reader, id uint64) (*group, error) {
	lg, err := loadGroupWith(rs.db, r, id)
	if err != nil {
		return nil, err
	}
	return rs.openLoaded(lg, id)
}

// openLoaded is openGroup with the group's state in hand.
func (rs *RaftStore) openLoaded(lg *loadedGroup, id uint64) (*group, error) {
	sm, err := rs.cfg.NewStateMachine(id)
	if err != nil {
		return nil, err
	}
	g := &group{
		id:             id,
		rs:             rs,
		sm:             sm,
		applied:        lg.applied,
		trunc:          lg.trunc,
		durableApplied: lg.applied.index,
		tickIdx:        -1,
		logger:         raftLogger{s: rs.raftLog, group: id},
	}
	g.lastIndex = lg.last
	g.storage = &g.storageOf
	*g.storage = groupStorage{
		db: rs.db, group: id, hs: lg.hs, owner: g,
		first: lg.trunc + 1, truncTerm: lg.truncTerm, last: lg.last, lastTerm: lg.lastTerm,
		hits: &rs.stats.logHits, reads: &rs.stats.logReads,
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        rs.cfg.StoreID,
		ElectionTick:              rs.cfg.ElectionTicks,
		HeartbeatTick:             rs.cfg.HeartbeatTicks,
		Storage:                   g.storage,
		Applied:                   lg.applied.index,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  8 << 20,
		MaxUncommittedEntriesSize: 64 << 20,
		MaxInflightMsgs:           512,
		MaxInflightBytes:          32 << 20,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		StepDownOnRemoval:         true,
		Logger:                    &g.logger,
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
	if rs.cfg.OnStatusChange != nil {
		rs.cfg.OnStatusChange(id)
	}
	rs.stats.groups.Add(1)
	rs.notePeers(lg.applied.conf, time.Now())
	// Its committed entries not applied yet are applied in the first round.
	rs.markDirty(g)
	return g, nil
}
