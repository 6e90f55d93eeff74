package raftstore

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/store/keys"
)

// group is one Raft group's replica. Every field is owned by the loop,
// except appliedIdx and status, which others read.
type group struct {
	id      uint64
	rs      *RaftStore
	rn      *raft.RawNode
	storage *groupStorage // &storageOf
	sm      StateMachine
	// storageOf and logger are kept in the group, not allocated beside
	// it: every heap object of a group is scanned by every GC cycle, for
	// 100,000 groups.
	storageOf groupStorage
	logger    raftLogger

	applied        appliedState
	durableApplied uint64 // applied index known to be durable
	trunc          uint64 // last index removed from the log
	lastIndex      uint64 // last index written to the log
	logBytes       uint64 // about how many bytes the log holds (since start-up or a snapshot)

	lead  uint64
	state raft.StateType

	pendingReads []*readWaiter         // arrived this round
	reads        map[string]*readBatch // ReadIndex sent, keyed by request ctx (nil until the first)
	readWait     []*readBatch          // ReadState known, waiting for apply

	nextReconcile time.Time
	snapshots     uint64

	// tickIdx is g's place in rs.ticking, -1 while it sleeps (quiesce.go);
	// idleTicks counts a leader's consecutive idle ticks. dirty: g is in
	// rs.dirty, to be handled this round. undurable: g is in rs.undurable.
	// wakeQueued: g is in rs.wakeQueue. leaderGone: the store of the
	// leader it last knew failed or restarted (wakeLedBy), so the
	// leader's lease protects no one (quiesce.go).
	tickIdx   int
	idleTicks int
	// holdTicks: ticks a new replica that was not made to campaign lets
	// pass before its election timer runs (flushBoots).
	holdTicks int
	// loaded: the replica was loaded at start-up and has not yet
	// campaigned on a call (use).
	loaded     bool
	dirty      bool
	undurable  bool
	wakeQueued bool
	leaderGone bool

	// logMoved: an append or a snapshot was stepped this round, so raft's
	// log may end below the storage's until the round is persisted.
	logMoved bool
	// hbTerm, hbCtx: the highest read context this store sent in a
	// heartbeat as the group's leader, and in which term (intake rule 10).
	hbTerm, hbCtx uint64

	// raftMembers is raft's configuration for intake checks (view), read
	// again only after what may change it: creation, an applied conf
	// change, a stepped snapshot (membersKnown false).
	raftMembers  []uint64
	membersKnown bool

	appliedIdx atomic.Uint64
	status     atomic.Pointer[Status]
	// received counts messages stepped from other stores (DestroyIfIdle).
	received atomic.Uint64
}

// failReads ends every read waiting on the group with err.
func (g *group) failReads(err error) {
	for _, w := range g.pendingReads {
		w.ch <- err
	}
	g.pendingReads = nil
	for _, rb := range g.reads {
		for _, w := range rb.waiters {
			w.ch <- err
		}
	}
	clear(g.reads)
	for _, rb := range g.readWait {
		for _, w := range rb.waiters {
			w.ch <- err
		}
	}
	g.readWait = nil
}

type readWaiter struct{ ch chan error }

type readBatch struct {
	waiters []*readWaiter
	sent    time.Time
	index   uint64
}

func (g *group) noteSoftState(ss *raft.SoftState) {
	if ss == nil {
		return
	}
	if ss.Lead != g.lead {
		g.rs.log.Debug("leader changed", zap.Uint64("group", g.id), zap.Uint64("leader", ss.Lead))
	}
	g.setLead(ss.Lead, ss.RaftState)
}

// setLead records the leader and role raft reports. A new leader ends
// leaderGone: the group has one again, or is electing one.
func (g *group) setLead(lead uint64, state raft.StateType) {
	if lead != g.lead {
		g.leaderGone = false
	}
	g.lead, g.state = lead, state
}

func (g *group) isLeader() bool { return g.state == raft.StateLeader }

func (g *group) publishStatus() {
	hs := g.rn.BasicStatus()
	g.setLead(hs.Lead, hs.RaftState)
	prev := g.status.Load()
	st := &Status{
		Group:    g.id,
		Leader:   hs.Lead,
		Term:     hs.HardState.GetTerm(),
		Commit:   hs.HardState.GetCommit(),
		Applied:  g.applied.index,
		Voters:   g.applied.conf.GetVoters(),
		Learners: g.applied.conf.GetLearners(),
		IsLeader: hs.RaftState == raft.StateLeader,

		SnapshotsApplied: g.snapshots,
		Asleep:           g.tickIdx < 0,
	}
	g.status.Store(st)
	if f := g.rs.cfg.OnStatusChange; f != nil && prev != nil && !prev.sameReport(st) {
		f(g.id)
	}
}

// sameReport tells whether two statuses agree on what OnStatusChange is
// about.
func (s *Status) sameReport(o *Status) bool {
	return s.Leader == o.Leader && s.Term == o.Term && s.Commit == o.Commit && s.Applied == o.Applied &&
		slices.Equal(s.Voters, o.Voters) && slices.Equal(s.Learners, o.Learners)
}

// writeEntries adds new log entries to b; entries after them left by an
// earlier leader are removed. lastIndex is where the log on disk ends.
func (g *group) writeEntries(b *pebble.Batch, ents []*eraftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	for _, e := range ents {
		// Encoded in place in the batch: a 1 MiB entry is not copied once
		// more through a buffer of its own.
		key := keys.LogEntry(g.id, e.GetIndex())
		n := proto.Size(e)
		op := b.SetDeferred(len(key), n)
		copy(op.Key, key)
		data, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(op.Value[:0:n], e)
		if err != nil {
			return err
		}
		if len(data) != n || (n > 0 && &data[0] != &op.Value[0]) {
			return fmt.Errorf("raftstore: group %d: entry %d encoded to %d bytes, sized %d", g.id, e.GetIndex(), len(data), n)
		}
		if err := op.Finish(); err != nil {
			return err
		}
		g.logBytes += uint64(n)
	}
	last := ents[len(ents)-1].GetIndex()
	if g.lastIndex > last {
		if err := b.DeleteRange(keys.LogEntry(g.id, last+1), keys.PrefixEnd(keys.LogPrefix(g.id)), nil); err != nil {
			return err
		}
	}
	g.lastIndex = last
	return nil
}

// writeSnapshot replaces the group's state machine keys with a received
// snapshot's, ingesting its staged file in place of them (snapstage.go),
// and puts into b the applied state and the empty log that go with it. The
// entries of the same Ready, if any, follow the snapshot's index. A
// failure to ingest is a persistence error: it stops the store.
func (g *group) writeSnapshot(b *pebble.Batch, snap *eraftpb.Snapshot) error {
	md := snap.GetMetadata()
	st, ok := g.rs.takeStaged(snap.GetData(), g.id, md.GetIndex(), md.GetTerm())
	if !ok {
		// The intake lets no other MsgSnap through (rule 14), and the
		// stage lives until it is taken here or the store stops.
		return fmt.Errorf("raftstore: group %d: snapshot at %d has no staged data", g.id, md.GetIndex())
	}
	defer func() { _ = g.rs.cfg.FS.Remove(st.path) }()
	prefix := keys.StatePrefix(g.id)
	if _, err := g.rs.db.IngestAndExcise(context.Background(), []string{st.path}, nil, nil,
		pebble.KeyRange{Start: prefix, End: keys.PrefixEnd(prefix)}); err != nil {
		return fmt.Errorf("raftstore: group %d: ingest snapshot: %w", g.id, err)
	}
	return writeSnapshotRaftState(b, g.id, md)
}

// writeSnapshotRaftState puts into b the Raft state that goes with a
// snapshot's state: applied index and configuration, truncation point, an
// empty log.
func writeSnapshotRaftState(b *pebble.Batch, group uint64, md *eraftpb.SnapshotMetadata) error {
	if err := b.DeleteRange(keys.LogPrefix(group), keys.PrefixEnd(keys.LogPrefix(group)), nil); err != nil {
		return err
	}
	applied := appliedState{index: md.GetIndex(), term: md.GetTerm(), conf: md.GetConfState()}
	ab, err := encodeApplied(applied)
	if err != nil {
		return err
	}
	if err := b.Set(keys.Applied(group), ab, nil); err != nil {
		return err
	}
	return b.Set(keys.Truncated(group), encodeIndexTerm(md.GetIndex(), md.GetTerm()), nil)
}

// install makes a persisted Ready visible to Raft through the storage.
func (g *group) install(rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		md := rd.Snapshot.GetMetadata()
		g.storage.applySnapshot(md)
		g.applied = appliedState{index: md.GetIndex(), term: md.GetTerm(), conf: md.GetConfState()}
		g.trunc = md.GetIndex()
		g.durableApplied = md.GetIndex()
		g.snapshots++
		g.rs.log.Info("installed snapshot", zap.Uint64("group", g.id), zap.Uint64("index", md.GetIndex()))
	}
	g.storage.append(rd.Entries)
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		g.storage.setHardState(rd.HardState)
	}
	return nil
}

// appliedConf is the configuration of the applied state (storageOwner).
func (g *group) appliedConf() *eraftpb.ConfState { return g.applied.conf }

// makeSnapshot is Storage.Snapshot: a snapshot of the state at the
// applied index, taken now (in the loop, so the DB holds exactly that).
func (g *group) makeSnapshot() (*eraftpb.Snapshot, error) {
	rs := g.rs
	rs.snapMu.Lock()
	rs.nextSnap++
	token := rs.nextSnap
	rs.snaps[token] = &pendingSnapshot{group: g.id, snap: rs.db.NewSnapshot(), created: time.Now()}
	rs.snapMu.Unlock()
	return &eraftpb.Snapshot{
		Data: encodeSnapshotToken(token),
		Metadata: &eraftpb.SnapshotMetadata{
			Index:     new(g.applied.index),
			Term:      new(g.applied.term),
			ConfState: proto.Clone(g.applied.conf).(*eraftpb.ConfState),
		},
	}, nil
}

func (g *group) readStateArrived(rs raft.ReadState) {
	rb := g.reads[string(rs.RequestCtx)]
	if rb == nil {
		return // retried under a new id, or not ours
	}
	delete(g.reads, string(rs.RequestCtx))
	rb.index = rs.Index
	g.readWait = append(g.readWait, rb)
	g.notifyReads()
}

// notifyReads wakes the reads whose index has been applied.
func (g *group) notifyReads() {
	applied := g.applied.index
	kept := g.readWait[:0]
	for _, rb := range g.readWait {
		if rb.index <= applied {
			for _, w := range rb.waiters {
				w.ch <- nil
			}
			continue
		}
		kept = append(kept, rb)
	}
	g.readWait = kept
}

// retryStaleReads sends again, under a new id, reads whose ReadIndex got no
// answer (a leader change drops them silently).
func (g *group) retryStaleReads(now time.Time) {
	for ctx, rb := range g.reads {
		if now.Sub(rb.sent) > time.Second {
			delete(g.reads, ctx)
			g.pendingReads = append(g.pendingReads, rb.waiters...)
		}
	}
}

// raftLogger sends Raft's log through zap, Raft's Info as our Debug. Its
// zap logger is the store's, made once (newRaftLog): the group is a field
// added to what is logged, not a logger made per group (100,000 of them).
type raftLogger struct {
	s     *zap.SugaredLogger
	group uint64
}

// newRaftLog is the logger every raftLogger of a store shares.
func newRaftLog(l *zap.Logger) *zap.SugaredLogger {
	return l.WithOptions(zap.AddCallerSkip(2)).Sugar()
}

func (l *raftLogger) on(lvl zapcore.Level) bool {
	return lvl >= zapcore.DPanicLevel || l.s.Level().Enabled(lvl)
}

func (l *raftLogger) print(lvl zapcore.Level, v []any) {
	if l.on(lvl) {
		l.s.Logw(lvl, fmt.Sprint(v...), "group", l.group)
	}
}

func (l *raftLogger) printf(lvl zapcore.Level, format string, v []any) {
	if l.on(lvl) {
		l.s.Logw(lvl, fmt.Sprintf(format, v...), "group", l.group)
	}
}

func (l *raftLogger) Debug(v ...any)                   { l.print(zapcore.DebugLevel, v) }
func (l *raftLogger) Debugf(format string, v ...any)   { l.printf(zapcore.DebugLevel, format, v) }
func (l *raftLogger) Info(v ...any)                    { l.print(zapcore.DebugLevel, v) }
func (l *raftLogger) Infof(format string, v ...any)    { l.printf(zapcore.DebugLevel, format, v) }
func (l *raftLogger) Warning(v ...any)                 { l.print(zapcore.WarnLevel, v) }
func (l *raftLogger) Warningf(format string, v ...any) { l.printf(zapcore.WarnLevel, format, v) }
func (l *raftLogger) Error(v ...any)                   { l.print(zapcore.ErrorLevel, v) }
func (l *raftLogger) Errorf(format string, v ...any)   { l.printf(zapcore.ErrorLevel, format, v) }
func (l *raftLogger) Fatal(v ...any)                   { l.print(zapcore.FatalLevel, v) }
func (l *raftLogger) Fatalf(format string, v ...any)   { l.printf(zapcore.FatalLevel, format, v) }
func (l *raftLogger) Panic(v ...any)                   { l.print(zapcore.PanicLevel, v) }
func (l *raftLogger) Panicf(format string, v ...any)   { l.printf(zapcore.PanicLevel, format, v) }
