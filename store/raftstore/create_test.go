package raftstore

import (
	"fmt"
	"sync"
	"testing"
	"time"

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
