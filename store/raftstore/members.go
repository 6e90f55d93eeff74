package raftstore

// Membership changes. The store that leads a group moves its membership,
// one change at a time, toward the voters Config.DesiredVoters names (in PD
// mode, the namespace's replicas as PD placed them):
//
//  1. a wanted store that is not a member is added as a learner; raft
//     sends it a snapshot and then the log;
//  2. a learner that is wanted is promoted to voter once it holds every
//     entry the leader has committed;
//  3. a learner that is not wanted is removed;
//  4. a voter that is not wanted is removed, but only once every wanted
//     store is a voter: the group never has fewer voters than it wants.
//     A leader that is not wanted hands its leadership to a wanted voter
//     first; the new leader removes it.
//
// A removed replica is destroyed by its owner, who asks the group
// (DestroyIfIdle), never on the replica's own word. Store ids are Raft ids:
// a store removed and later added back is the same member, and a replica
// that was cut off may receive, in one append, its removal and its return
// as a learner after it; if it destroyed itself on applying the removal,
// the leader would keep counting the entries it acknowledged, and the
// empty replica that comes back would refuse every heartbeat (its commit
// beyond an empty log) and have its probes ignored as stale: a learner
// stuck for good. A replica that applies its own removal only tells its
// owner (Config.OnRemoved), who asks at once.

import (
	"errors"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/store/keys"
)

// reconcileInterval is how often a leader looks at its group's membership.
const reconcileInterval = 200 * time.Millisecond

// promoteLag is how far behind the leader's log a learner may be when it
// is promoted (etcd promotes a learner within 10% of the leader).
const promoteLag = 256

// ErrGroupRemoved is returned to calls waiting on a replica that was
// destroyed because its store is no longer a member.
var ErrGroupRemoved = errors.New("raftstore: this store's replica of the group was removed")

// reconcileMembers makes a leader take the next step toward the wanted
// membership.
func (rs *RaftStore) reconcileMembers(g *group, now time.Time) {
	if rs.cfg.DesiredVoters == nil || !g.isLeader() || now.Before(g.nextReconcile) {
		return
	}
	g.nextReconcile = now.Add(reconcileInterval)
	want := rs.cfg.DesiredVoters(g.id)
	if len(want) == 0 {
		return // nothing known yet: leave the group as it is
	}
	voters, learners := g.applied.conf.GetVoters(), g.applied.conf.GetLearners()
	if len(learners) == 0 && len(voters) == len(want) && containsAll(voters, want) {
		return // settled: the common case, and cheap
	}
	propose := func(t eraftpb.ConfChangeType, id uint64, what string) {
		rs.log.Info(what, zap.Uint64("group", g.id), zap.Uint64("store", id))
		cc := &eraftpb.ConfChange{Type: t.Enum(), NodeId: new(id)}
		// Raft refuses a change while another is pending; trying again
		// next time is cheap.
		if err := g.rn.ProposeConfChange(cc); err != nil {
			rs.log.Debug("propose membership change", zap.Uint64("group", g.id), zap.Error(err))
		}
	}
	// 1. Add what is missing, as learners (static mode: as voters).
	for _, id := range want {
		if !slices.Contains(voters, id) && !slices.Contains(learners, id) {
			if !rs.cfg.LearnersFirst {
				propose(eraftpb.ConfChangeAddNode, id, "adding voter")
				return
			}
			propose(eraftpb.ConfChangeAddLearnerNode, id, "adding learner")
			return
		}
	}
	st := g.rn.Status()
	// 2. Promote learners that have caught up.
	for _, id := range learners {
		if !slices.Contains(want, id) {
			continue
		}
		// Caught up: raft replicates to it entry by entry (the snapshot is
		// behind it) and it is within promoteLag entries of the leader's
		// log. Demanding the commit index exactly would never be met under
		// a steady load, as voters ack first.
		if pr, ok := st.Progress[id]; ok && pr.State == tracker.StateReplicate && pr.Match+promoteLag >= g.lastIndex {
			propose(eraftpb.ConfChangeAddNode, id, "promoting learner")
			return
		}
	}
	// 3. Remove learners nobody wants.
	for _, id := range learners {
		if !slices.Contains(want, id) {
			propose(eraftpb.ConfChangeRemoveNode, id, "removing learner")
			return
		}
	}
	// 4. Remove unwanted voters once every wanted store votes.
	if !containsAll(voters, want) {
		return
	}
	for _, id := range voters {
		if slices.Contains(want, id) {
			continue
		}
		if id != rs.cfg.StoreID {
			propose(eraftpb.ConfChangeRemoveNode, id, "removing voter")
			return
		}
		// Hand leadership to the wanted voter furthest along.
		var to, match uint64
		for _, w := range want {
			if pr, ok := st.Progress[w]; ok && w != rs.cfg.StoreID && (to == 0 || pr.Match > match) {
				to, match = w, pr.Match
			}
		}
		if to != 0 {
			rs.log.Info("leaving the group: transferring leadership", zap.Uint64("group", g.id), zap.Uint64("to", to))
			g.rn.TransferLeader(to)
		}
		return
	}
}

func containsAll(set, sub []uint64) bool {
	for _, id := range sub {
		if !slices.Contains(set, id) {
			return false
		}
	}
	return true
}

// TransferLeader asks this store's replica of group, if it leads, to hand
// leadership to store to (a voter).
func (rs *RaftStore) TransferLeader(group, to uint64) {
	rs.post(func() {
		g := rs.groups[group]
		if g == nil || !g.isLeader() || to == rs.cfg.StoreID || !slices.Contains(g.applied.conf.GetVoters(), to) {
			return
		}
		rs.log.Info("transferring leadership", zap.Uint64("group", group), zap.Uint64("to", to))
		rs.wake(g)
		g.rn.TransferLeader(to)
	})
}

// Groups lists the groups this store has a replica of.
func (rs *RaftStore) Groups() []uint64 {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	out := make([]uint64, 0, len(rs.groups))
	for id := range rs.groups {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Received counts the messages this store's replica of group has taken
// from other stores.
func (rs *RaftStore) Received(group uint64) (uint64, bool) {
	rs.mu.RLock()
	g := rs.groups[group]
	rs.mu.RUnlock()
	if g == nil {
		return 0, false
	}
	return g.received.Load(), true
}

// DestroyIfIdle destroys this store's replica of group if it has taken no
// message since Received returned seen. Its owner calls it once the group
// itself (a linearizable read on a member) says this store is no longer a
// member: a replica that hears from the group again may have been added
// back, and is kept. It reports whether the replica was destroyed.
func (rs *RaftStore) DestroyIfIdle(group, seen uint64) (bool, error) {
	done := make(chan struct{})
	var destroyed bool
	var err error
	rs.post(func() {
		defer close(done)
		g := rs.groups[group]
		if g == nil || g.received.Load() != seen {
			return
		}
		err = rs.destroy(g, "the group no longer has this store")
		destroyed = err == nil
		if err != nil {
			// A write that failed: the store stops, as for any other.
			rs.log.Error("raft loop stops: destroying a replica failed", zap.Error(err))
			rs.cfg.OnFatal(err)
		}
	})
	select {
	case <-done:
		return destroyed, err
	case <-rs.donec:
		return false, ErrStopped
	}
}

// destroy deletes a replica: its Raft state and log and its state machine,
// in one synced batch, then forgets it. Loop only.
func (rs *RaftStore) destroy(g *group, why string) error {
	b := rs.db.NewBatch()
	defer b.Close()
	for _, p := range [][]byte{keys.RaftPrefix(g.id), keys.StatePrefix(g.id)} {
		if err := b.DeleteRange(p, keys.PrefixEnd(p), nil); err != nil {
			return err
		}
	}
	if err := b.Set(keys.Tombstone(g.id), nil, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	rs.mu.Lock()
	delete(rs.groups, g.id)
	rs.mu.Unlock()
	rs.sleep(g)
	rs.stats.groups.Add(^uint64(0))
	rs.dirty = slices.DeleteFunc(rs.dirty, func(x *group) bool { return x == g })
	rs.undurable = slices.DeleteFunc(rs.undurable, func(x *group) bool { return x == g })
	rs.moved = slices.DeleteFunc(rs.moved, func(x *group) bool { return x == g })
	g.failReads(ErrGroupRemoved)
	rs.log.Info("replica destroyed", zap.Uint64("group", g.id), zap.String("why", why))
	if rs.cfg.OnGroupDestroyed != nil {
		rs.cfg.OnGroupDestroyed(g.id)
	}
	if rs.cfg.OnStatusChange != nil {
		rs.cfg.OnStatusChange(g.id)
	}
	return nil
}
