package raftstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
)

// TestCampaignerLeadsWhenPeersCreateLate: the replica created to campaign
// leads its new group even when its peers create theirs only after its
// first campaign was dropped (in static mode a store drops the votes of a
// group whose row it has not applied yet). Leaders spread at creation
// rely on it: otherwise the peers' own election timers race the
// campaigner's retry, and the first store to apply a row loses most of
// the groups it was meant to lead.
func TestCampaignerLeadsWhenPeersCreateLate(t *testing.T) {
	n := newNet()
	var mu sync.Mutex
	campaigned := map[uint64]bool{}
	n.sent = func(from, _ uint64, rm *storepb.RaftMessage) {
		m := &eraftpb.Message{}
		if from != 1 || proto.Unmarshal(rm.GetData(), m) != nil || m.GetType() != eraftpb.MsgPreVote {
			return
		}
		mu.Lock()
		campaigned[rm.GetGroupId()] = true
		mu.Unlock()
	}
	late := func(c *Config) { c.WantReplica = func(uint64) bool { return false } }
	nodes := []*node{n.start(t, 1, vfs.NewMem(), late), n.start(t, 2, vfs.NewMem(), late), n.start(t, 3, vfs.NewMem(), late)}
	const groups = 12
	voters := []uint64{1, 2, 3}
	for g := uint64(10); g < 10+groups; g++ {
		if err := nodes[0].rs.CreateGroup(ctxT(t, 5*time.Second), g, voters, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	// Every first campaign is out, and dropped: the peers have no replica.
	eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(campaigned) < groups {
			return fmt.Errorf("%d of %d groups campaigned", len(campaigned), groups)
		}
		return nil
	})
	for g := uint64(10); g < 10+groups; g++ {
		for _, nd := range nodes[1:] {
			if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), g, voters, nil, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 10*time.Second, func() error {
		for g := uint64(10); g < 10+groups; g++ {
			st, _ := nodes[1].rs.Status(g)
			if st.Leader == 0 {
				return fmt.Errorf("group %d has no leader", g)
			}
			if st.Leader != 1 {
				t.Fatalf("group %d is led by store %d, not by its campaigner", g, st.Leader)
			}
		}
		return nil
	})
}

// TestMessageBeforeCreationFindsTheBootstrappedReplica: a message for a new
// group that reaches the loop just before the group's creation (its row
// applied, its leader already calling) waits for the creation, and finds
// the replica bootstrapped. Taken first, it would create an empty replica,
// which only a snapshot could fill: one snapshot per namespace created.
func TestMessageBeforeCreationFindsTheBootstrappedReplica(t *testing.T) {
	nodes, voters, called, snaps := newGroupRace(t)
	// Hold store 2's loop while the leader calls and the creation is
	// queued behind its message.
	release := make(chan struct{})
	held := make(chan struct{})
	nodes[1].rs.post(func() { close(held); <-release })
	<-held
	if err := nodes[0].rs.CreateGroup(ctxT(t, 5*time.Second), 20, voters, nil, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("store 1 did not campaign")
	}
	// Send delivers synchronously: the pre-vote is queued.
	nodes[1].rs.CreateGroupAsync(20, voters, nil, false)
	close(release)
	waitBootstrapped(t, nodes[1], snaps)
}

// TestStartReaderReadsWhatTheDBHolds: start-up's forward-moving reader
// loads every group as point reads do.
func TestStartReaderReadsWhatTheDBHolds(t *testing.T) {
	n := newNet()
	fs := vfs.NewMem()
	nd := n.start(t, 1, fs)
	for g := uint64(1); g <= 40; g++ {
		nd.rs.CreateGroupAsync(g, []uint64{1}, []KV{{Key: []byte(fmt.Sprintf("s/%d", g)), Value: []byte("v")}}, true)
	}
	for g := uint64(1); g <= 40; g += 3 {
		for i := range int(g % 5) {
			if _, err := nd.rs.ProposeRetrying(ctxT(t, 10*time.Second), g, []byte(fmt.Sprintf("cmd-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	nd.stop()
	db, err := pebble.Open("", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rd, err := newStartReader(db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rd.close() }()
	ids, err := listGroups(db)
	if err != nil || len(ids) != 40 {
		t.Fatalf("groups %v: %v", ids, err)
	}
	tails := 0 // groups with entries past their truncation point: the log scan is read too
	for _, id := range ids {
		want, err := loadGroup(db, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := loadGroupWith(db, rd, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.applied.index != want.applied.index || got.trunc != want.trunc || got.last != want.last || got.lastTerm != want.lastTerm ||
			!proto.Equal(got.hs, want.hs) || !proto.Equal(got.applied.conf, want.applied.conf) || got.exists != want.exists {
			t.Fatalf("group %d: start reader %+v, point reads %+v", id, got, want)
		}
		if want.last > want.trunc {
			tails++
		}
	}
	if tails == 0 {
		t.Fatal("no group has a log past its truncation point: the test reads no log")
	}
}

// TestRestartedLeaderIsElectedAgainOnFirstCall: a store restarted while it
// led a sleeping group serves the first call on it without waiting for an
// election timeout: its replica, loaded knowing no leader, pre-votes at
// the call, and its followers, whose leader it was, grant it at once.
// With an election timeout of 5 s, nothing else could elect a leader
// within 2.5 s.
func TestRestartedLeaderIsElectedAgainOnFirstCall(t *testing.T) {
	n := newNet()
	slow := func(c *Config) { c.ElectionTicks = 500 }
	nodes, fss := restartable(t, n, []uint64{7}, slow)
	if _, err := nodes[0].rs.ProposeRetrying(ctxT(t, 10*time.Second), 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, nodes, 7)
	st, _ := nodes[0].rs.Status(7)
	l := int(st.Leader) - 1
	nodes[l].stop()
	nd, err := n.open(uint64(l+1), fss[l], slow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.stop)
	if _, err := nd.rs.ProposeRetrying(ctxT(t, 2500*time.Millisecond), 7, []byte("b")); err != nil {
		t.Fatalf("restarted leader's store, first call: %v", err)
	}
}

// TestMessageBeforeQueuedCreationWaitsForIt: a round takes a message for a
// new group, and the group's creation is queued while the round runs (its
// row applied meanwhile): the message goes back to the inbox, behind the
// creation, and finds the replica bootstrapped; no snapshot is sent.
func TestMessageBeforeQueuedCreationWaitsForIt(t *testing.T) {
	nodes, voters, called, snaps := newGroupRace(t)
	// Hold store 2's loop, and queue a second hold and then the leader's
	// pre-vote behind it: one round takes both.
	release1, held1 := make(chan struct{}), make(chan struct{})
	nodes[1].rs.post(func() { close(held1); <-release1 })
	<-held1
	release2, held2 := make(chan struct{}), make(chan struct{})
	nodes[1].rs.post(func() { close(held2); <-release2 })
	if err := nodes[0].rs.CreateGroup(ctxT(t, 5*time.Second), 20, voters, nil, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("store 1 did not campaign")
	}
	close(release1)
	<-held2
	// The round holding the pre-vote runs; the creation comes after it.
	nodes[1].rs.CreateGroupAsync(20, voters, nil, false)
	close(release2)
	waitBootstrapped(t, nodes[1], snaps)
}

// newGroupRace starts three stores, with group 20 created on store 3. called
// receives when store 1 sends store 2 a pre-vote for group 20; snaps counts
// the snapshots sent.
func newGroupRace(t *testing.T) (nodes []*node, voters []uint64, called chan struct{}, snaps *atomic.Int64) {
	n := newNet()
	snaps = &atomic.Int64{}
	called = make(chan struct{}, 1)
	n.tap = func(from, to, _ uint64, m *eraftpb.Message) {
		if m.GetType() == eraftpb.MsgSnap {
			snaps.Add(1)
		}
	}
	n.sent = func(from, to uint64, rm *storepb.RaftMessage) {
		m := &eraftpb.Message{}
		if from == 1 && to == 2 && rm.GetGroupId() == 20 && proto.Unmarshal(rm.GetData(), m) == nil && m.GetType() == eraftpb.MsgPreVote {
			select {
			case called <- struct{}{}:
			default:
			}
		}
	}
	nodes = []*node{n.start(t, 1, vfs.NewMem()), n.start(t, 2, vfs.NewMem()), n.start(t, 3, vfs.NewMem())}
	voters = []uint64{1, 2, 3}
	if err := nodes[2].rs.CreateGroup(ctxT(t, 5*time.Second), 20, voters, nil, false); err != nil {
		t.Fatal(err)
	}
	return nodes, voters, called, snaps
}

// waitBootstrapped waits for nd's replica of group 20 to know its leader,
// and fails if it took a snapshot or any was sent.
func waitBootstrapped(t *testing.T, nd *node, snaps *atomic.Int64) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		st, ok := nd.rs.Status(20)
		if !ok || st.Leader == 0 {
			return fmt.Errorf("store 2: %+v", st)
		}
		if st.SnapshotsApplied > 0 {
			t.Fatalf("store 2's replica took a snapshot: it was created empty")
		}
		return nil
	})
	if n := snaps.Load(); n > 0 {
		t.Fatalf("%d snapshots sent for a group every store bootstrapped", n)
	}
}
