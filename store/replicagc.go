package store

// Replica collection (PD mode). A store removed from a group destroys its
// replica here, never on the replica's own word (raftstore/members.go says
// why): for each group it holds whose namespace no longer lists it, whose
// replica here is awake and knows no leader, or refused a message from a
// store its configuration does not name, it asks another store the row lists
// for the group's membership, read linearizably; if this store is not in
// it, and the replica has heard nothing from the group since it asked, the
// replica is destroyed. A replica that applies its own removal wakes the
// collection at once; one that never learns of it (the removal was
// committed without it: it was down, or cut off) is found by the periodic
// pass. The second case is a store
// that was down while the group replaced it and that PD lists again: its
// old replica's configuration may name none of the current members, whose
// messages it would then refuse for good; destroyed, it comes back empty
// and catches up from the leader when the leader adds it again.

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
)

// replicaGCInterval is how often a store looks for replicas it no longer
// holds.
const replicaGCInterval = 2 * time.Second

func (s *Store) replicaGCLoop(ctx context.Context) {
	t := time.NewTicker(replicaGCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.collectNow:
		}
		for _, gid := range s.collectCandidates(ctx) {
			if ctx.Err() != nil {
				return
			}
			s.collectReplica(ctx, gid)
		}
	}
}

// collectCandidates lists the replicas collection looks at: those whose
// row does not list this store, those awake (one that knows no leader),
// and those that refused a member's message. The 100,000 sleeping
// replicas a row lists are none of them, and a pass does not visit them.
func (s *Store) collectCandidates(ctx context.Context) []uint64 {
	awake, err := s.raft.AwakeGroups(ctx)
	if err != nil {
		return nil
	}
	s.suspectMu.Lock()
	out := awake
	for gid := range s.suspects {
		out = append(out, gid)
	}
	for gid := range s.unheld {
		if !s.raft.HasGroup(gid) {
			delete(s.unheld, gid) // collected, or never created here
			continue
		}
		if ns, ok := s.table.NamespaceOfGroup(gid); ok {
			if rec, ok := s.table.Get(ns); ok && s.holds(rec) {
				delete(s.unheld, gid) // listed again
				continue
			}
		}
		out = append(out, gid)
	}
	s.suspectMu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}

// removedHere is raftstore's OnRemoved: it runs on the raft loop.
func (s *Store) removedHere(uint64) {
	select {
	case s.collectNow <- struct{}{}:
	default:
	}
}

// refusedMember is raftstore's OnRefusedMember: it runs on the raft loop.
func (s *Store) refusedMember(group uint64) {
	s.suspectMu.Lock()
	if s.suspects == nil {
		s.suspects = make(map[uint64]struct{})
	}
	s.suspects[group] = struct{}{}
	s.suspectMu.Unlock()
	s.removedHere(group)
}

// suspect reports, and forgets, whether group's replica here refused a
// message from a store it does not count as a member.
func (s *Store) suspect(group uint64) bool {
	s.suspectMu.Lock()
	defer s.suspectMu.Unlock()
	_, ok := s.suspects[group]
	delete(s.suspects, group)
	return ok
}

// collectReplica destroys this store's replica of group gid if the group
// says this store is no longer a member.
func (s *Store) collectReplica(ctx context.Context, gid uint64) {
	ns, ok := s.table.NamespaceOfGroup(gid)
	if !ok {
		return
	}
	rec, ok := s.table.Get(ns)
	if !ok || len(rec.GetReplicas()) == 0 {
		return
	}
	st, ok := s.raft.Status(gid)
	if !ok {
		return
	}
	// A replica the row no longer lists, or one that knows no leader: a
	// replica left behind while it was down, whose stale configuration
	// names none of the group's members any more (it would refuse their
	// messages for good), may be either.
	// A sleeping replica knows no leader when it has not been used since
	// start-up: only a refused message makes it worth a call.
	if s.holds(rec) && (st.Leader != 0 || st.Asleep) && !s.suspect(gid) {
		return
	}
	seen, ok := s.raft.Received(gid)
	if !ok {
		return
	}
	for _, id := range rec.GetReplicas() {
		if id == s.cfg.StoreID {
			continue
		}
		c, err := s.tr.Client(id)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := c.GroupStatus(cctx, &storepb.GroupStatusRequest{GroupId: gid})
		cancel()
		if err != nil {
			continue
		}
		if len(resp.GetVoters()) == 0 || slices.Contains(resp.GetVoters(), s.cfg.StoreID) || slices.Contains(resp.GetLearners(), s.cfg.StoreID) {
			return // still a member: the leader removes it in time
		}
		if _, err := s.raft.DestroyIfIdle(gid, seen); err != nil {
			s.log.Warn("destroy a replica no longer wanted", zap.Uint64("group", gid), zap.Error(err))
		}
		return
	}
}
