package lww

import (
	"bytes"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

// Tombstone collection: a tombstone whose wall time is older than
// TombstoneGrace (by this store's physical clock) is removed, and its
// hash leaves the digest. Stores collect at slightly different times; in
// between, their digests differ and anti-entropy sends the old tombstone,
// which the receiver ignores (Merge ignores tombstones older than the
// grace), so a collected tombstone is never brought back.
//
// The removal is not synced: a crash may bring a collected tombstone
// back, and the next collection removes it again. Digests are rebuilt
// from the DB at start-up, so they match whatever survived.

// maintainLoop refreshes the peer set and collects tombstones.
func (e *Engine) maintainLoop() {
	defer e.wg.Done()
	refresh := time.NewTicker(min(e.cfg.AntiEntropyInterval, time.Second))
	defer refresh.Stop()
	gc := time.NewTicker(e.cfg.GCInterval)
	defer gc.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-refresh.C:
			e.refreshPeers()
		case <-gc.C:
			e.collectTombstones()
		}
	}
}

// collectTombstones runs one collection over every namespace served.
func (e *Engine) collectTombstones() {
	if e.enter() != nil {
		return
	}
	defer e.opMu.RUnlock()
	for _, ns := range e.namespaces() {
		n, err := e.collectNamespace(ns)
		if err != nil {
			e.log.Error("lww: tombstone collection failed", zap.String("ns", ns), zap.Error(err))
			continue
		}
		if n > 0 {
			e.log.Debug("lww: tombstones collected", zap.String("ns", ns), zap.Int("tombstones", n))
		}
	}
}

// collectNamespace removes the tombstones of ns older than the grace.
func (e *Engine) collectNamespace(ns string) (int, error) {
	cutoff := e.clock.PhysicalNow() - int64(e.cfg.TombstoneGrace)
	prefix := keys.LWWPrefix(ns)
	var old []*storepb.LWWRecord
	total := 0
	err := e.iterate(nsBounds(ns), func(key []byte, r record) error {
		if !r.tombstone || r.ts.Wall >= cutoff {
			return nil
		}
		old = append(old, &storepb.LWWRecord{Key: bytes.Clone(key[len(prefix):]), Ts: r.ts.ToProto(), Tombstone: true})
		if len(old) < applyChunk {
			return nil
		}
		n, err := e.removeTombstones(ns, old)
		total += n
		old = old[:0]
		return err
	})
	if err != nil {
		return total, err
	}
	n, err := e.removeTombstones(ns, old)
	return total + n, err
}

// removeTombstones removes each of tombs whose key still holds exactly
// that tombstone (a newer write since the scan keeps it).
func (e *Engine) removeTombstones(ns string, tombs []*storepb.LWWRecord) (int, error) {
	if len(tombs) == 0 {
		return 0, nil
	}
	st := e.state(ns)
	st.mu.RLock()
	defer st.mu.RUnlock()
	unlock := e.lockStripes(ns, tombs)
	defer unlock()
	b := e.db.NewBatch()
	defer b.Close()
	type removal struct {
		key []byte
		old *record
	}
	var removed []removal
	for _, t := range tombs {
		lk := keys.LWWKey(ns, t.Key)
		cur, err := e.currentRecord(ns, t.Key, lk)
		if err != nil {
			return 0, err
		}
		if cur == nil || !cur.tombstone || hlc.Compare(cur.ts, hlc.FromProto(t.Ts)) != 0 {
			continue
		}
		if err := b.Delete(lk, nil); err != nil {
			return 0, err
		}
		removed = append(removed, removal{key: t.Key, old: cur})
	}
	if len(removed) == 0 {
		return 0, nil
	}
	if err := b.Commit(writeOptions(false)); err != nil {
		return 0, fmt.Errorf("lww: remove %d tombstones of %q: %w", len(removed), ns, err)
	}
	for _, r := range removed {
		st.change(r.key, r.old, nil)
		e.cache.remove(ns, r.key)
	}
	e.st.collected.Add(uint64(len(removed)))
	return len(removed), nil
}
