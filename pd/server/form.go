// Group formation: the PD leader gives each strong namespace's Raft group
// its voters once stores are there to hold it.

package server

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
)

// A strong namespace's group is formed when its row has a group id and a
// non-empty group_peers; the stores create their replicas from that row, and
// a group whose voters are none never gets a leader. A namespace may become
// strong before any store is up (pdctl right after pd-server starts, or a
// store's seed loop creating "default" before any store has registered): its
// row then gets its group id and no voters, and the leader's formation loop
// below gives it its voters later. Who the voters are, and when they may be
// chosen, is storeTracker.formationPeers; only the leader chooses, since only
// it knows which stores are up.

// formInterval is how often the formation loop looks for groups to form.
const formInterval = 250 * time.Millisecond

// runFormation forms pending groups until term l ends.
func (s *Server) runFormation(l *leadership) {
	s.formHint.Store(true) // a former leader may have left groups pending
	tick := time.NewTicker(formInterval)
	defer tick.Stop()
	var nextSchedule time.Time
	for {
		if now := time.Now(); !now.Before(nextSchedule) {
			s.scheduleOnce(l)
			// A round looks at every namespace: with many, rounds are
			// spaced so that they take at most a tenth of a core.
			nextSchedule = time.Now().Add(max(s.cfg.ScheduleInterval, 10*time.Since(now)))
		}
		// Reading the table is only worth it when a group may be formed.
		if _, ok := s.stores.formationPeers(time.Now(), s.cfg.FormSettle); ok {
			s.formPending(l)
		}
		select {
		case <-l.ctx.Done():
			return
		case <-tick.C:
		case <-s.stores.arrivals():
			// With no settle to wait for, the first store to register
			// forms the pending groups at once.
		}
	}
}

// formPending gives every pending group its voters. It reads the table
// only when a group may be pending (formHint), and sets the hint again for
// the next round if one still is.
func (s *Server) formPending(l *leadership) {
	if !s.formHint.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, requestTimeout)
	defer cancel()
	recs, _, err := l.table.records(ctx)
	if err != nil {
		s.formHint.Store(true)
		if l.ctx.Err() == nil {
			s.lg.Warn("group formation: read namespaces", zap.Error(err))
		}
		return
	}
	for _, rec := range recs {
		if !pendingGroup(rec) {
			continue
		}
		after, _, err := s.updateNamespace(ctx, l, rec.GetName(), s.formGroup)
		if err != nil {
			s.formHint.Store(true)
			if l.ctx.Err() != nil {
				return // the term ended: the next leader forms it
			}
			s.lg.Warn("group formation failed; retrying", zap.String("namespace", rec.GetName()), zap.Error(err))
			continue
		}
		if pendingGroup(after) {
			s.formHint.Store(true) // not formable yet (a store arrived): next round
		}
	}
}

// formGroup is the UpdateFunc of formation: it sets group_peers and nothing
// else, and only while they are still empty, so that it never undoes what
// another writer did since the table was read.
func (s *Server) formGroup(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
	if !pendingGroup(cur) {
		return nil, ErrNoChange
	}
	if !s.placeGroup(cur) {
		return nil, ErrNoChange // a store arrived meanwhile: settle again
	}
	return cur, nil
}

// placeGroup gives a strong record without voters its replicas and its
// group's first voters, if the formation rule allows it now: the
// replication factor's worth of up stores that hold fewest replicas, the
// one that leads fewest groups first (it campaigns at once).
func (s *Server) placeGroup(rec *storepb.NamespaceRecord) bool {
	if len(rec.GetReplicas()) > 0 {
		// Placed while eventual: its group forms on its replicas, where
		// its records are.
		rec.GroupPeers, rec.Filling = slices.Clone(rec.GetReplicas()), nil
		return true
	}
	up, ok := s.stores.formationPeers(time.Now(), s.cfg.FormSettle)
	if !ok {
		return false
	}
	ids := s.place.initial(rec.GetName(), replicationFactor(rec, s.cfg.ReplicationFactor), up)
	if len(ids) == 0 {
		return false
	}
	rec.GroupPeers, rec.Replicas = ids, slices.Clone(ids)
	return true
}

// pendingGroup tells whether rec is strong with a group that has no voters.
func pendingGroup(rec *storepb.NamespaceRecord) bool {
	return rec != nil && rec.GetMode() == ModeStrong && rec.GetGroupId() != 0 && len(rec.GetGroupPeers()) == 0
}
