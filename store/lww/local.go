package lww

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

// applyChunk is the most records one read-modify-write batch holds the key
// locks of.
const applyChunk = 256

// Put writes value at key in ns, stamped with the clock, and returns the
// timestamp. The write is synced before Put returns (concurrent writers
// share fsyncs through pebble's group commit); it is then queued to be
// pushed to every peer. The caller has checked that ns is eventual.
//
// If the key already holds a newer record (one received from a store
// whose clock is ahead), the write is a no-op: under last-writer-wins it
// was overwritten at once.
func (e *Engine) Put(ctx context.Context, ns string, key, value []byte) (hlc.Timestamp, error) {
	if err := validValue(value); err != nil {
		return hlc.Timestamp{}, err
	}
	return e.writeLocal(ctx, ns, key, value, false)
}

// Delete writes a tombstone at key in ns, whether or not the key exists
// here (another store may hold it), like Put.
func (e *Engine) Delete(ctx context.Context, ns string, key []byte) (hlc.Timestamp, error) {
	return e.writeLocal(ctx, ns, key, nil, true)
}

func (e *Engine) writeLocal(ctx context.Context, ns string, key, value []byte, tombstone bool) (hlc.Timestamp, error) {
	if err := ctx.Err(); err != nil {
		return hlc.Timestamp{}, err
	}
	if err := validNamespace(ns); err != nil {
		return hlc.Timestamp{}, err
	}
	if err := validKey(key); err != nil {
		return hlc.Timestamp{}, err
	}
	if err := e.enter(); err != nil {
		return hlc.Timestamp{}, err
	}
	defer e.opMu.RUnlock()
	st := e.state(ns)
	st.mu.RLock()
	defer st.mu.RUnlock()

	lk := keys.LWWKey(ns, key)
	mu := &e.stripes[stripe(ns, key)]
	mu.Lock()
	// The timestamp is taken under the key's lock, so two writes to one
	// key commit in the order of their timestamps.
	ts, err := e.clock.Now()
	if err != nil {
		mu.Unlock()
		return hlc.Timestamp{}, err
	}
	old, err := e.currentRecord(ns, key, lk)
	if err != nil {
		mu.Unlock()
		return hlc.Timestamp{}, err
	}
	r := record{ts: ts, tombstone: tombstone, value: value}
	if len(r.value) == 0 {
		r.value = nil
	}
	if old != nil && compareRecords(r, *old) <= 0 {
		mu.Unlock()
		return ts, nil
	}
	if err := e.db.Set(lk, encodeValue(r), pebble.Sync); err != nil {
		mu.Unlock()
		return hlc.Timestamp{}, fmt.Errorf("lww: write %q: %w", lk, err)
	}
	st.change(key, old, &r)
	e.cache.put(ns, key, &r)
	mu.Unlock()

	e.enqueue(ns, r.toProto(key))
	return ts, nil
}

// Get returns the record of key in ns. found reports a live value; a
// tombstone is returned as the record (Tombstone set) with found false,
// and a key with no record returns nil, false.
func (e *Engine) Get(ns string, key []byte) (rec *storepb.LWWRecord, found bool, err error) {
	if err := validNamespace(ns); err != nil {
		return nil, false, err
	}
	if err := validKey(key); err != nil {
		return nil, false, err
	}
	if err := e.enter(); err != nil {
		return nil, false, err
	}
	defer e.opMu.RUnlock()
	r, err := e.readRecord(keys.LWWKey(ns, key))
	if err != nil || r == nil {
		return nil, false, err
	}
	return r.toProto(key), !r.tombstone, nil
}

// Scan returns the live records of ns with start <= key < end, in key
// order, skipping tombstones; an empty end means to the end of the
// namespace. It returns at most limit records (limit <= 0: no limit) and
// reports whether more live records follow.
func (e *Engine) Scan(ns string, start, end []byte, limit int) (recs []*storepb.LWWRecord, more bool, err error) {
	if err := validNamespace(ns); err != nil {
		return nil, false, err
	}
	if err := e.enter(); err != nil {
		return nil, false, err
	}
	defer e.opMu.RUnlock()
	prefix := keys.LWWPrefix(ns)
	opts := &pebble.IterOptions{LowerBound: keys.LWWKey(ns, start), UpperBound: keys.PrefixEnd(prefix)}
	if len(end) > 0 {
		opts.UpperBound = keys.LWWKey(ns, end)
	}
	if bytes.Compare(opts.LowerBound, opts.UpperBound) >= 0 {
		return nil, false, nil
	}
	err = e.iterate(opts, func(key []byte, r record) error {
		if r.tombstone {
			return nil
		}
		if limit > 0 && len(recs) == limit {
			more = true
			return errStop
		}
		recs = append(recs, r.toProto(key[len(prefix):]))
		return nil
	})
	return recs, more, err
}

// Merge applies records received for ns (from a peer, a dump or a switch):
// for each key the newer of the local and the incoming record is kept
// (Newer). It validates every record first and applies none if one is
// malformed. A record whose timestamp the clock refuses as too far ahead
// is not applied (and logged); the others update the clock. A tombstone
// older than TombstoneGrace is ignored. Records are written synced when
// sync is true; otherwise they may be lost in a crash, which anti-entropy
// repairs. It returns how many records changed the local state.
func (e *Engine) Merge(ns string, recs []*storepb.LWWRecord, sync bool) (applied int, err error) {
	if err := validRecords(ns, recs); err != nil {
		return 0, err
	}
	if err := e.enter(); err != nil {
		return 0, err
	}
	defer e.opMu.RUnlock()
	return e.mergeRemote(ns, recs, sync, 0)
}

// mergeRemote applies validated records that come from outside this store.
func (e *Engine) mergeRemote(ns string, recs []*storepb.LWWRecord, sync bool, from uint64) (int, error) {
	e.st.received.Add(uint64(len(recs)))
	accepted := recs[:0:0]
	var refused int
	var firstErr error
	for _, r := range recs {
		if err := e.clock.Update(hlc.FromProto(r.Ts)); err != nil {
			refused++
			if firstErr == nil {
				firstErr = fmt.Errorf("key %q: %w", truncate(string(r.Key)), err)
			}
			continue
		}
		accepted = append(accepted, r)
	}
	if refused > 0 {
		// One line per call, not per record: a peer whose clock runs
		// ahead would otherwise flood the log.
		e.st.refused.Add(uint64(refused))
		e.log.Warn("lww: records refused: timestamps too far ahead of the local clock (check clock sync); anti-entropy offers them again later",
			zap.String("ns", ns), zap.Uint64("from", from), zap.Int("refused", refused), zap.Error(firstErr))
	}
	applied := 0
	for chunk := range slices.Chunk(accepted, applyChunk) {
		n, err := e.apply(ns, chunk, sync, false, true)
		applied += n
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// apply merges records into ns and returns how many changed the local
// state. The read-modify-write of every key is atomic against every other
// write of it: apply holds the keys' stripe locks from the read until the
// digests are updated. A tombstone older than the grace is ignored, or,
// when replace is set, removes the older local record outright (what it
// would leave once collected). Records from outside the store (remote) are
// applied only while the namespace is served here, checked under the
// namespace's lock: once a conversion (StageReplace) holds it, no merge
// that began before is still writing, and none that begins after writes
// until the namespace is served again.
func (e *Engine) apply(ns string, recs []*storepb.LWWRecord, sync, replace, remote bool) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	uniq := newestPerKey(recs)
	st := e.state(ns)
	st.mu.RLock()
	defer st.mu.RUnlock()
	if remote && !e.cfg.Serving(ns) {
		return 0, nil
	}
	unlock := e.lockStripes(ns, uniq)
	defer unlock()

	b := e.db.NewBatch()
	defer b.Close()
	changes, err := e.stage(e.db, b, ns, uniq, replace)
	if err != nil || len(changes) == 0 {
		return 0, err
	}
	if err := b.Commit(writeOptions(sync)); err != nil {
		return 0, fmt.Errorf("lww: commit %d records of %q: %w", len(changes), ns, err)
	}
	e.committed(st, ns, changes)
	return len(changes), nil
}

// newestPerKey keeps one record per key, the newest, so that what is
// applied does not depend on the order of recs.
func newestPerKey(recs []*storepb.LWWRecord) []*storepb.LWWRecord {
	byKey := make(map[string]int, len(recs))
	uniq := make([]*storepb.LWWRecord, 0, len(recs))
	for _, r := range recs {
		if i, ok := byKey[string(r.Key)]; ok {
			if Newer(r, uniq[i]) {
				uniq[i] = r
			}
			continue
		}
		byKey[string(r.Key)] = len(uniq)
		uniq = append(uniq, r)
	}
	return uniq
}

// change is one key's move from old to new (nil: absent), to be recorded
// in the digests once the batch that wrote it is committed.
type change struct {
	key      []byte
	old, new *record
}

// apply records committed changes in the digests.
func (s *nsState) apply(changes []change) {
	for _, c := range changes {
		s.change(c.key, c.old, c.new)
	}
}

// stage writes into w every record of recs (one per key) that wins over
// what r holds, by the merge rule, and returns the changes. The caller
// holds the keys against other writers.
func (e *Engine) stage(r pebble.Reader, w *pebble.Batch, ns string, recs []*storepb.LWWRecord, replace bool) ([]change, error) {
	cutoff := e.clock.PhysicalNow() - int64(e.cfg.TombstoneGrace)
	var changes []change
	for _, in := range recs {
		lk := keys.LWWKey(ns, in.Key)
		var old *record
		var err error
		if r == pebble.Reader(e.db) {
			old, err = e.currentRecord(ns, in.Key, lk)
		} else {
			old, err = readRecord(r, lk)
		}
		if err != nil {
			return nil, err
		}
		rec := fromProto(in)
		if len(rec.value) == 0 {
			rec.value = nil
		}
		if old != nil && compareRecords(rec, *old) <= 0 {
			continue
		}
		if rec.tombstone && rec.ts.Wall < cutoff {
			if !replace || old == nil {
				continue
			}
			if err := w.Delete(lk, nil); err != nil {
				return nil, err
			}
			changes = append(changes, change{key: in.Key, old: old})
			continue
		}
		if err := w.Set(lk, encodeValue(rec), nil); err != nil {
			return nil, err
		}
		changes = append(changes, change{key: in.Key, old: old, new: &rec})
	}
	return changes, nil
}

// lockStripes locks the stripes of recs' keys in ascending order (so two
// callers never wait on each other in a cycle) and returns the unlock.
func (e *Engine) lockStripes(ns string, recs []*storepb.LWWRecord) func() {
	idx := make([]int, 0, len(recs))
	for _, r := range recs {
		idx = append(idx, stripe(ns, r.Key))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		e.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			e.stripes[i].Unlock()
		}
	}
}

// Dump calls fn with every record of ns, tombstones included, in key
// order, in batches of at most MaxBatch records or about MaxMessageBytes;
// fn owns the records. Each batch is read from the state at the time it is
// read, and fn runs with nothing held, so a slow fn (a stream to a peer)
// delays neither writes nor Close. A record present throughout the dump is
// always included; one written during it may or may not be. An error from
// fn stops the dump and is returned.
func (e *Engine) Dump(ns string, fn func([]*storepb.LWWRecord) error) error {
	if err := validNamespace(ns); err != nil {
		return err
	}
	opts := nsBounds(ns)
	for {
		batch, next, err := e.dumpBatch(ns, opts)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		opts.LowerBound = next
	}
}

// dumpBatch reads one batch of Dump from opts.LowerBound on and returns
// the lower bound of the next batch, nil at the end.
func (e *Engine) dumpBatch(ns string, opts *pebble.IterOptions) (batch []*storepb.LWWRecord, next []byte, err error) {
	if err := e.enter(); err != nil {
		return nil, nil, err
	}
	defer e.opMu.RUnlock()
	prefix := keys.LWWPrefix(ns)
	var size int64
	err = e.iterate(opts, func(key []byte, r record) error {
		if len(batch) >= e.cfg.MaxBatch || size >= e.cfg.MaxMessageBytes {
			next = bytes.Clone(key)
			return errStop
		}
		batch = append(batch, r.toProto(key[len(prefix):]))
		size += recordSize(key, r.value)
		return nil
	})
	return batch, next, err
}

// KV is one key and its value, for StageReplace.
type KV struct {
	Key, Value []byte
}

// StageReplace makes the records of ns equal to kvs at the timestamp ts, in
// b: the Raft apply batch of the entry (a fence) that converts a strong
// namespace into an eventual one. Every store stages it with the same ts
// and kvs and ends with the same live records. It merges (key, value, ts)
// for every kv and a tombstone at ts for every local key not in kvs, with
// the merge rule, so a record newer than ts (a write accepted after the
// switch, received from a store that converted first) is kept; tombstones
// of keys only some stores held are reconciled by anti-entropy like any
// record. It is idempotent. ts must be above every record the namespace
// held before (the fence timestamp is), or those newer records stay.
//
// b must be an indexed batch: StageReplace reads through it, so several
// conversions in one batch compose. It writes nothing outside b. Until the
// caller runs done, StageReplace holds ns exclusively: no write to ns is in
// flight and none starts. The caller runs done(true) once b is committed
// (the digests then take the changes) or done(false) if b is dropped.
//
// Replaces of ns staged in the same batch nest (a batch that applies a
// log with two fences of one namespace converts it twice): the second is
// staged over the first, as b holds it, and ns is released by the last
// done.
func (e *Engine) StageReplace(b *pebble.Batch, ns string, ts hlc.Timestamp, kvs []KV) (done func(committed bool), err error) {
	if err := validNamespace(ns); err != nil {
		return nil, err
	}
	if ts.IsZero() {
		return nil, fmt.Errorf("%w: a replace needs a timestamp", ErrInvalid)
	}
	for _, kv := range kvs {
		if err := validKey(kv.Key); err != nil {
			return nil, err
		}
		if err := validValue(kv.Value); err != nil {
			return nil, err
		}
	}
	st := e.state(ns)
	if st.replacing.Load() != b {
		if err := e.enter(); err != nil {
			return nil, err
		}
		st.mu.Lock()
		st.replacing.Store(b)
	}
	st.replaces++
	release := func() {
		if st.replaces--; st.replaces > 0 {
			return
		}
		// Held exclusively: no writer fills the cache meanwhile.
		e.cache.removeNamespace(ns)
		st.replacing.Store(nil)
		st.mu.Unlock()
		e.opMu.RUnlock()
	}
	changes, err := e.stageReplace(b, ns, ts, kvs)
	if err != nil {
		release()
		return nil, err
	}
	return func(committed bool) {
		if committed {
			st.apply(changes)
		}
		release()
	}, nil
}

func (e *Engine) stageReplace(b *pebble.Batch, ns string, ts hlc.Timestamp, kvs []KV) ([]change, error) {
	keep := make(map[string]struct{}, len(kvs))
	for _, kv := range kvs {
		keep[string(kv.Key)] = struct{}{}
	}
	pts := ts.ToProto()
	prefix := keys.LWWPrefix(ns)
	var tombs []*storepb.LWWRecord
	err := iterate(b, nsBounds(ns), func(key []byte, r record) error {
		k := key[len(prefix):]
		if _, ok := keep[string(k)]; ok || (r.tombstone && hlc.Compare(r.ts, ts) >= 0) {
			return nil
		}
		tombs = append(tombs, &storepb.LWWRecord{Key: bytes.Clone(k), Ts: pts, Tombstone: true})
		return nil
	})
	if err != nil {
		return nil, err
	}
	recs := tombs
	for _, kv := range kvs {
		recs = append(recs, &storepb.LWWRecord{Key: kv.Key, Value: kv.Value, Ts: pts})
	}
	return e.stage(b, b, ns, newestPerKey(recs), true)
}

// Drop removes every record of ns, synced. It is for a namespace that is
// no longer eventual; a peer that still serves ns can bring its records
// back by anti-entropy, so stop Serving it first.
func (e *Engine) Drop(ns string) error {
	if err := validNamespace(ns); err != nil {
		return err
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer e.opMu.RUnlock()
	st := e.state(ns)
	st.mu.Lock()
	defer st.mu.Unlock()
	prefix := keys.LWWPrefix(ns)
	e.cache.removeNamespace(ns)
	if err := e.db.DeleteRange(prefix, keys.PrefixEnd(prefix), pebble.Sync); err != nil {
		return fmt.Errorf("lww: drop %q: %w", ns, err)
	}
	st.reset()
	return nil
}

// errStop ends an iteration early without an error.
var errStop = errors.New("stop")

// nsBounds returns the iterator bounds of every record of ns.
func nsBounds(ns string) *pebble.IterOptions {
	prefix := keys.LWWPrefix(ns)
	return &pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)}
}

// iterate calls fn with each record in opts' bounds, in key order; the
// storage key and the record's value are only valid during the call. fn
// returning errStop ends the iteration with no error.
func (e *Engine) iterate(opts *pebble.IterOptions, fn func(key []byte, r record) error) error {
	return iterate(e.db, opts, fn)
}

// iterate is Engine.iterate over any reader (the DB, or an indexed batch).
func iterate(rd pebble.Reader, opts *pebble.IterOptions, fn func(key []byte, r record) error) error {
	it, err := rd.NewIter(opts)
	if err != nil {
		return fmt.Errorf("lww: iterate: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("lww: read %q: %w", it.Key(), err)
		}
		r, err := decodeValue(v)
		if err != nil {
			it.Close()
			return fmt.Errorf("lww: record %q: %w", it.Key(), err)
		}
		if err := fn(it.Key(), r); err != nil {
			it.Close()
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return fmt.Errorf("lww: iterate: %w", err)
	}
	return it.Close()
}
