package lww

// Batch writes and reads: many keys of one namespace as one write. A batch
// is stamped with one range of consecutive timestamps, committed in one
// synced pebble batch (all of it or none), and pushed to every peer as one
// unit that the peer applies in one batch too (NamespaceRecords.unit).
//
// A peer that misses the push (down, cut off, or its queue full) is
// repaired by anti-entropy, which exchanges records bucket by bucket:
// during such a repair it may hold part of a batch, and once the repair
// ends it holds all of it.

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

// PutBatch writes every kv of kvs in ns as one write and returns the
// timestamps of the first and the last: the i-th kv is stamped with the
// first's logical part plus i. A key given twice keeps its last value (its
// timestamp is the greater). The batch is synced before PutBatch returns,
// then queued to be pushed to every peer as one unit. An empty batch
// writes nothing and returns zero timestamps. A key that already holds a
// newer record keeps it, as with Put.
func (e *Engine) PutBatch(ctx context.Context, ns string, kvs []KV) (first, last hlc.Timestamp, err error) {
	recs := make([]*storepb.LWWRecord, len(kvs))
	for i, kv := range kvs {
		if err := validValue(kv.Value); err != nil {
			return hlc.Timestamp{}, hlc.Timestamp{}, fmt.Errorf("entry %d: %w", i, err)
		}
		recs[i] = &storepb.LWWRecord{Key: kv.Key, Value: kv.Value}
	}
	return e.writeBatch(ctx, ns, recs)
}

// DeleteBatch writes a tombstone at every key in ns as one write, like
// PutBatch.
func (e *Engine) DeleteBatch(ctx context.Context, ns string, keyList [][]byte) (first, last hlc.Timestamp, err error) {
	recs := make([]*storepb.LWWRecord, len(keyList))
	for i, k := range keyList {
		recs[i] = &storepb.LWWRecord{Key: k, Tombstone: true}
	}
	return e.writeBatch(ctx, ns, recs)
}

// writeBatch stamps recs (keys and values set) and writes them as one
// write.
func (e *Engine) writeBatch(ctx context.Context, ns string, recs []*storepb.LWWRecord) (first, last hlc.Timestamp, err error) {
	if err := ctx.Err(); err != nil {
		return first, last, err
	}
	if err := validNamespace(ns); err != nil {
		return first, last, err
	}
	if len(recs) > api.MaxBatchKeys {
		return first, last, fmt.Errorf("%w: a batch of %d keys, above %d", ErrInvalid, len(recs), api.MaxBatchKeys)
	}
	for i, r := range recs {
		if err := validKey(r.Key); err != nil {
			return first, last, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	if len(recs) == 0 {
		return first, last, nil
	}
	if err := e.enter(); err != nil {
		return first, last, err
	}
	defer e.opMu.RUnlock()
	st := e.state(ns)
	st.mu.RLock()
	defer st.mu.RUnlock()

	// The range is taken under the keys' locks, so two writes to one key
	// commit in the order of their timestamps (as writeLocal).
	unlock := e.lockStripes(ns, recs)
	defer unlock()
	if err := ctx.Err(); err != nil {
		return first, last, err // nothing written
	}
	first, err = e.clock.NowRange(uint32(len(recs)))
	if err != nil {
		return first, last, err
	}
	for i, r := range recs {
		ts := first
		ts.Logical += uint32(i)
		r.Ts = ts.ToProto()
		last = ts
	}
	uniq := newestPerKey(recs)
	b := e.db.NewBatch()
	defer b.Close()
	changes, err := e.stage(e.db, b, ns, uniq, false)
	if err != nil {
		return first, last, err
	}
	// Synced, as a single write is: the batch is acknowledged durable.
	if err := b.Commit(pebble.Sync); err != nil {
		return first, last, fmt.Errorf("lww: commit a batch of %d records of %q: %w", len(uniq), ns, err)
	}
	e.committed(st, ns, changes)
	e.enqueueUnit(ns, uniq)
	return first, last, nil
}

// GetMany returns the record of each key in ns (nil where there is none;
// tombstones included), all read from one snapshot: a batch written here
// is seen whole or not at all.
func (e *Engine) GetMany(ns string, keyList [][]byte) ([]*storepb.LWWRecord, error) {
	if err := validNamespace(ns); err != nil {
		return nil, err
	}
	for i, k := range keyList {
		if err := validKey(k); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.opMu.RUnlock()
	snap := e.db.NewSnapshot()
	defer snap.Close()
	out := make([]*storepb.LWWRecord, len(keyList))
	for i, k := range keyList {
		r, err := readRecord(snap, keys.LWWKey(ns, k))
		if err != nil {
			return nil, err
		}
		if r != nil {
			out[i] = r.toProto(k)
		}
	}
	return out, nil
}

// mergeUnit applies a pushed unit (validated): all its records in one
// batch, or none if the clock refuses any of them as too far ahead (then
// anti-entropy offers them again later).
func (e *Engine) mergeUnit(ns string, recs []*storepb.LWWRecord, from uint64) error {
	e.st.received.Add(uint64(len(recs)))
	for _, r := range recs {
		if err := e.clock.Update(hlc.FromProto(r.Ts)); err != nil {
			e.st.refused.Add(uint64(len(recs)))
			e.log.Warn("lww: a pushed batch refused whole: a timestamp too far ahead of the local clock (check clock sync); anti-entropy offers it again later",
				zap.String("ns", ns), zap.Uint64("from", from), zap.Int("refused", len(recs)), zap.Error(err))
			return nil
		}
	}
	_, err := e.apply(ns, recs, true, false, true)
	return err
}
