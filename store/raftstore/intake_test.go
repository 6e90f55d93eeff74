package raftstore

// The intake's rules, one table: each case is a message to a bare RawNode
// in a known state (a follower, a leader, an empty replica), the rule that
// must drop it (or nil), and, where the rule prevents a panic, the panic
// raft raises when the same message is stepped without the check. The
// panics are proven here, not assumed: if raft stops panicking on one, the
// case says so.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// panicLogger is raft's logger in these tests: silent, and panicking on
// Panic and Fatal as raft's default logger does.
type panicLogger struct{}

func (panicLogger) Debug(...any)                   {}
func (panicLogger) Debugf(string, ...any)          {}
func (panicLogger) Info(...any)                    {}
func (panicLogger) Infof(string, ...any)           {}
func (panicLogger) Warning(...any)                 {}
func (panicLogger) Warningf(string, ...any)        {}
func (panicLogger) Error(...any)                   {}
func (panicLogger) Errorf(string, ...any)          {}
func (panicLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (panicLogger) Fatalf(f string, v ...any)      { panic(fmt.Sprintf(f, v...)) }
func (panicLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (panicLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }

// bare is a RawNode over a MemoryStorage, driven by hand.
type bare struct {
	t             testing.TB
	id            uint64
	ms            *raft.MemoryStorage
	rn            *raft.RawNode
	hbTerm, hbCtx uint64
}

// newBare returns replica id of a group {1, 2, 3} whose log holds entries
// 6-10 of term 5, 8 committed (configured), or an empty replica.
func newBare(t testing.TB, id uint64, configured bool) *bare {
	t.Helper()
	b := &bare{t: t, id: id, ms: raft.NewMemoryStorage()}
	applied := uint64(0)
	if configured {
		must(t, b.ms.ApplySnapshot(&eraftpb.Snapshot{Metadata: &eraftpb.SnapshotMetadata{
			Index: new(uint64(5)), Term: new(uint64(5)), ConfState: &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}}}))
		must(t, b.ms.Append(ents(5, 6, 10)))
		must(t, b.ms.SetHardState(&eraftpb.HardState{Term: new(uint64(5)), Commit: new(uint64(8))}))
		applied = 5
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: b.ms, Applied: applied,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, CheckQuorum: true, PreVote: true,
		ReadOnlyOption: raft.ReadOnlySafe, Logger: panicLogger{},
	})
	must(t, err)
	b.rn = rn
	b.settle()
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// settle handles every Ready as the loop does (persist, then Advance),
// noting the read positions of the heartbeats sent.
func (b *bare) settle() {
	for i := 0; i < 100 && b.rn.HasReady(); i++ {
		rd := b.rn.Ready()
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := b.ms.ApplySnapshot(rd.Snapshot); err != nil {
				panic(err)
			}
		}
		if err := b.ms.Append(rd.Entries); err != nil {
			panic(err)
		}
		if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
			if err := b.ms.SetHardState(rd.HardState); err != nil {
				panic(err)
			}
		}
		for _, m := range rd.Messages {
			if c := m.GetContext(); m.GetType() == eraftpb.MsgHeartbeat && len(c) == 8 {
				b.hbTerm, b.hbCtx = m.GetTerm(), max(b.hbCtx, binary.LittleEndian.Uint64(c))
			}
		}
		b.rn.Advance(rd)
	}
}

// step steps messages unchecked, handling the Ready after each, and
// returns the panic raft raised, if any.
func (b *bare) step(msgs ...*eraftpb.Message) (panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
		}
	}()
	for _, m := range msgs {
		_ = b.rn.Step(proto.Clone(m).(*eraftpb.Message))
		b.settle()
	}
	return ""
}

func (b *bare) view() *view {
	v := rawNodeView(b.rn, b.id, 7)
	li, _ := b.ms.LastIndex()
	v.last, v.settled = max(li, v.commit), true
	v.hbTerm, v.hbCtx = b.hbTerm, b.hbCtx
	v.joining = func(id uint64) bool { return addedInLog(b.ms, b.rn.BasicStatus().Applied+1, id) }
	// A bare RawNode installs no data: a snapshot with none, or with the
	// data "staged", counts as staged.
	v.staged = func(data []byte, _, _ uint64) bool { return len(data) == 0 || string(data) == "staged" }
	return v
}

func msg(t eraftpb.MessageType, from, to, term uint64) *eraftpb.Message {
	return &eraftpb.Message{Type: t.Enum(), From: new(from), To: new(to), Term: new(term)}
}

func with[T any](v T, f func(T)) T { f(v); return v }

func le(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// framed is an entry carrying a command proposed on store origin.
func framed(origin uint64, cmd string) *eraftpb.Entry {
	return &eraftpb.Entry{Data: frame(origin, 1, []byte(cmd))}
}

func snapMsg(from, to, term, index uint64, cs *eraftpb.ConfState, data []byte) *eraftpb.Message {
	return with(msg(eraftpb.MsgSnap, from, to, term), func(m *eraftpb.Message) {
		m.Snapshot = &eraftpb.Snapshot{Data: data, Metadata: &eraftpb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: cs}}
	})
}

// follower is store 2 following leader 1 at term 5.
func follower(t testing.TB) *bare {
	b := newBare(t, 2, true)
	if p := b.step(with(msg(eraftpb.MsgHeartbeat, 1, 2, 5), func(m *eraftpb.Message) { m.Commit = new(uint64(8)) })); p != "" {
		t.Fatal(p)
	}
	return b
}

// leader is store 1, elected at term 6, its empty entry 11 committed, with
// one read (position 1) waiting for its heartbeat's acks.
func leader(t testing.TB) *bare {
	b := newBare(t, 1, true)
	must(t, b.rn.Campaign())
	b.settle()
	p := b.step(
		msg(eraftpb.MsgPreVoteResp, 2, 1, 6),
		msg(eraftpb.MsgVoteResp, 2, 1, 6),
		with(msg(eraftpb.MsgAppResp, 2, 1, 6), func(m *eraftpb.Message) { m.Index = new(uint64(11)) }),
	)
	if p != "" {
		t.Fatal(p)
	}
	if st := b.rn.BasicStatus(); st.RaftState != raft.StateLeader || st.GetCommit() != 11 {
		t.Fatalf("setup: %+v", st)
	}
	b.rn.ReadIndex([]byte("read-1"))
	b.settle()
	if b.hbTerm != 6 || b.hbCtx != 1 {
		t.Fatalf("setup: heartbeat context %d at term %d", b.hbCtx, b.hbTerm)
	}
	return b
}

func empty(t testing.TB) *bare { return newBare(t, 3, false) }

// joining is the follower with entry 11, not committed, adding store 4.
func joining(t testing.TB) *bare {
	b := follower(t)
	add4 := &eraftpb.Entry{Index: new(uint64(11)), Term: new(uint64(5)), Type: eraftpb.EntryConfChange.Enum(),
		Data: mustMarshal(&eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(4))})}
	app := msg(eraftpb.MsgApp, 1, 2, 5)
	app.Index, app.LogTerm, app.Commit, app.Entries = new(uint64(10)), new(uint64(5)), new(uint64(8)), []*eraftpb.Entry{add4}
	if p := b.step(app); p != "" {
		t.Fatal(p)
	}
	return b
}

type intakeCase struct {
	name string
	node func(testing.TB) *bare
	from uint64
	pre  []*eraftpb.Message // stepped unchecked before m
	m    *eraftpb.Message
	post []*eraftpb.Message // stepped unchecked after m
	rule error              // nil: accepted
	// panics: a part of the panic raft raises when m is stepped unchecked;
	// empty: it must not panic.
	panics string
}

func intakeCases() []intakeCase {
	cs123 := &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}
	hb := func(from, to, term, commit uint64) *eraftpb.Message {
		return with(msg(eraftpb.MsgHeartbeat, from, to, term), func(m *eraftpb.Message) { m.Commit = new(commit) })
	}
	app := func(from, to, term, index, logTerm, commit uint64, es ...*eraftpb.Entry) *eraftpb.Message {
		return with(msg(eraftpb.MsgApp, from, to, term), func(m *eraftpb.Message) {
			m.Index, m.LogTerm, m.Commit, m.Entries = new(index), new(logTerm), new(commit), es
		})
	}
	ent := func(index, term uint64) *eraftpb.Entry { return &eraftpb.Entry{Index: new(index), Term: new(term)} }
	prop := func(from, to uint64, es ...*eraftpb.Entry) *eraftpb.Message {
		return with(msg(eraftpb.MsgProp, from, to, 0), func(m *eraftpb.Message) { m.Term, m.Entries = nil, es })
	}
	resp := func(from uint64, ctx []byte) *eraftpb.Message {
		return with(msg(eraftpb.MsgHeartbeatResp, from, 1, 6), func(m *eraftpb.Message) { m.Context = ctx })
	}
	ccEntry := func(data []byte) *eraftpb.Entry {
		return &eraftpb.Entry{Type: eraftpb.EntryConfChange.Enum(), Data: data}
	}
	return []intakeCase{
		// A follower: store 2, leader 1, term 5, log 6-10, commit 8.
		{name: "heartbeat committing past the log", node: follower, from: 1, m: hb(1, 2, 5, 1000),
			rule: errCommit, panics: "tocommit(1000) is out of range [lastIndex(10)]"},
		{name: "crafted heartbeat: huge term and commit", node: follower, from: 1, m: hb(1, 2, 1<<40, 1<<40),
			rule: errCommit, panics: "is out of range [lastIndex(10)]"},
		{name: "heartbeat committing the log end", node: follower, from: 1, m: hb(1, 2, 5, 10)},
		{name: "heartbeat with a 3-byte context", node: follower, from: 1,
			m: with(hb(1, 2, 5, 8), func(m *eraftpb.Message) { m.Context = []byte{1, 2, 3} }), rule: errContext},
		{name: "heartbeat claiming to come from this store", node: follower, from: 2, m: hb(2, 2, 5, 8),
			rule: errSender, panics: "message should not be self-addressed"},
		{name: "From is not the sending store", node: follower, from: 3, m: hb(1, 2, 5, 8), rule: errSender},
		{name: "addressed to another store", node: follower, from: 1, m: hb(1, 3, 5, 8), rule: errAddressee},
		{name: "vote from a store outside the group", node: follower, from: 9,
			m:    with(msg(eraftpb.MsgVote, 9, 2, 6), func(m *eraftpb.Message) { m.Index, m.LogTerm = new(uint64(10)), new(uint64(5)) }),
			rule: errNotMember},
		{name: "heartbeat of a later term from a leader the configuration does not name", node: follower, from: 9, m: hb(9, 2, 6, 5)},
		{name: "heartbeat of the term from a store outside the group", node: follower, from: 9, m: hb(9, 2, 5, 5), rule: errNotMember},
		{name: "vote from a store a conf change in the log adds", node: joining, from: 4,
			m: with(msg(eraftpb.MsgVote, 4, 2, 6), func(m *eraftpb.Message) { m.Index, m.LogTerm = new(uint64(11)), new(uint64(5)) })},
		{name: "vote from a store no conf change in the log adds", node: joining, from: 5,
			m:    with(msg(eraftpb.MsgVote, 5, 2, 6), func(m *eraftpb.Message) { m.Index, m.LogTerm = new(uint64(11)), new(uint64(5)) }),
			rule: errNotMember},
		{name: "local type MsgHup", node: follower, from: 1, m: msg(eraftpb.MsgHup, 1, 2, 5), rule: errType},
		{name: "local type MsgSnapStatus", node: follower, from: 1, m: msg(eraftpb.MsgSnapStatus, 1, 2, 5), rule: errType},
		{name: "local type MsgStorageAppendResp", node: follower, from: 1,
			m: with(msg(eraftpb.MsgStorageAppendResp, 1, 2, 5), func(m *eraftpb.Message) { m.Index = new(uint64(50)) }), rule: errType},
		{name: "MsgTransferLeader forwarded to a follower", node: follower, from: 3, m: msg(eraftpb.MsgTransferLeader, 3, 2, 5),
			rule: errType, panics: "term should not be set when sending MsgTransferLeader"},
		{name: "MsgProp with a term", node: follower, from: 3,
			m:    with(prop(3, 2, framed(3, "x")), func(m *eraftpb.Message) { m.Term = new(uint64(5)) }),
			rule: errTerm, panics: "term should not be set when sending MsgProp"},
		{name: "MsgReadIndex with a term", node: follower, from: 3,
			m:    with(msg(eraftpb.MsgReadIndex, 3, 2, 5), func(m *eraftpb.Message) { m.Entries = []*eraftpb.Entry{{Data: []byte("r")}} }),
			rule: errTerm, panics: "term should not be set when sending MsgReadIndex"},
		{name: "MsgApp of term 0 (taken as local: no term check)", node: follower, from: 1,
			m: app(1, 2, 0, 10, 5, 8, ent(11, 5)), rule: errTerm},
		{name: "heartbeat carrying a snapshot", node: follower, from: 1,
			m: with(hb(1, 2, 5, 8), func(m *eraftpb.Message) { m.Snapshot = &eraftpb.Snapshot{} }), rule: errShape},
		{name: "heartbeat carrying entries", node: follower, from: 1,
			m: with(hb(1, 2, 5, 8), func(m *eraftpb.Message) { m.Entries = []*eraftpb.Entry{ent(11, 5)} }), rule: errShape},
		{name: "term beyond 2^62", node: follower, from: 1, m: msg(eraftpb.MsgVote, 1, 2, 1<<63), rule: errRange},
		{name: "MsgApp rewriting an entry below the commit index", node: follower, from: 1,
			m: app(1, 2, 5, 8, 5, 8, ent(3, 5)), rule: errEntries, panics: "conflict with committed entry"},
		{name: "MsgApp with a gap in its entries", node: follower, from: 1,
			m: app(1, 2, 5, 8, 5, 8, ent(9, 5), ent(20, 5)), rule: errEntries, panics: "is out of range"},
		{name: "MsgApp replacing the uncommitted tail", node: follower, from: 1,
			m: app(1, 2, 6, 8, 5, 8, ent(9, 6))},
		{name: "MsgApp whose entry terms decrease", node: follower, from: 1,
			m: app(1, 2, 6, 8, 5, 8, ent(9, 6), ent(10, 5)), rule: errEntries},
		{name: "MsgApp with an entry above its term", node: follower, from: 1,
			m: app(1, 2, 5, 10, 5, 8, ent(11, 7)), rule: errEntries},
		{name: "MsgApp with an unframed command", node: follower, from: 1,
			m: app(1, 2, 5, 10, 5, 8, with(ent(11, 5), func(e *eraftpb.Entry) { e.Data = []byte("raw") })), rule: errEntries},
		{name: "MsgApp with an undecodable conf change", node: follower, from: 1,
			m: app(1, 2, 5, 10, 5, 8, with(ent(11, 5), func(e *eraftpb.Entry) {
				e.Type, e.Data = eraftpb.EntryConfChange.Enum(), []byte{0xff}
			})), rule: errEntries},
		{name: "MsgApp with a ConfChangeV2", node: follower, from: 1,
			m: app(1, 2, 5, 10, 5, 8, with(ent(11, 5), func(e *eraftpb.Entry) { e.Type = eraftpb.EntryConfChangeV2.Enum() })), rule: errEntries},
		{name: "MsgApp with a framed command", node: follower, from: 1,
			m: app(1, 2, 5, 10, 5, 8, with(framed(3, "x"), func(e *eraftpb.Entry) { e.Index, e.Term = new(uint64(11)), new(uint64(5)) }))},
		{name: "heartbeat of the term from a store that does not lead it", node: follower, from: 3, m: hb(3, 2, 5, 8), rule: errLeader},
		{name: "snapshot of the term from a store that does not lead it", node: follower, from: 3,
			m: snapMsg(3, 2, 5, 20, cs123, nil), rule: errLeader},
		{name: "MsgApp of a new term from a new leader", node: follower, from: 3, m: app(3, 2, 6, 10, 5, 8)},
		{name: "MsgTimeoutNow from a follower", node: follower, from: 3, m: msg(eraftpb.MsgTimeoutNow, 3, 2, 5), rule: errLeader},
		{name: "MsgTimeoutNow from the leader", node: follower, from: 1, m: msg(eraftpb.MsgTimeoutNow, 1, 2, 5)},
		{name: "vote with a context raft never sends", node: follower, from: 3,
			m: with(msg(eraftpb.MsgPreVote, 3, 2, 6), func(m *eraftpb.Message) { m.Context = []byte("x") }), rule: errLeader},
		{name: "snapshot whose voters repeat", node: follower, from: 1,
			m:    snapMsg(1, 2, 5, 20, &eraftpb.ConfState{Voters: []uint64{1, 1, 2, 3}}, nil),
			rule: errSnapshot, panics: "ConfStates not equivalent"},
		{name: "snapshot with AutoLeave and no outgoing voters", node: follower, from: 1,
			m:    snapMsg(1, 2, 5, 20, &eraftpb.ConfState{Voters: []uint64{1, 2, 3}, AutoLeave: new(true)}, nil),
			rule: errSnapshot, panics: "ConfStates not equivalent"},
		{name: "snapshot with a voter that is also a learner", node: follower, from: 1,
			m:    snapMsg(1, 2, 5, 20, &eraftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{3}}, nil),
			rule: errSnapshot, panics: "ConfStates not equivalent"},
		{name: "snapshot with a voter of id 0", node: follower, from: 1,
			m:    snapMsg(1, 2, 5, 20, &eraftpb.ConfState{Voters: []uint64{0, 1, 2, 3}}, nil),
			rule: errSnapshot, panics: "unable to restore config"},
		{name: "snapshot of a joint configuration", node: follower, from: 1,
			m: snapMsg(1, 2, 5, 20, &eraftpb.ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{1, 2, 4}}, nil), rule: errSnapshot},
		{name: "snapshot without this store", node: follower, from: 1,
			m: snapMsg(1, 2, 5, 20, &eraftpb.ConfState{Voters: []uint64{1, 3}}, nil), rule: errSnapshot},
		{name: "snapshot of a term above its message's", node: follower, from: 1,
			m: with(snapMsg(1, 2, 5, 20, cs123, nil), func(m *eraftpb.Message) { m.Snapshot.Metadata.Term = new(uint64(9)) }), rule: errSnapshot},
		{name: "snapshot whose data names no staged snapshot", node: follower, from: 1,
			m: snapMsg(1, 2, 5, 20, cs123, []byte{200}), rule: errSnapshot},
		{name: "snapshot", node: follower, from: 1, m: snapMsg(1, 2, 5, 20, cs123, []byte("staged"))},

		// The leader: store 1, term 6, log and commit at 11, one read asked.
		{name: "heartbeat response with a 3-byte context", node: leader, from: 2, m: resp(2, []byte{1, 2, 3}),
			rule: errContext, panics: "index out of range"},
		{name: "heartbeat responses confirming reads never asked", node: leader, from: 3,
			pre: []*eraftpb.Message{resp(2, le(1000))}, m: resp(3, le(1000)),
			rule: errContext, panics: "slice bounds out of range"},
		{name: "heartbeat response confirming the read", node: leader, from: 2, m: resp(2, le(1))},
		{name: "crafted heartbeat to the leader", node: leader, from: 2, m: hb(2, 1, 1<<40, 1<<40),
			rule: errCommit, panics: "is out of range [lastIndex(11)]"},
		{name: "empty MsgProp", node: leader, from: 2, m: prop(2, 1), rule: errEntries, panics: "stepped empty MsgProp"},
		{name: "MsgProp of an undecodable conf change", node: leader, from: 2, m: prop(2, 1, ccEntry([]byte{0xff})),
			rule: errEntries, panics: "proto"},
		{name: "MsgProp of a command framed by another store", node: leader, from: 2, m: prop(2, 1, framed(3, "x")), rule: errEntries},
		{name: "MsgProp of an unframed command", node: leader, from: 2, m: prop(2, 1, &eraftpb.Entry{Data: []byte("x")}), rule: errEntries},
		{name: "MsgProp", node: leader, from: 2, m: prop(2, 1, framed(2, "x"))},
		{name: "MsgProp of a conf change", node: leader, from: 2,
			m: prop(2, 1, ccEntry(mustMarshal(&eraftpb.ConfChange{Type: eraftpb.ConfChangeAddLearnerNode.Enum(), NodeId: new(uint64(4))})))},
		{name: "MsgProp from a store outside the group", node: leader, from: 9, m: prop(9, 1, framed(9, "x")), rule: errNotMember},
		{name: "ack beyond the leader's log", node: leader, from: 2,
			m: with(msg(eraftpb.MsgAppResp, 2, 1, 6), func(m *eraftpb.Message) { m.Index = new(uint64(1 << 40)) }), rule: errAck},
		{name: "ack", node: leader, from: 3,
			m: with(msg(eraftpb.MsgAppResp, 3, 1, 6), func(m *eraftpb.Message) { m.Index = new(uint64(11)) })},
		{name: "MsgReadIndex without its context", node: leader, from: 2,
			m: with(msg(eraftpb.MsgReadIndex, 2, 1, 0), func(m *eraftpb.Message) { m.Term = nil }), rule: errRead},
		{name: "MsgReadIndex", node: leader, from: 2,
			m: with(msg(eraftpb.MsgReadIndex, 2, 1, 0), func(m *eraftpb.Message) { m.Term, m.Entries = nil, []*eraftpb.Entry{{Data: []byte("r")}} })},

		// An empty replica (store 3): no configuration, no log.
		{name: "vote of term 0 to an empty replica", node: empty, from: 9, m: msg(eraftpb.MsgVote, 9, 3, 0),
			rule: errTerm, panics: "term should be set when sending MsgVoteResp"},
		{name: "heartbeat committing past an empty log", node: empty, from: 9, m: hb(9, 3, 1, 5),
			rule: errCommit, panics: "tocommit(5) is out of range [lastIndex(0)]"},
		{name: "MsgApp matching an empty log at index 0", node: empty, from: 9,
			m:    app(9, 3, 1, 0, 0, 1, with(framed(9, "x"), func(e *eraftpb.Entry) { e.Index, e.Term = new(uint64(1)), new(uint64(1)) })),
			rule: errUnconfigured},
		{name: "MsgProp to an empty replica", node: empty, from: 9, m: prop(9, 3, framed(9, "x")), rule: errUnconfigured},
		{name: "heartbeat from any store to an empty replica", node: empty, from: 9, m: hb(9, 3, 1, 0)},
		{name: "probe from any store to an empty replica", node: empty, from: 9, m: app(9, 3, 7, 30, 7, 30)},
		{name: "pre-vote from any store to an empty replica", node: empty, from: 9,
			m: with(msg(eraftpb.MsgPreVote, 9, 3, 1), func(m *eraftpb.Message) { m.Index, m.LogTerm = new(uint64(5)), new(uint64(1)) })},
		{name: "snapshot from any store to an empty replica", node: empty, from: 9, m: snapMsg(9, 3, 7, 30, cs123, nil)},
	}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestIntakeRules(t *testing.T) {
	for _, tc := range intakeCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.node(t)
			if p := b.step(tc.pre...); p != "" {
				t.Fatalf("setup panicked: %s", p)
			}
			err := checkMessage(b.view(), tc.from, tc.m)
			switch {
			case tc.rule == nil && err != nil:
				t.Fatalf("dropped: %v", err)
			case tc.rule != nil && !errors.Is(err, tc.rule):
				t.Fatalf("checkMessage: %v, want %v", err, tc.rule)
			}
			// What raft does with it unchecked.
			p := b.step(append([]*eraftpb.Message{tc.m}, tc.post...)...)
			switch {
			case tc.panics == "" && p != "":
				t.Fatalf("raft panicked on it: %s", p)
			case tc.panics != "" && p == "":
				t.Fatalf("raft did not panic on it (want %q): the rule may no longer be needed", tc.panics)
			case tc.panics != "" && !strings.Contains(p, tc.panics):
				t.Fatalf("raft panicked with %q, want %q", p, tc.panics)
			}
		})
	}
}

// TestCheckConfChange: a committed conf change raft cannot apply is found
// before ApplyConfChange panics on it.
func TestCheckConfChange(t *testing.T) {
	one := &eraftpb.ConfState{Voters: []uint64{1}}
	remove1 := &eraftpb.ConfChange{Type: eraftpb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(1))}
	if err := checkConfChange(one, remove1); err == nil {
		t.Fatal("removing the only voter passed")
	}
	b := newBare(t, 1, false)
	if p := func() (p string) {
		defer func() {
			if r := recover(); r != nil {
				p = fmt.Sprint(r)
			}
		}()
		b.rn.ApplyConfChange(&eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(1))})
		b.rn.ApplyConfChange(remove1)
		return ""
	}(); !strings.Contains(p, "removed all voters") {
		t.Fatalf("raft on removing the only voter: %q", p)
	}
	add2 := &eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(2))}
	if err := checkConfChange(one, add2); err != nil {
		t.Fatal(err)
	}
}
