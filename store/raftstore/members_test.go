package raftstore

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// wantedVoters is a DesiredVoters the test changes as it goes.
type wantedVoters struct {
	mu   sync.Mutex
	want []uint64
}

func (w *wantedVoters) set(ids ...uint64) { w.mu.Lock(); w.want = ids; w.mu.Unlock() }
func (w *wantedVoters) get(uint64) []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.want)
}

func waitVoters(t *testing.T, nodes []*node, group uint64, want ...uint64) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		for _, nd := range nodes {
			st, ok := nd.rs.Status(group)
			if !ok || !st.IsLeader {
				continue
			}
			if slices.Equal(slices.Sorted(slices.Values(st.Voters)), want) && len(st.Learners) == 0 {
				return nil
			}
			return fmt.Errorf("leader %d: voters %v learners %v", st.Leader, st.Voters, st.Learners)
		}
		return fmt.Errorf("no leader")
	})
}

// TestMembershipFollowsTheWantedVoters: a group of one grows to three (two
// learners at once, each promoted once caught up, under writes), then
// moves a replica (a fourth store added, then its leader removed: it hands
// its leadership over first). The removed replica tells its owner, and is
// destroyed when the owner asks (DestroyIfIdle), not before.
func TestMembershipFollowsTheWantedVoters(t *testing.T) {
	w := &wantedVoters{}
	w.set(1)
	n := newNet()
	removed := make(chan uint64, 16)
	tune := func(c *Config) {
		c.DesiredVoters = w.get
		c.LearnersFirst = true
		c.OnRemoved = func(group uint64) { removed <- group }
	}
	var nodes []*node
	for id := uint64(1); id <= 4; id++ {
		nodes = append(nodes, n.start(t, id, vfs.NewMem(), tune))
	}
	if err := nodes[0].rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	waitVoters(t, nodes, 7, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = nodes[0].rs.Propose(ctxT(t, time.Second), 7, []byte(fmt.Sprintf("k%d=v", i)))
		}
	})
	w.set(1, 2, 3)
	waitVoters(t, nodes, 7, 1, 2, 3)
	w.set(2, 3, 4)
	waitVoters(t, nodes, 7, 2, 3, 4)
	close(stop)
	wg.Wait()
	select {
	case g := <-removed:
		if g != 7 {
			t.Fatalf("OnRemoved(%d), want group 7", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("store 1 never applied its own removal")
	}
	if !nodes[0].rs.HasGroup(7) {
		t.Fatal("store 1 destroyed its replica on its own")
	}
	seen, _ := nodes[0].rs.Received(7)
	destroyed, err := nodes[0].rs.DestroyIfIdle(7, seen)
	if err != nil || !destroyed {
		t.Fatalf("DestroyIfIdle = %v, %v; want true", destroyed, err)
	}
	if nodes[0].rs.HasGroup(7) {
		t.Fatal("store 1 still has its replica")
	}
	if destroyed, _ := nodes[1].rs.DestroyIfIdle(7, 0); destroyed {
		t.Fatal("DestroyIfIdle destroyed a replica that has taken messages since")
	}
}

// TestRemovedAndAddedBackInOneAppend: a voter cut off while the group
// removes it and then adds it back receives both changes in one append
// once healed. It must keep its replica through its own removal (it has
// acknowledged the entries after it, the return among them) and end a
// voter again; a replica destroyed there would come back empty while its
// leader counts those entries as held, and stay a learner for good.
func TestRemovedAndAddedBackInOneAppend(t *testing.T) {
	w := &wantedVoters{}
	w.set(1)
	n := newNet()
	tune := func(c *Config) {
		c.DesiredVoters = w.get
		c.LearnersFirst = true
		c.CompactThreshold = 1 << 30 // the leader sends the log, not a snapshot
	}
	var nodes []*node
	for id := uint64(1); id <= 4; id++ {
		nodes = append(nodes, n.start(t, id, vfs.NewMem(), tune))
	}
	if err := nodes[0].rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	w.set(1, 2, 3)
	waitVoters(t, nodes, 7, 1, 2, 3)
	if _, err := nodes[0].rs.Propose(ctxT(t, 5*time.Second), 7, []byte("a=1")); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.cut[3] = true
	n.mu.Unlock()
	w.set(1, 2, 4)
	waitVoters(t, nodes, 7, 1, 2, 4)
	w.set(1, 2, 3, 4)
	eventually(t, 10*time.Second, func() error {
		st, _ := nodes[0].rs.Status(7)
		if !slices.Contains(st.Learners, 3) {
			return fmt.Errorf("leader's learners %v", st.Learners)
		}
		return nil
	})
	n.mu.Lock()
	n.cut[3] = false
	n.mu.Unlock()
	waitVoters(t, nodes, 7, 1, 2, 3, 4)
	if _, err := nodes[0].rs.Propose(ctxT(t, 5*time.Second), 7, []byte("b=2")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		st, _ := nodes[2].rs.Status(7)
		lst, _ := nodes[0].rs.Status(7)
		if st.Applied < lst.Commit {
			return fmt.Errorf("store 3 applied %d of %d", st.Applied, lst.Commit)
		}
		return nil
	})
}
