package raftstore

// The intake on running stores (the in-process harness of
// raftstore_test.go): what it drops is counted, logged sparingly, and the
// group goes on committing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rdb-project/rdb/proto/storepb"
)

// send delivers m to nd as a batch sent by store from.
func send(nd *node, from, group uint64, m *eraftpb.Message) {
	nd.rs.Step(from, []*storepb.RaftMessage{{GroupId: group, Data: mustMarshal(m)}})
}

// waitDropped waits until nd has dropped want messages in all.
func waitDropped(t testing.TB, nd *node, want uint64) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		if got := nd.rs.Stats().Dropped; got != want {
			return fmt.Errorf("dropped %d, want %d", got, want)
		}
		return nil
	})
}

// keepsServing checks that a proposal made on nodes[i] commits and that no
// store stopped.
func keepsServing(t testing.TB, nodes []*node, i int) {
	t.Helper()
	if _, err := nodes[i].rs.ProposeRetrying(ctxT(t, 10*time.Second), 7, []byte("after")); err != nil {
		t.Fatalf("store %d: proposal after the message: %v", i+1, err)
	}
	for j, nd := range nodes {
		select {
		case err := <-nd.fatal:
			t.Fatalf("store %d stopped: %v", j+1, err)
		default:
		}
	}
}

func otherThan(i int, n int) int { return (i + 1) % n }

// TestCraftedHeartbeat: the message of the defect (a heartbeat of a huge
// term committing far past the log) used to make raft panic, and the store
// exit, on a follower and on the leader alike.
func TestCraftedHeartbeat(t *testing.T) {
	for _, toLeader := range []bool{false, true} {
		t.Run(fmt.Sprintf("to leader %v", toLeader), func(t *testing.T) {
			_, nodes, leader := threeStores(t)
			target := otherThan(leader, 3)
			if toLeader {
				target = leader
			}
			from := uint64(otherThan(target, 3) + 1) // a member, as it claims
			m := msg(eraftpb.MsgHeartbeat, from, uint64(target+1), 1<<40)
			m.Commit = new(uint64(1 << 40))
			send(nodes[target], from, 7, m)
			waitDropped(t, nodes[target], 1)
			keepsServing(t, nodes, target)
			if st, _ := nodes[target].rs.Status(7); st.Term >= 1<<40 {
				t.Fatalf("the crafted term was taken: %+v", st)
			}
		})
	}
}

// TestIntakeOnAStore drives each kind of drop through Step and
// StepSnapshot of a running store: it is dropped (counted once) and the
// group keeps committing.
func TestIntakeOnAStore(t *testing.T) {
	_, nodes, leader := threeStores(t, func(c *Config) { c.WantReplica = func(g uint64) bool { return g != 99 } })
	f := otherThan(leader, 3)
	fid, lid := uint64(f+1), uint64(leader+1)
	third := 6 - fid - lid // the store neither leads nor receives
	st, _ := nodes[f].rs.Status(7)
	cases := []struct {
		name    string
		deliver func(nd *node)
	}{
		{"From is not the sender", func(nd *node) { send(nd, third, 7, msg(eraftpb.MsgHeartbeat, lid, fid, st.Term)) }},
		{"a store outside the group", func(nd *node) {
			m := msg(eraftpb.MsgVote, 9, fid, st.Term+1)
			m.Index, m.LogTerm = new(uint64(1<<30)), new(st.Term)
			send(nd, 9, 7, m)
		}},
		{"entries rewriting committed ones", func(nd *node) {
			m := msg(eraftpb.MsgApp, lid, fid, st.Term)
			m.Index, m.LogTerm, m.Commit = new(st.Commit), new(st.Term), new(st.Commit)
			m.Entries = []*eraftpb.Entry{{Index: new(st.Commit - 2), Term: new(st.Term)}}
			send(nd, lid, 7, m)
		}},
		{"a local message type", func(nd *node) { send(nd, lid, 7, msg(eraftpb.MsgHup, lid, fid, st.Term)) }},
		{"addressed to another store", func(nd *node) { send(nd, lid, 7, msg(eraftpb.MsgHeartbeat, lid, third, st.Term)) }},
		{"undecodable", func(nd *node) {
			nd.rs.Step(lid, []*storepb.RaftMessage{{GroupId: 7, Data: []byte{0xff, 0xff}}})
		}},
		{"a snapshot in a batch", func(nd *node) {
			send(nd, lid, 7, snapMsg(lid, fid, st.Term, st.Commit+100, &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}, nil))
		}},
		{"no MsgSnap on the snapshot stream", func(nd *node) { nd.rs.StepSnapshot(lid, 7, msg(eraftpb.MsgHeartbeat, lid, fid, st.Term)) }},
		{"a snapshot that raft cannot restore", func(nd *node) {
			nd.rs.StepSnapshot(lid, 7, snapMsg(lid, fid, st.Term, st.Commit+100, &eraftpb.ConfState{Voters: []uint64{1, 2, 2, 3}}, nil))
		}},
		{"a group this store does not want", func(nd *node) { send(nd, lid, 99, msg(eraftpb.MsgHeartbeat, lid, fid, 1)) }},
	}
	dropped := uint64(0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.deliver(nodes[f])
			dropped++
			waitDropped(t, nodes[f], dropped)
			keepsServing(t, nodes, f)
		})
	}
	if nodes[f].rs.HasGroup(99) {
		t.Error("a replica of an unwanted group was created")
	}
}

// TestDropLogIsAggregated: a flood of bad messages is logged in a line or
// two, which count them.
func TestDropLogIsAggregated(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	n := newNet()
	nd := n.start(t, 1, vfs.NewMem(), func(c *Config) { c.Logger = zap.New(core) })
	if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1, 2}, nil, false); err != nil {
		t.Fatal(err)
	}
	const flood = 5000
	for range flood {
		send(nd, 2, 7, msg(eraftpb.MsgHup, 2, 1, 1))
	}
	waitDropped(t, nd, flood)
	time.Sleep(dropLogInterval + 100*time.Millisecond) // the next tick reports what is pending
	var lines int
	var total uint64
	for _, e := range logs.FilterMessage("dropped raft messages from other stores").All() {
		lines++
		total += uint64(e.ContextMap()["dropped"].(uint64))
	}
	if lines == 0 || lines > 3 || total != flood {
		t.Fatalf("%d drops logged in %d lines counting %d", flood, lines, total)
	}
}

// TestValidateCommand: a forwarded proposal whose command the state
// machine would fail on (and stop the store) is dropped by the leader.
func TestValidateCommand(t *testing.T) {
	_, nodes, leader := threeStores(t, func(c *Config) {
		c.ValidateCommand = func(_ uint64, cmd []byte) error {
			if bytes.Equal(cmd, []byte("fail")) {
				return errors.New("poison")
			}
			return nil
		}
	})
	f := otherThan(leader, 3)
	before := nodes[leader].rs.Stats().Dropped
	_, err := nodes[f].rs.Propose(ctxT(t, 500*time.Millisecond), 7, []byte("fail"))
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("poison proposal: %v, want it never applied", err)
	}
	if got := nodes[leader].rs.Stats().Dropped; got <= before {
		t.Fatal("the leader did not drop the poison proposal")
	}
	keepsServing(t, nodes, f)
}

// TestRefusedConfChange: a committed conf change raft cannot apply (here
// removing the only voter) is refused at apply on every replica instead
// of panicking.
func TestRefusedConfChange(t *testing.T) {
	n := newNet()
	nd := n.start(t, 1, vfs.NewMem())
	if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := nd.rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("x")); err != nil {
		t.Fatal(err)
	}
	cc := &eraftpb.ConfChange{Type: eraftpb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(1))}
	if err := nd.rs.ProposeConfChange(ctxT(t, 5*time.Second), 7, cc); err == nil || !strings.Contains(err.Error(), "conf change refused") {
		t.Fatalf("removing the only voter: %v, want refused", err)
	}
	keepsServing(t, []*node{nd}, 0)
	if st, _ := nd.rs.Status(7); len(st.Voters) != 1 {
		t.Fatalf("voters %v", st.Voters)
	}
}

type nopTransport struct{}

func (nopTransport) Send(uint64, []*storepb.RaftMessage)           {}
func (nopTransport) SendSnapshot(uint64, uint64, *eraftpb.Message) {}

// TestCommitAfterAppendInTheSameRound: after an append in a round, the
// storage no longer tells where raft's log ends; a heartbeat that commits
// what the append brought is judged again after the round (and taken),
// one that commits past it is dropped then.
func TestCommitAfterAppendInTheSameRound(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := Open(Config{StoreID: 2, DB: db, Transport: nopTransport{},
		NewStateMachine: func(uint64) (StateMachine, error) { return nopSM{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// The loop is not started: the test runs its rounds, and steps the
	// messages as a round's posted work would.
	var cerr error
	rs.createGroup(7, []uint64{1, 2, 3}, nil, false, func(err error) { cerr = err })
	if err := rs.flushBoots(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	// A round as run does it: the work posted, then the Ready.
	endRound := func() {
		if err := rs.handleReady(); err != nil {
			t.Fatal(err)
		}
		for _, g := range rs.moved {
			g.logMoved = false
		}
		rs.moved = rs.moved[:0]
	}
	round := func() {
		for _, it := range rs.inbox.take() {
			it.fn()
		}
		endRound()
	}
	hb := func(commit uint64) *eraftpb.Message {
		m := msg(eraftpb.MsgHeartbeat, 1, 2, 6)
		m.Commit = new(commit)
		return m
	}
	app := msg(eraftpb.MsgApp, 1, 2, 6)
	app.Index, app.LogTerm, app.Commit = new(initIndex), new(initTerm), new(initIndex)
	app.Entries = ents(6, initIndex+1, initIndex+3) // 6, 7, 8
	rs.stepRemote(1, 7, app, false, false)
	rs.stepRemote(1, 7, hb(initIndex+3), false, false) // raft's log ends at 8; storage at 5
	rs.stepRemote(1, 7, hb(initIndex+9), false, false) // past the log
	if d := rs.Stats().Dropped; d != 0 {
		t.Fatalf("dropped %d in the round of the append", d)
	}
	endRound() // persists the append
	round()    // the heartbeats, again
	if d := rs.Stats().Dropped; d != 1 {
		t.Fatalf("dropped %d, want the heartbeat past the log", d)
	}
	if st := rs.groups[7].rn.BasicStatus(); st.GetCommit() != initIndex+3 || st.RaftState != raft.StateFollower {
		t.Fatalf("status %+v, want commit %d", st, initIndex+3)
	}
	rs.Stop()
}

// TestHonestStoresDropNothing: three stores under partitions that move the
// leadership and leave a follower behind a compacted log (so that it
// catches up by snapshot), with proposals and reads on every store
// throughout: the intake drops none of what honest stores say.
func TestHonestStoresDropNothing(t *testing.T) {
	n, nodes, _ := threeStores(t, func(c *Config) { c.CompactThreshold, c.CompactKeep = 20, 5 })
	cut := func(id uint64, down bool) {
		n.mu.Lock()
		n.cut[id] = down
		n.mu.Unlock()
	}
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if i%40 == 0 {
			victim := uint64(i/40%3 + 1)
			for id := uint64(1); id <= 3; id++ {
				cut(id, id == victim)
			}
		}
		nd := nodes[i%3]
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if _, err := nd.rs.Propose(ctx, 7, []byte(fmt.Sprintf("c%d", i))); err == nil && i%5 == 0 {
			_ = nd.rs.ReadIndex(ctx, 7)
		}
		cancel()
	}
	for id := uint64(1); id <= 3; id++ {
		cut(id, false)
	}
	for i := range nodes {
		keepsServing(t, nodes, i)
	}
	n.snaps.Wait()
	snaps := uint64(0)
	for i, nd := range nodes {
		st, _ := nd.rs.Status(7)
		snaps += st.SnapshotsApplied
		if d := nd.rs.Stats().Dropped; d != 0 {
			t.Errorf("store %d dropped %d messages of honest stores", i+1, d)
		}
	}
	if snaps == 0 {
		t.Log("no store caught up by snapshot this time")
	}
}
