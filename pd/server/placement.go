// Placement: which stores hold each namespace (PD mode), in the manner of
// TiKV PD's replica checker and balance schedulers. This file is the pure
// rule; schedule.go runs it on the leader and writes what it decides.

package server

import (
	"cmp"
	"hash/fnv"
	"slices"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// MaxReplicas is the largest replication factor a namespace may have.
const MaxReplicas = 7

// A namespace's replicas (NamespaceRecord.replicas) are what PD wants; the
// stores converge to them. For a strong namespace the group's leader does:
// it adds a missing replica as a learner, promotes it once it has caught
// up, and removes a voter that is no longer wanted only when every wanted
// store is a voter (store/raftstore/members.go). PD therefore changes a
// strong namespace's replicas in two steps, each taken only when the group
// has settled on the previous one (its voters are the replicas):
//
//   - add: one store is added (the set grows past the replication factor);
//   - remove: once the added store is a voter, one store is dropped.
//
// So a move never lowers a namespace below its replication factor: the
// group has rf+1 voters between the two steps. A replica that never became
// a voter (the added store died before it caught up) is dropped at once.

// placeStore is what the planner knows of one store.
type placeStore struct {
	id       uint64
	state    string
	replicas int // namespaces whose replicas list it
	leaders  int // groups it leads, as the stores report
}

// target: the store may receive new replicas.
func (p *placeStore) target() bool { return p.state == StoreUp }

// lost: the store's replicas must move away.
func (p *placeStore) lost() bool {
	return p.state == StoreDown || p.state == StoreRemoving || p.state == StoreRemoved
}

// planner decides, one namespace at a time, each namespace's next replica
// set. It keeps counts current as it decides, so that the decisions of one
// round spread over the stores.
type planner struct {
	stores    map[uint64]*placeStore
	defaultRF int
	// budget is how many more moves may start this round.
	budget int
}

// groupView is what the stores report of one strong namespace's group: its
// membership as the leader applied it.
type groupView struct {
	leader            uint64
	term              uint64
	voters, learners  []uint64
	reportedByLeader  bool
	reportingReplicas []uint64 // stores that report holding a replica
}

// add counts one store's report of the group: up is whether that store is.
func (v *groupView) add(store uint64, up bool, g *pdpb.GroupStatus) {
	v.reportingReplicas = append(v.reportingReplicas, store)
	if g.GetLeader() == store && up && (!v.reportedByLeader || g.GetTerm() > v.term) {
		v.leader, v.term, v.reportedByLeader = store, g.GetTerm(), true
		v.voters = sortedCopy(g.GetVoters())
		v.learners = sortedCopy(g.GetLearners())
	}
}

func sortedCopy(ids []uint64) []uint64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// replicasOf is a row's replica set: its replicas, or for a strong row
// written before placement, its group's first voters.
func replicasOf(rec *storepb.NamespaceRecord) []uint64 {
	if len(rec.GetReplicas()) > 0 {
		return rec.GetReplicas()
	}
	if rec.GetMode() == ModeStrong {
		return rec.GetGroupPeers()
	}
	return nil
}

// replicationFactor is a row's replication factor under PD's default.
func replicationFactor(rec *storepb.NamespaceRecord, def int) int {
	if n := int(rec.GetReplicationFactor()); n > 0 {
		return n
	}
	return def
}

// placed tells whether PD places rec: a strong namespace whose group has
// been formed, or an eventual one that has replicas (one created before
// any store was up has none, and is on every store until the scheduler
// places it).
func placed(rec *storepb.NamespaceRecord) bool {
	if rec.GetMode() == ModeStrong {
		return rec.GetGroupId() != 0 && len(replicasOf(rec)) > 0
	}
	return len(rec.GetReplicas()) > 0
}

// hasGroup: the namespace has a Raft group whose membership follows its
// replicas (strong, or eventual after being strong: the fenced group moves
// with the data).
func hasGroup(rec *storepb.NamespaceRecord) bool {
	return rec.GetGroupId() != 0 && len(rec.GetGroupPeers()) > 0
}

// settled tells whether a placed namespace holds exactly its replicas: no
// replica is still filling (eventual), and the group's leader reports its
// voters are the replicas and it has no learner.
func settled(rec *storepb.NamespaceRecord, v *groupView) bool {
	if len(rec.GetFilling()) > 0 {
		return false
	}
	if !hasGroup(rec) {
		return true
	}
	if v == nil || !v.reportedByLeader || len(v.learners) > 0 {
		return false
	}
	return slices.Equal(v.voters, sortedCopy(replicasOf(rec)))
}

// counts: a replica holds the namespace for real: it is a voter of the
// group (if there is one) and is not filling.
func counts(rec *storepb.NamespaceRecord, v *groupView, id uint64) bool {
	if slices.Contains(rec.GetFilling(), id) {
		return false
	}
	if !hasGroup(rec) {
		return true
	}
	return v != nil && v.reportedByLeader && slices.Contains(v.voters, id)
}

// nextFilling is the filling list of a row whose replicas go from the
// row's to next: eventual replicas that are new fill, those that left stop.
//
// A row with no replicas yet is on every store: the stores it is placed on
// are complete already (the others hand theirs over before they drop them).
func nextFilling(rec *storepb.NamespaceRecord, next []uint64) []uint64 {
	if rec.GetMode() != ModeEventual || len(rec.GetReplicas()) == 0 {
		return nil
	}
	var out []uint64
	for _, id := range next {
		if !slices.Contains(rec.GetReplicas(), id) || slices.Contains(rec.GetFilling(), id) {
			out = append(out, id)
		}
	}
	return out
}

func newPlanner(stores []*pdpb.StoreStatus, recs []*storepb.NamespaceRecord, views map[uint64]*groupView, defaultRF, maxMoves int) *planner {
	p := &planner{stores: map[uint64]*placeStore{}, defaultRF: defaultRF, budget: maxMoves}
	for _, st := range stores {
		p.stores[st.GetId()] = &placeStore{id: st.GetId(), state: st.GetState()}
	}
	for _, rec := range recs {
		if !placed(rec) {
			continue
		}
		for _, id := range replicasOf(rec) {
			if ps := p.stores[id]; ps != nil {
				ps.replicas++
			}
		}
		if p.started(rec, views[rec.GetGroupId()]) {
			p.budget--
		}
	}
	for _, v := range views {
		if ps := p.stores[v.leader]; ps != nil && v.reportedByLeader {
			ps.leaders++
		}
	}
	return p
}

// moving: the namespace's replicas are changing, or are to change (it has
// more or fewer than its replication factor).
func (p *planner) moving(rec *storepb.NamespaceRecord, v *groupView) bool {
	return len(replicasOf(rec)) != replicationFactor(rec, p.defaultRF) || !settled(rec, v)
}

// started: a move of the namespace is under way, and takes one of the
// round's --max-concurrent-moves: its group has not settled on its row's
// replicas yet, or it has settled with a replica too many, which the
// round drops. A settled namespace with fewer replicas than its replication
// factor (a group formed while a store was silent, a lost replica dropped)
// waits for a move; counted as one, thousands of them would use up every
// round's budget and none would ever be repaired.
func (p *planner) started(rec *storepb.NamespaceRecord, v *groupView) bool {
	return len(replicasOf(rec)) > replicationFactor(rec, p.defaultRF) || !settled(rec, v)
}

// underReplicated: fewer of the namespace's replicas are live than it
// should have.
func (p *planner) underReplicated(rec *storepb.NamespaceRecord) bool {
	live := 0
	for _, id := range replicasOf(rec) {
		if ps := p.stores[id]; ps != nil && !ps.lost() && ps.state != StoreDisconnected {
			live++
		}
	}
	return live < replicationFactor(rec, p.defaultRF)
}

// choose picks up to n stores for a namespace among those that may take a
// replica, leaving out exclude: fewest replicas first; ties are broken by a
// hash of the namespace, so that namespaces created together spread.
func (p *planner) choose(ns string, n int, exclude []uint64) []uint64 {
	var cands []*placeStore
	for _, ps := range p.stores {
		if ps.target() && !slices.Contains(exclude, ps.id) {
			cands = append(cands, ps)
		}
	}
	slices.SortFunc(cands, func(a, b *placeStore) int {
		if c := cmp.Compare(a.replicas, b.replicas); c != 0 {
			return c
		}
		return cmp.Compare(tieBreak(ns, a.id), tieBreak(ns, b.id))
	})
	var out []uint64
	for _, ps := range cands[:min(n, len(cands))] {
		out = append(out, ps.id)
	}
	return out
}

func tieBreak(ns string, id uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(ns))
	var b [8]byte
	for i := range b {
		b[i] = byte(id >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64()
}

// initial picks a new namespace's replicas, the one to lead first (the
// store that leads fewest groups) first.
func (p *planner) initial(ns string, rf int) []uint64 {
	ids := p.choose(ns, rf, nil)
	if len(ids) == 0 {
		return nil
	}
	first := 0
	for i, id := range ids {
		if p.stores[id].leaders < p.stores[ids[first]].leaders {
			first = i
		}
	}
	ids[0], ids[first] = ids[first], ids[0]
	for _, id := range ids {
		p.stores[id].replicas++
	}
	p.stores[ids[0]].leaders++
	return ids
}

// next decides a placed namespace's next replica set. It returns false to
// leave the row as it is.
func (p *planner) next(rec *storepb.NamespaceRecord, v *groupView) ([]uint64, string, bool) {
	cur := replicasOf(rec)
	rf := replicationFactor(rec, p.defaultRF)
	var good, lost []uint64
	for _, id := range cur {
		if ps := p.stores[id]; ps == nil || ps.lost() {
			lost = append(lost, id)
		} else {
			good = append(good, id)
		}
	}
	isSettled := settled(rec, v)

	// A replica on a lost store that never counted (not yet a voter, or
	// still filling) is dropped at once.
	for _, id := range lost {
		if !counts(rec, v, id) && len(cur) > 1 {
			return p.without(cur, id), "drop a replica on a lost store that never counted", true
		}
	}
	if !isSettled {
		return nil, "", false // the group is still moving to its replicas
	}
	switch {
	case len(good) < rf:
		if p.budget <= 0 {
			return nil, "", false
		}
		add := p.choose(rec.GetName(), 1, cur)
		if len(add) == 0 {
			return nil, "", false // nowhere to go: under-replicated
		}
		p.budget--
		p.stores[add[0]].replicas++
		return append(slices.Clone(cur), add[0]), "add a replica", true
	case len(cur) > rf:
		drop := p.worst(cur, lost)
		return p.without(cur, drop), "remove a replica", true
	}
	return nil, "", false
}

// worst is the replica to drop: one on a lost store, else the one on the
// store with the most replicas.
func (p *planner) worst(cur, lost []uint64) uint64 {
	if len(lost) > 0 {
		return lost[0]
	}
	best := cur[0]
	for _, id := range cur[1:] {
		a, b := p.stores[id], p.stores[best]
		if a.replicas > b.replicas || (a.replicas == b.replicas && id > best) {
			best = id
		}
	}
	return best
}

func (p *planner) without(cur []uint64, id uint64) []uint64 {
	out := make([]uint64, 0, len(cur))
	for _, x := range cur {
		if x != id {
			out = append(out, x)
		}
	}
	if ps := p.stores[id]; ps != nil {
		ps.replicas--
	}
	return out
}

// balanceTolerance is how far apart replica counts may be before balance
// moves a replica: one, or 2% of the mean for thousands of namespaces.
func balanceTolerance(mean float64) int {
	return max(1, int(mean/50))
}

// rebalance decides a move from the store with the most replicas to the
// one with the fewest, for a settled namespace with its replication factor
// that is on the first and not on the second.
func (p *planner) rebalance(rec *storepb.NamespaceRecord, v *groupView) ([]uint64, bool) {
	if p.budget <= 0 || !settled(rec, v) {
		return nil, false
	}
	cur := replicasOf(rec)
	if len(cur) != replicationFactor(rec, p.defaultRF) {
		return nil, false
	}
	var lo, hi *placeStore
	total, n := 0, 0
	for _, ps := range p.stores {
		if !ps.target() {
			continue
		}
		total += ps.replicas
		n++
		if lo == nil || ps.replicas < lo.replicas || (ps.replicas == lo.replicas && ps.id < lo.id) {
			lo = ps
		}
	}
	if n == 0 || slices.Contains(cur, lo.id) {
		return nil, false
	}
	for _, id := range cur {
		if ps := p.stores[id]; ps != nil && ps.target() && (hi == nil || ps.replicas > hi.replicas) {
			hi = ps
		}
	}
	if hi == nil || hi.replicas-lo.replicas <= balanceTolerance(float64(total)/float64(n)) {
		return nil, false
	}
	p.budget--
	lo.replicas++
	return append(slices.Clone(cur), lo.id), true
}

// leaderTransfers decides leadership transfers that even out the groups
// each store leads: a store leading more than its share (rounded up) plus
// one hands a group to the group's voter that leads fewest.
func (p *planner) leaderTransfers(views map[uint64]*groupView, limit int) map[uint64][]*pdpb.LeaderTransfer {
	total, n := 0, 0
	for _, ps := range p.stores {
		if ps.target() {
			total += ps.leaders
			n++
		}
	}
	if n == 0 {
		return nil
	}
	share := (total + n - 1) / n
	out := map[uint64][]*pdpb.LeaderTransfer{}
	gids := make([]uint64, 0, len(views))
	for gid := range views {
		gids = append(gids, gid)
	}
	slices.Sort(gids)
	for _, gid := range gids {
		if limit <= 0 {
			break
		}
		v := views[gid]
		from := p.stores[v.leader]
		if !v.reportedByLeader || from == nil || from.leaders <= share+1 || len(v.learners) > 0 {
			continue
		}
		var to *placeStore
		for _, id := range v.voters {
			if ps := p.stores[id]; ps != nil && ps.target() && id != v.leader && (to == nil || ps.leaders < to.leaders) {
				to = ps
			}
		}
		if to == nil || to.leaders+1 >= from.leaders {
			continue
		}
		from.leaders--
		to.leaders++
		limit--
		out[from.id] = append(out[from.id], &pdpb.LeaderTransfer{GroupId: gid, ToStore: to.id})
	}
	return out
}
