package store

// Eventual placement (PD mode). An eventual namespace lives on the stores
// its row lists. A store PD adds to them is listed in the row's filling
// too: it takes new writes from the others at once, but serves nothing
// itself (it forwards) until it has filled its replica by a full
// anti-entropy exchange with a replica that is complete; it then says so
// in its heartbeats (and persists it, m/filled/<ns>), and PD takes it off
// the filling list, after which it counts. A store that the row no longer
// lists forwards the namespace's calls; before it drops its records it
// hands them to a complete replica the same way, so that writes only it
// had taken are not lost, and until then it reports them as releasing.

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
	"github.com/rdb-project/rdb/store/namespace"
)

// eventualPlacementInterval is how often a store fills its new replicas
// and releases the ones it no longer holds.
const eventualPlacementInterval = 500 * time.Millisecond

// complete lists the replicas of rec that are not filling: the stores a
// call on it may be sent to.
func complete(rec *storepb.NamespaceRecord) []uint64 {
	var out []uint64
	for _, id := range rec.GetReplicas() {
		if !slices.Contains(rec.GetFilling(), id) {
			out = append(out, id)
		}
	}
	return out
}

// filling: this store is a new replica of rec that has not filled yet.
func (s *Store) filling(rec *storepb.NamespaceRecord) bool {
	return namespace.ModeOf(rec) == namespace.Eventual && slices.Contains(rec.GetFilling(), s.cfg.StoreID) && !s.filled(rec.GetName())
}

// ready: this store serves rec's calls itself.
func (s *Store) ready(rec *storepb.NamespaceRecord) bool { return s.holds(rec) && !s.filling(rec) }

func (s *Store) filled(ns string) bool {
	_, ok, err := kvread.Get(s.db, keys.Filled(ns))
	return ok && err == nil
}

// placeWork is what the eventual placement loop has to do: the namespaces
// this store fills, and those it may still have records of without holding
// them. They are noted as rows change (and for every row at start), so that
// a round costs what there is to do, not a pass over every namespace.
type placeWork struct {
	mu            sync.Mutex
	fill, release map[string]bool
}

// notePlacement notes the eventual placement work a row brings.
func (s *Store) notePlacement(rec *storepb.NamespaceRecord) {
	if s.pd == nil || namespace.ModeOf(rec) != namespace.Eventual {
		return
	}
	fill, release := s.filling(rec), !s.holds(rec)
	if !fill && !release {
		return
	}
	s.work.mu.Lock()
	defer s.work.mu.Unlock()
	if s.work.fill == nil {
		s.work.fill, s.work.release = map[string]bool{}, map[string]bool{}
	}
	if fill {
		s.work.fill[rec.GetName()] = true
	}
	if release {
		s.work.release[rec.GetName()] = true
	}
}

// mayRelease: ns was noted as a namespace this store may have records of
// without holding it.
func (s *Store) mayRelease(ns string) bool {
	s.work.mu.Lock()
	defer s.work.mu.Unlock()
	return s.work.release[ns]
}

func (s *Store) eventualPlacementLoop(ctx context.Context) {
	t := time.NewTicker(eventualPlacementInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.work.mu.Lock()
		fill, release := slices.Collect(maps.Keys(s.work.fill)), slices.Collect(maps.Keys(s.work.release))
		s.work.mu.Unlock()
		for _, ns := range fill {
			if rec, ok := s.table.Get(ns); ok && s.filling(rec) {
				s.fill(ctx, rec)
			}
			if rec, ok := s.table.Get(ns); !ok || !s.filling(rec) {
				s.work.mu.Lock()
				delete(s.work.fill, ns)
				s.work.mu.Unlock()
			}
		}
		for _, ns := range release {
			if rec, ok := s.table.Get(ns); ok && !s.holds(rec) && namespace.ModeOf(rec) == namespace.Eventual {
				s.releaseReplica(ctx, rec)
			}
			if rec, ok := s.table.Get(ns); !ok || !s.releasing(rec) {
				s.work.mu.Lock()
				delete(s.work.release, ns)
				s.work.mu.Unlock()
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// fill fills this store's new replica of rec from a complete one.
func (s *Store) fill(ctx context.Context, rec *storepb.NamespaceRecord) {
	ns := rec.GetName()
	if !s.lwwServing(ns) {
		return // the group's fence (a namespace that was strong) first
	}
	for _, id := range complete(rec) {
		if id == s.cfg.StoreID {
			continue
		}
		if err := s.lww.Sync(ctx, id, ns); err != nil {
			s.log.Debug("fill a replica", zap.String("namespace", ns), zap.Uint64("from", id), zap.Error(err))
			continue
		}
		if err := s.db.Set(keys.Filled(ns), nil, pebble.Sync); err != nil {
			s.fatal(err)
			return
		}
		s.log.Info("replica filled", zap.String("namespace", ns), zap.Uint64("from", id))
		s.changes.noteName(ns)
		s.notifyStateChange()
		return
	}
}

// releaseReplica hands this store's records of rec, which it no longer holds, to
// a complete replica, then drops them.
func (s *Store) releaseReplica(ctx context.Context, rec *storepb.NamespaceRecord) {
	ns := rec.GetName()
	has, err := s.lww.HasRecords(ns)
	if err != nil {
		s.fatal(err)
		return
	}
	if !has {
		s.forgetFilled(ns)
		return
	}
	for _, id := range complete(rec) {
		if id == s.cfg.StoreID {
			continue
		}
		if err := s.lww.Handover(ctx, id, ns); err != nil {
			s.log.Debug("hand records over", zap.String("namespace", ns), zap.Uint64("to", id), zap.Error(err))
			continue
		}
		// Added back meanwhile: keep what it has (it fills again).
		if cur, ok := s.table.Get(ns); !ok || s.holds(cur) {
			return
		}
		if err := s.lww.Drop(ns); err != nil {
			s.fatal(err)
			return
		}
		s.forgetFilled(ns)
		s.log.Info("replica released", zap.String("namespace", ns), zap.Uint64("to", id))
		s.changes.noteName(ns)
		s.notifyStateChange()
		return
	}
}

func (s *Store) forgetFilled(ns string) {
	if !s.filled(ns) {
		return
	}
	if err := s.db.Delete(keys.Filled(ns), pebble.Sync); err != nil {
		s.fatal(err)
	}
	s.changes.noteName(ns)
}

// releasing: this store still has records of a namespace it no longer
// holds.
func (s *Store) releasing(rec *storepb.NamespaceRecord) bool {
	if s.holds(rec) || namespace.ModeOf(rec) != namespace.Eventual || !s.mayRelease(rec.GetName()) {
		return false
	}
	has, err := s.lww.HasRecords(rec.GetName())
	return err == nil && has
}
