// The leader's scheduler: every ScheduleInterval it reads the table and the
// stores' reports, and writes the replica changes placement.go decides
// (repair, removal of stores, balance), the leader transfers it hands to the
// stores in their heartbeat responses, and the end of store removals.

package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// placeState is what the scheduler keeps between rounds: the replica and
// leader counts (so that a namespace created between rounds is placed
// where there is room, without reading the whole table), and the leader
// transfers waiting for their store's next heartbeat.
type placeState struct {
	mu        sync.Mutex
	replicas  map[uint64]int
	leaders   map[uint64]int
	transfers map[uint64][]*pdpb.LeaderTransfer
}

func newPlaceState() *placeState {
	return &placeState{replicas: map[uint64]int{}, leaders: map[uint64]int{}, transfers: map[uint64][]*pdpb.LeaderTransfer{}}
}

// initial picks the replicas of a namespace created now among the given
// up stores, and counts them.
func (ps *placeState) initial(ns string, rf int, up []uint64) []uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := &planner{stores: map[uint64]*placeStore{}}
	for _, id := range up {
		p.stores[id] = &placeStore{id: id, state: StoreUp, replicas: ps.replicas[id], leaders: ps.leaders[id]}
	}
	ids := p.initial(ns, rf)
	for _, id := range ids {
		ps.replicas[id]++
	}
	if len(ids) > 0 {
		ps.leaders[ids[0]]++
	}
	return ids
}

// takeTransfers returns and forgets the transfers for a store.
func (ps *placeState) takeTransfers(store uint64) []*pdpb.LeaderTransfer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	t := ps.transfers[store]
	delete(ps.transfers, store)
	return t
}

// counts returns a store's replica and leader counts as of the last round.
func (ps *placeState) counts(store uint64) (replicas, leaders int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.replicas[store], ps.leaders[store]
}

// maxLeaderTransfers bounds the transfers one round hands out.
const maxLeaderTransfers = 16

// scheduleOnce runs one round of the scheduler under term l.
func (s *Server) scheduleOnce(l *leadership) {
	ctx, cancel := context.WithTimeout(l.ctx, requestTimeout)
	defer cancel()
	recs, _, err := l.table.records(ctx)
	if err != nil {
		if l.ctx.Err() == nil {
			s.lg.Warn("schedule: read namespaces", zap.Error(err))
		}
		return
	}
	now := time.Now()
	stores := s.stores.states(now)
	views := s.stores.groupViews(now)
	p := newPlanner(stores, recs, views, s.cfg.ReplicationFactor, s.cfg.MaxConcurrentMoves)
	s.publishCounts(p, views)

	// Repair and removal first, then balance with what budget is left.
	var settledRecs []*storepb.NamespaceRecord
	for _, rec := range recs {
		if !placed(rec) && rec.GetMode() == ModeEventual && !s.switching(rec, now) {
			// On every store since before any store was up: place it.
			// The stores left out hand their records to a replica first.
			if ids := p.choose(rec.GetName(), replicationFactor(rec, p.defaultRF), nil); len(ids) > 0 && p.budget > 0 {
				p.budget--
				for _, id := range ids {
					p.stores[id].replicas++
				}
				s.writeReplicas(ctx, l, rec, ids, "place")
			}
			continue
		}
		if !placed(rec) || s.switching(rec, now) {
			continue
		}
		if done := s.stores.filled(rec); len(done) > 0 {
			s.writeFilled(ctx, l, rec, done)
			continue
		}
		v := views[rec.GetGroupId()]
		if next, why, ok := p.next(rec, v); ok {
			s.writeReplicas(ctx, l, rec, next, why)
			continue
		}
		if settled(rec, v) {
			settledRecs = append(settledRecs, rec)
		}
	}
	for _, rec := range settledRecs {
		if next, ok := p.rebalance(rec, views[rec.GetGroupId()]); ok {
			s.writeReplicas(ctx, l, rec, next, "balance")
		}
	}
	transfers := p.leaderTransfers(views, maxLeaderTransfers)
	s.place.mu.Lock()
	s.place.transfers = transfers
	s.place.mu.Unlock()

	s.finishRemovals(ctx, l, recs, stores)
}

// writeFilled takes replicas that have filled off a row's filling list.
func (s *Server) writeFilled(ctx context.Context, l *leadership, rec *storepb.NamespaceRecord, done []uint64) {
	_, wrote, err := s.updateNamespace(ctx, l, rec.GetName(), func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		if cur == nil || cur.GetVersion() != rec.GetVersion() {
			return nil, ErrNoChange
		}
		cur.Filling = slices.DeleteFunc(slices.Clone(cur.GetFilling()), func(id uint64) bool { return slices.Contains(done, id) })
		return cur, nil
	})
	switch {
	case err != nil:
		if l.ctx.Err() == nil {
			s.lg.Warn("schedule: write filled replicas", zap.String("namespace", rec.GetName()), zap.Error(err))
		}
	case wrote:
		s.lg.Info("replicas filled", zap.String("namespace", rec.GetName()), zap.Uint64s("stores", done))
	}
}

// switching: the namespace's mode is being switched somewhere; moves wait
// for the switch to finish.
func (s *Server) switching(rec *storepb.NamespaceRecord, now time.Time) bool {
	return s.stores.rollout(rec, now).GetState() == StateSwitching
}

// publishCounts keeps the round's counts for namespaces created before the
// next one.
func (s *Server) publishCounts(p *planner, views map[uint64]*groupView) {
	s.place.mu.Lock()
	defer s.place.mu.Unlock()
	clear(s.place.replicas)
	clear(s.place.leaders)
	for id, ps := range p.stores {
		s.place.replicas[id] = ps.replicas
		s.place.leaders[id] = ps.leaders
	}
}

// writeReplicas writes a namespace's next replicas, only if its row has not
// changed since the round read it.
func (s *Server) writeReplicas(ctx context.Context, l *leadership, rec *storepb.NamespaceRecord, next []uint64, why string) {
	_, wrote, err := s.updateNamespace(ctx, l, rec.GetName(), func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		if cur == nil || cur.GetVersion() != rec.GetVersion() {
			return nil, ErrNoChange // changed meanwhile: the next round decides again
		}
		cur.Replicas, cur.Filling = next, nextFilling(cur, next)
		return cur, nil
	})
	switch {
	case err != nil:
		if l.ctx.Err() == nil {
			s.lg.Warn("schedule: write replicas", zap.String("namespace", rec.GetName()), zap.Error(err))
		}
	case wrote:
		s.lg.Info("replicas changed", zap.String("namespace", rec.GetName()), zap.String("why", why),
			zap.Uint64s("from", replicasOf(rec)), zap.Uint64s("to", next))
	}
}

// finishRemovals marks removed every removing store that no namespace
// lists and that holds no group any more (or is not up to say so).
func (s *Server) finishRemovals(ctx context.Context, l *leadership, recs []*storepb.NamespaceRecord, stores []*pdpb.StoreStatus) {
	for _, st := range stores {
		if st.GetState() != StoreRemoving {
			continue
		}
		if st.GetUp() && s.stores.holding(st.GetId()) {
			continue // it still holds replicas, or records to hand over
		}
		listed := slices.ContainsFunc(recs, func(rec *storepb.NamespaceRecord) bool {
			return placed(rec) && slices.Contains(replicasOf(rec), st.GetId())
		})
		if listed {
			continue
		}
		info, ok := s.stores.info(st.GetId())
		if !ok {
			continue
		}
		next := &storepb.StoreInfo{Id: info.GetId(), Addr: info.GetAddr(), State: StoreRemoved}
		if err := s.writeStore(ctx, l, next); err != nil {
			if l.ctx.Err() == nil {
				s.lg.Warn("schedule: mark store removed", zap.Uint64("store", st.GetId()), zap.Error(err))
			}
			continue
		}
		s.lg.Info("store removed", zap.Uint64("store", st.GetId()))
	}
}
