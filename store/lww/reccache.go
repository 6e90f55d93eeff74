package lww

import (
	"hash/maphash"
	"sync"

	"github.com/rdb-project/rdb/store/keys"
)

// The record cache: the current record of recently written keys, so that
// a write does not read the key it replaces from pebble. Every write reads
// it (the merge rule compares timestamps, and the digests take the old
// record out): under 64 clients' RawPut that read was 18% of a store's CPU
// for the local writes and 11% for the merges of its peers' pushes.
//
// It holds the record pebble holds, never an older one:
//   - it is read and filled only by a writer that holds the key's stripe
//     lock (and its namespace's lock shared), so no write of the key
//     commits between the read from pebble and the fill;
//   - every write of a key updates (or removes) its entry after its batch
//     commits, still under those locks;
//   - a write of a whole namespace (StageReplace, Drop) holds its
//     namespace's lock exclusively and removes the namespace's entries.
//
// Reads that hold no lock (Get, GetMany, scans, dumps) go to pebble.
// Absent keys are not cached. It is bounded by bytes; past the bound,
// entries leave in no particular order.

const (
	// recordCacheBytes bounds the cache's keys and values.
	recordCacheBytes = 32 << 20
	// recordCacheMaxValue: a record with a larger value is not cached.
	recordCacheMaxValue = 16 << 10
	recordCacheShards   = 16
	// cacheEntryOverhead is about what an entry costs beyond its key and
	// value (map slot, record).
	cacheEntryOverhead = 96
)

type recordCache struct {
	seed   maphash.Seed
	shards [recordCacheShards]cacheShard
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]*record
	bytes int
}

func newRecordCache() *recordCache {
	c := &recordCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*record)
	}
	return c
}

func (c *recordCache) shard(lk []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, lk)%recordCacheShards]
}

func entrySize(lk []byte, r *record) int {
	return len(lk) + len(r.value) + cacheEntryOverhead
}

// get returns the cached record of lk; the caller must not change it.
func (c *recordCache) get(lk []byte) (*record, bool) {
	s := c.shard(lk)
	s.mu.Lock()
	r, ok := s.m[string(lk)]
	s.mu.Unlock()
	return r, ok
}

// put caches r (copied) as lk's record, or removes lk's entry if r is nil
// or too large.
func (c *recordCache) put(lk []byte, r *record) {
	if r == nil || len(r.value) > recordCacheMaxValue {
		c.remove(lk)
		return
	}
	cp := &record{ts: r.ts, tombstone: r.tombstone}
	if r.value != nil {
		cp.value = append(make([]byte, 0, len(r.value)), r.value...)
	}
	s := c.shard(lk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[string(lk)]; ok {
		s.bytes -= entrySize(lk, old)
	}
	s.m[string(lk)] = cp
	s.bytes += entrySize(lk, cp)
	for k, v := range s.m {
		if s.bytes <= recordCacheBytes/recordCacheShards {
			break
		}
		if k == string(lk) {
			continue
		}
		delete(s.m, k)
		s.bytes -= len(k) + len(v.value) + cacheEntryOverhead
	}
}

func (c *recordCache) remove(lk []byte) {
	s := c.shard(lk)
	s.mu.Lock()
	if old, ok := s.m[string(lk)]; ok {
		delete(s.m, string(lk))
		s.bytes -= entrySize(lk, old)
	}
	s.mu.Unlock()
}

// removeNamespace removes every entry of ns.
func (c *recordCache) removeNamespace(ns string) {
	prefix := string(keys.LWWPrefix(ns))
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				delete(s.m, k)
				s.bytes -= len(k) + len(v.value) + cacheEntryOverhead
			}
		}
		s.mu.Unlock()
	}
}

// currentRecord returns the record pebble holds at lk, through the cache;
// the caller holds lk's stripe lock (see above) and must not change it.
func (e *Engine) currentRecord(lk []byte) (*record, error) {
	if r, ok := e.cache.get(lk); ok {
		return r, nil
	}
	r, err := readRecord(e.db, lk)
	if err != nil || r == nil {
		return r, err
	}
	e.cache.put(lk, r)
	return r, nil
}

// committed records a committed batch's changes: in the digests, and in
// the cache.
func (e *Engine) committed(st *nsState, ns string, changes []change) {
	st.apply(changes)
	for _, c := range changes {
		e.cache.put(keys.LWWKey(ns, c.key), c.new)
	}
}
