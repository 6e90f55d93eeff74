package store

// Replica collection (PD mode). A store removed from a group destroys its
// replica when it applies its own removal (raftstore). One that never
// learns of it (the removal was committed without it: it was down, or cut
// off) finds out here: for each group it holds whose namespace no longer
// lists it, it asks a store the row lists for the group's membership, read
// linearizably; if this store is not in it, and the replica has heard
// nothing from the group since it asked, the replica is destroyed.

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
		}
		for _, gid := range s.raft.Groups() {
			if ctx.Err() != nil {
				return
			}
			s.collectReplica(ctx, gid)
		}
	}
}

// collectReplica destroys this store's replica of group gid if the group
// says this store is no longer a member.
func (s *Store) collectReplica(ctx context.Context, gid uint64) {
	ns, ok := s.table.NamespaceOfGroup(gid)
	if !ok {
		return
	}
	rec, ok := s.table.Get(ns)
	if !ok || s.holds(rec) {
		return
	}
	seen, ok := s.raft.Received(gid)
	if !ok {
		return
	}
	for _, id := range rec.GetReplicas() {
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
