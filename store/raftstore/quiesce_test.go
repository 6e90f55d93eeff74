package raftstore

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
)

// waitAsleep waits until every node's replica of group sleeps.
func waitAsleep(t *testing.T, nodes []*node, group uint64) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		for i, nd := range nodes {
			if st, ok := nd.rs.Status(group); !ok || !st.Asleep {
				return fmt.Errorf("store %d's replica is awake (%+v)", i+1, st)
			}
		}
		return nil
	})
}

// TestQuiescedGroupWakesAndServes: an idle group falls asleep on every
// replica and then does no loop work at all; a write on a follower wakes
// it, and a read on another replica after it sees it.
func TestQuiescedGroupWakesAndServes(t *testing.T) {
	_, nodes, leader := threeStores(t)
	if _, err := nodes[leader].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, nodes, 7)
	before := make([]Stats, len(nodes))
	for i, nd := range nodes {
		before[i] = nd.rs.Stats()
	}
	// Fifty ticks (the test ticks every 10ms) and election timeouts pass.
	time.Sleep(500 * time.Millisecond)
	for i, nd := range nodes {
		after := nd.rs.Stats()
		if after.Rounds != before[i].Rounds || after.Awake != 0 {
			t.Fatalf("store %d worked while its only group slept: rounds %d -> %d, awake %d", i+1, before[i].Rounds, after.Rounds, after.Awake)
		}
		if st, _ := nd.rs.Status(7); st.Term != 0 && !st.Asleep {
			t.Fatalf("store %d woke with nothing to do", i+1)
		}
	}
	follower, other := (leader+1)%3, (leader+2)%3
	v, err := nodes[follower].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[other].rs.ReadIndexRetrying(ctxT(t, 5*time.Second), 7); err != nil {
		t.Fatal(err)
	}
	if st, _ := nodes[other].rs.Status(7); st.Applied < v.(uint64) {
		t.Fatalf("read on store %d after the write at %d: applied %d", other+1, v.(uint64), st.Applied)
	}
	if w := nodes[leader].rs.Stats().Wakeups; w == before[leader].Wakeups {
		t.Fatal("the leader served the write without waking")
	}
	waitAsleep(t, nodes, 7)
}

// TestQuiescedGroupElectsWhenItsLeaderDies: the leader of a sleeping group
// stops; the followers learn it from store liveness, wake, and elect a
// new leader with no call to prompt them.
func TestQuiescedGroupElectsWhenItsLeaderDies(t *testing.T) {
	_, nodes, leader := threeStores(t)
	if _, err := nodes[leader].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, nodes, 7)
	old, _ := nodes[leader].rs.Status(7)
	nodes[leader].stop()
	var rest []*node
	for i, nd := range nodes {
		if i != leader {
			rest = append(rest, nd)
		}
	}
	eventually(t, 10*time.Second, func() error {
		for _, nd := range rest {
			if st, _ := nd.rs.Status(7); st.IsLeader && st.Term > old.Term {
				return nil
			}
		}
		return errors.New("no new leader")
	})
	if _, err := rest[0].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("b")); err != nil {
		t.Fatal(err)
	}
}

// TestFirstLiveMemberElectsForAFailedStore: when the store leading many
// sleeping groups stops, every group wakes on the others with its clock
// past the leader's lease, and the first live member (the lowest store id)
// campaigns at once and wins: one election per group, not one at each
// follower's random election timeout (with 8 groups, the other member would
// win some of them by chance).
func TestFirstLiveMemberElectsForAFailedStore(t *testing.T) {
	n := newNet()
	var nodes []*node
	groups := []uint64{11, 12, 13, 14, 15, 16, 17, 18}
	for id := uint64(1); id <= 3; id++ {
		nd := n.start(t, id, vfs.NewMem())
		for _, g := range groups {
			if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), g, []uint64{1, 2, 3}, nil, id == 3); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, nd)
	}
	terms := map[uint64]uint64{}
	for _, g := range groups {
		eventually(t, 10*time.Second, func() error {
			if st, _ := nodes[2].rs.Status(g); !st.IsLeader {
				return fmt.Errorf("store 3 does not lead group %d", g)
			}
			return nil
		})
		if _, err := nodes[2].rs.ProposeRetrying(ctxT(t, 5*time.Second), g, []byte("a")); err != nil {
			t.Fatal(err)
		}
		waitAsleep(t, nodes, g)
		st, _ := nodes[2].rs.Status(g)
		terms[g] = st.Term
	}
	nodes[2].stop()
	for _, g := range groups {
		eventually(t, 10*time.Second, func() error {
			if st, _ := nodes[0].rs.Status(g); !st.IsLeader {
				st2, _ := nodes[1].rs.Status(g)
				return fmt.Errorf("group %d: store 1 does not lead (store 1 %+v, store 2 %+v)", g, st, st2)
			}
			return nil
		})
		if st, _ := nodes[0].rs.Status(g); st.Term != terms[g]+1 {
			t.Fatalf("group %d: store 1 leads in term %d, want %d (one election)", g, st.Term, terms[g]+1)
		}
	}
}

// TestMissedQuiesceHeartbeat: a follower that never got the quiesce
// heartbeat keeps ticking and campaigns; the others refuse it (their
// leader is alive), the leader wakes and heartbeats, and the group ends
// asleep under the same leader.
func TestMissedQuiesceHeartbeat(t *testing.T) {
	var dropped atomic.Int32
	n, nodes, leader := threeStores(t)
	victim := uint64((leader+1)%3 + 1)
	n.mu.Lock()
	n.dropQuiesce = func(to uint64) bool {
		return to == victim && dropped.Add(1) == 1
	}
	n.mu.Unlock()
	if _, err := nodes[leader].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	before, _ := nodes[leader].rs.Status(7)
	waitAsleep(t, nodes, 7)
	if dropped.Load() == 0 {
		t.Fatal("no quiesce heartbeat was dropped")
	}
	after, _ := nodes[leader].rs.Status(7)
	if !after.IsLeader || after.Term != before.Term {
		t.Fatalf("leader changed: %+v -> %+v", before, after)
	}
}

// restartable starts stores 1-3 on file systems that outlive them (to
// reopen one with n.open), each with groups bootstrapped; store 1
// campaigns in each.
func restartable(t *testing.T, n *net, groups []uint64, tune ...func(*Config)) ([]*node, []vfs.FS) {
	t.Helper()
	fss := []vfs.FS{vfs.NewMem(), vfs.NewMem(), vfs.NewMem()}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = n.start(t, uint64(i+1), fss[i], tune...)
		for _, g := range groups {
			if err := nodes[i].rs.CreateGroup(ctxT(t, 5*time.Second), g, []uint64{1, 2, 3}, nil, i == 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	return nodes, fss
}

// TestSlowStartTakesNoPeerForDown: a store whose start-up took longer
// than an election timeout (loading 100,000 groups, in which it could hear
// no one) does not take its peers for down at its first tick: their
// liveness counts from the start.
func TestSlowStartTakesNoPeerForDown(t *testing.T) {
	n := newNet()
	// An election timeout of 20 ticks of 10ms: the store serves a quarter
	// of one after its start, with room to spare on a loaded machine.
	slow := func(c *Config) { c.ElectionTicks = 20 }
	nodes, fss := restartable(t, n, []uint64{7}, slow)
	if _, err := nodes[0].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, nodes, 7)
	nodes[1].stop()
	n.mu.Lock()
	// Heard by no one, and hearing no one, for 3 election timeouts while
	// it loads.
	n.cut[2] = true
	n.beforeStart = func(uint64) { time.Sleep(600 * time.Millisecond) }
	n.mu.Unlock()
	nd, err := n.open(2, fss[1], slow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.stop)
	time.Sleep(50 * time.Millisecond)
	n.mu.Lock()
	n.cut[2] = false
	n.mu.Unlock()
	if _, err := nd.rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if d := nd.rs.Stats().StoresDown; d != 0 {
		t.Fatalf("the restarted store took a peer for down %d times", d)
	}
}

// TestRestartedStoreSleepsUntilUsed: a store restarted while its group
// slept holds no election (its replica sleeps, knowing no leader, and the
// others stay asleep); the first call on it wakes the group and is served.
func TestRestartedStoreSleepsUntilUsed(t *testing.T) {
	n := newNet()
	nodes, fss := restartable(t, n, []uint64{7})
	if _, err := nodes[0].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, nodes, 7)
	lead, _ := nodes[0].rs.Status(7)
	follower := 1
	if lead.Leader == 2 {
		follower = 2
	}
	nodes[follower].stop()
	nd, err := n.open(uint64(follower+1), fss[follower])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.stop)
	nodes[follower] = nd
	st, _ := nd.rs.Status(7)
	if !st.Asleep || st.Leader != 0 {
		t.Fatalf("restarted replica: %+v; want asleep, with no leader known", st)
	}
	// A few election timeouts (10 ticks of 10ms): nobody campaigns.
	time.Sleep(300 * time.Millisecond)
	for i, x := range nodes {
		if st, _ := x.rs.Status(7); !st.Asleep || st.Term != lead.Term {
			t.Fatalf("store %d after the restart: %+v; want asleep in term %d", i+1, st, lead.Term)
		}
	}
	v, err := nd.rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := nd.rs.Status(7); st.Applied < v.(uint64) {
		t.Fatalf("applied %d, below its own write at %d", st.Applied, v.(uint64))
	}
}

// TestQuiescesWithAStoreDown: a group whose follower's store is down falls
// asleep all the same (it would otherwise stay awake until the store is
// replaced); when the store comes back, the group wakes and catches it up
// with no call to prompt it.
func TestQuiescesWithAStoreDown(t *testing.T) {
	n := newNet()
	nodes, fss := restartable(t, n, []uint64{7})
	waitAsleep(t, nodes, 7)
	st, _ := nodes[0].rs.Status(7)
	leader := int(st.Leader) - 1
	down := (leader + 1) % 3
	nodes[down].stop()
	v, err := nodes[leader].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	var up []*node
	for i, nd := range nodes {
		if i != down {
			up = append(up, nd)
		}
	}
	waitAsleep(t, up, 7)
	nd, err := n.open(uint64(down+1), fss[down])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.stop)
	eventually(t, 10*time.Second, func() error {
		if st, _ := nd.rs.Status(7); st.Applied < v.(uint64) {
			return fmt.Errorf("store %d applied %d of %d", down+1, st.Applied, v.(uint64))
		}
		return nil
	})
	waitAsleep(t, append(up, nd), 7)
}

// TestQuiesceHeartbeatCommitsOnlyWhatAMemberHas: a leader that falls asleep
// while a member is cut off tells it to sleep (the message waits in a real
// transport) with the commit index that member has, as raft's own
// heartbeats do: one committing entries it lacks is refused by its intake
// (rule 9), and with it the leader it would learn of after a restart.
func TestQuiesceHeartbeatCommitsOnlyWhatAMemberHas(t *testing.T) {
	n, nodes, leader := threeStores(t)
	waitAsleep(t, nodes, 7)
	cut := uint64((leader+1)%3 + 1)
	st, _ := nodes[cut-1].rs.Status(7)
	has := st.Commit
	var sentCommit atomic.Uint64
	n.mu.Lock()
	n.cut[cut] = true
	n.sent = func(from, to uint64, rm *storepb.RaftMessage) {
		if to != cut || !rm.GetQuiesce() {
			return
		}
		m := &eraftpb.Message{}
		if proto.Unmarshal(rm.GetData(), m) == nil && m.GetCommit() > sentCommit.Load() {
			sentCommit.Store(m.GetCommit())
		}
	}
	n.mu.Unlock()
	// Written while it is cut off: it lacks the entry.
	if _, err := nodes[leader].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	var up []*node
	for i, nd := range nodes {
		if uint64(i+1) != cut {
			up = append(up, nd)
		}
	}
	waitAsleep(t, up, 7)
	if got := sentCommit.Load(); got > has {
		t.Fatalf("the quiesce heartbeat to store %d commits %d; it has %d", cut, got, has)
	}
}

// TestAlwaysAwakeGroupCatchesUpAfterRestartOfAll: every store restarts
// while a follower lacks the last entries of two groups. Neither waits for
// a call: the one named always awake never sleeps, and the ordinary one's
// former leader (it voted for itself in its last term) wakes and campaigns.
// Both elect a leader and catch the follower up (a chaos run found a store
// whose meta replica stayed behind for good, serving a mode the cluster
// had switched away from, and one whose group, needing a leader to move
// its replicas, slept leaderless for good).
func TestAlwaysAwakeGroupCatchesUpAfterRestartOfAll(t *testing.T) {
	const ordinary, awake = 7, 8
	tune := func(c *Config) {
		c.AlwaysAwake = func(g uint64) bool { return g == awake }
	}
	n := newNet()
	nodes, fss := restartable(t, n, []uint64{ordinary, awake}, tune)
	for _, g := range []uint64{ordinary, awake} {
		if _, err := nodes[0].rs.ProposeRetrying(ctxT(t, 5*time.Second), g, []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	waitAsleep(t, nodes, ordinary)
	if st, _ := nodes[0].rs.Status(awake); st.Asleep {
		t.Fatalf("group %d fell asleep: %+v", awake, st)
	}
	// A store that leads neither group is cut off while both take a
	// write at their leader: it lacks them.
	leads := map[uint64]int{}
	eventually(t, 10*time.Second, func() error {
		for _, g := range []uint64{ordinary, awake} {
			st, _ := nodes[0].rs.Status(g)
			if st.Leader == 0 {
				return fmt.Errorf("group %d has no leader", g)
			}
			leads[g] = int(st.Leader - 1)
		}
		return nil
	})
	victim := 0
	for victim == leads[ordinary] || victim == leads[awake] {
		victim++
	}
	n.mu.Lock()
	n.cut[uint64(victim+1)] = true
	n.mu.Unlock()
	want := map[uint64]uint64{}
	for _, g := range []uint64{ordinary, awake} {
		v, err := nodes[leads[g]].rs.ProposeRetrying(ctxT(t, 5*time.Second), g, []byte("b"))
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		want[g] = v.(uint64)
	}
	for _, nd := range nodes {
		nd.stop()
	}
	n.mu.Lock()
	n.cut[uint64(victim+1)] = false
	n.mu.Unlock()
	for i := range nodes {
		nd, err := n.open(uint64(i+1), fss[i], tune)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nd.stop)
		nodes[i] = nd
	}
	if st, _ := nodes[victim].rs.Status(awake); st.Applied >= want[awake] {
		t.Fatalf("store %d restarted with group %d applied to %d; the test wants it behind %d", victim+1, awake, st.Applied, want[awake])
	}
	eventually(t, 10*time.Second, func() error {
		for _, g := range []uint64{ordinary, awake} {
			if st, _ := nodes[victim].rs.Status(g); st.Applied < want[g] || st.Leader == 0 {
				return fmt.Errorf("store %d's replica of group %d: %+v; want applied %d under a leader", victim+1, g, st, want[g])
			}
		}
		return nil
	})
	if st, _ := nodes[victim].rs.Status(awake); st.Asleep {
		t.Fatalf("group %d fell asleep after the restart: %+v", awake, st)
	}
}

// TestReturningStoreWakesOnlyWhatItLacks: a store comes back after a
// downtime in which one group took a write and another did not. The first
// wakes and catches it up; the second, which it holds whole, sleeps on (a
// store returning to 100,000 groups woke every one it shared with its
// peers, and the burst of work starved every call for minutes).
func TestReturningStoreWakesOnlyWhatItLacks(t *testing.T) {
	const written, untouched = 7, 8
	n := newNet()
	nodes, fss := restartable(t, n, []uint64{written, untouched})
	waitAsleep(t, nodes, written)
	waitAsleep(t, nodes, untouched)
	leads := map[uint64]int{}
	for _, g := range []uint64{written, untouched} {
		st, _ := nodes[0].rs.Status(g)
		leads[g] = int(st.Leader) - 1
	}
	down := 0
	for down == leads[written] || down == leads[untouched] {
		down++
	}
	nodes[down].stop()
	v, err := nodes[leads[written]].rs.ProposeRetrying(ctxT(t, 5*time.Second), written, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	var up []*node
	for i, nd := range nodes {
		if i != down {
			up = append(up, nd)
		}
	}
	waitAsleep(t, up, written) // with the store down: its peers took it for down
	var woke atomic.Int32
	n.mu.Lock()
	n.sent = func(from, to uint64, rm *storepb.RaftMessage) {
		if rm.GetGroupId() == untouched {
			woke.Add(1)
		}
	}
	n.mu.Unlock()
	nd, err := n.open(uint64(down+1), fss[down])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.stop)
	eventually(t, 10*time.Second, func() error {
		if st, _ := nd.rs.Status(written); st.Applied < v.(uint64) {
			return fmt.Errorf("store %d applied %d of %d", down+1, st.Applied, v.(uint64))
		}
		return nil
	})
	waitAsleep(t, append(up, nd), written)
	if c := woke.Load(); c != 0 {
		t.Fatalf("group %d, which store %d holds whole, sent %d messages after it returned", untouched, down+1, c)
	}
}
