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
// its leadership over first), and a removed replica is destroyed.
func TestMembershipFollowsTheWantedVoters(t *testing.T) {
	w := &wantedVoters{}
	w.set(1)
	n := newNet()
	tune := func(c *Config) { c.DesiredVoters = w.get; c.LearnersFirst = true }
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
	eventually(t, 10*time.Second, func() error {
		if nodes[0].rs.HasGroup(7) {
			return fmt.Errorf("store 1 still has its replica")
		}
		return nil
	})
}
