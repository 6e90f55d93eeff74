// Unit tests of the placement rule (planner) on made-up tables and reports.

package server

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// TestRepairBudget: namespaces settled on fewer stores than their
// replication factor (formed while a store was silent) wait for a move and
// do not use up the moves allowed at once; every round starts as many
// repairs as the budget allows, until all are repaired. A move under way
// (a group not settled on its replicas yet) does take one.
func TestRepairBudget(t *testing.T) {
	const rf, maxMoves, n = 3, 4, 50
	stores := []*pdpb.StoreStatus{{Id: 1, State: StoreUp}, {Id: 2, State: StoreUp}, {Id: 3, State: StoreUp}}
	var recs []*storepb.NamespaceRecord
	views := map[uint64]*groupView{}
	for i := range n {
		gid := uint64(100 + i)
		recs = append(recs, &storepb.NamespaceRecord{Name: fmt.Sprintf("ns%d", i), Mode: ModeStrong, Version: 1,
			GroupId: gid, GroupPeers: []uint64{1, 2}, Replicas: []uint64{1, 2}})
		views[gid] = &groupView{leader: 1, term: 2, voters: []uint64{1, 2}, reportedByLeader: true, reportingReplicas: []uint64{1, 2}}
	}

	for round := 0; ; round++ {
		if round > n {
			t.Fatalf("not repaired after %d rounds", round)
		}
		p := newPlanner(stores, recs, views, rf, maxMoves)
		under, started := 0, 0
		for _, rec := range recs {
			if !p.underReplicated(rec) {
				continue
			}
			under++
			if next, why, ok := p.next(rec, views[rec.GetGroupId()]); ok {
				if !slices.Equal(next, []uint64{1, 2, 3}) {
					t.Fatalf("%s: %s to %v, want [1 2 3]", rec.GetName(), why, next)
				}
				rec.Replicas = next
				started++
			}
		}
		if under == 0 {
			break
		}
		if want := min(maxMoves, under); started != want {
			t.Fatalf("round %d: %d under-replicated, %d repairs started, want %d", round, under, started, want)
		}
		// The moves started are under way in the next round: one more
		// round of the planner must start none beyond the budget.
		p = newPlanner(stores, recs, views, rf, maxMoves)
		if p.budget != maxMoves-started {
			t.Fatalf("round %d: budget %d with %d moves under way, want %d", round, p.budget, started, maxMoves-started)
		}
		// The group's leader adds store 3 and promotes it.
		for _, rec := range recs {
			if v := views[rec.GetGroupId()]; len(rec.GetReplicas()) == rf && len(v.voters) < rf {
				v.voters = []uint64{1, 2, 3}
			}
		}
	}
}
