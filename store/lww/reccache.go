package lww

import (
	"hash/maphash"
	"sync"
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
// Absent keys are not cached. Entries are kept by namespace, so that
// emptying a namespace costs its own entries, not the whole cache's (a
// store may switch or drop thousands of its 100,000 namespaces). It is
// bounded by bytes; past the bound, entries leave in no particular order.

const (
	// recordCacheBytes bounds the cache's keys and values.
	recordCacheBytes = 32 << 20
	// recordCacheMaxValue: a record with a larger value is not cached.
	recordCacheMaxValue = 16 << 10
	recordCacheShards   = 16
	// cacheEntryOverhead is about what an entry costs beyond its key and
	// value (map slot, record), and cacheNSOverhead what a namespace with
	// entries in a shard costs beyond them (its map): counted too, so that
	// 100,000 namespaces written once stay within the bound.
	cacheEntryOverhead = 96
	cacheNSOverhead    = 256
)

type recordCache struct {
	seed   maphash.Seed
	shards [recordCacheShards]cacheShard
}

// cacheShard holds the entries of the keys that hash to it, by namespace.
type cacheShard struct {
	mu    sync.Mutex
	ns    map[string]*nsRecords
	bytes int
}

// nsRecords are one namespace's entries in a shard, by key.
type nsRecords struct {
	m     map[string]*record
	bytes int
}

func newRecordCache() *recordCache {
	c := &recordCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].ns = make(map[string]*nsRecords)
	}
	return c
}

func (c *recordCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%recordCacheShards]
}

func entrySize(key string, r *record) int {
	return len(key) + len(r.value) + cacheEntryOverhead
}

// get returns the cached record of key in ns; the caller must not change
// it.
func (c *recordCache) get(ns string, key []byte) (*record, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	nr := s.ns[ns]
	if nr == nil {
		return nil, false
	}
	r, ok := nr.m[string(key)]
	return r, ok
}

// put caches r (copied) as key's record in ns, or removes key's entry if r
// is nil or too large.
func (c *recordCache) put(ns string, key []byte, r *record) {
	if r == nil || len(r.value) > recordCacheMaxValue {
		c.remove(ns, key)
		return
	}
	cp := &record{ts: r.ts, tombstone: r.tombstone}
	if r.value != nil {
		cp.value = append(make([]byte, 0, len(r.value)), r.value...)
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := string(key)
	nr := s.ns[ns]
	if nr == nil {
		nr = &nsRecords{m: make(map[string]*record)}
		s.ns[ns] = nr
		s.bytes += cacheNSOverhead
	}
	if old, ok := nr.m[k]; ok {
		nr.bytes -= entrySize(k, old)
		s.bytes -= entrySize(k, old)
	}
	nr.m[k] = cp
	nr.bytes += entrySize(k, cp)
	s.bytes += entrySize(k, cp)
	s.evict(ns, k)
}

// drop removes one entry of ns's nr, and nr once it is empty.
func (s *cacheShard) drop(ns string, nr *nsRecords, k string, r *record) {
	delete(nr.m, k)
	nr.bytes -= entrySize(k, r)
	s.bytes -= entrySize(k, r)
	if len(nr.m) == 0 {
		delete(s.ns, ns)
		s.bytes -= cacheNSOverhead
	}
}

// evict removes entries, any but keep of keepNS, until the shard is within
// its share of the bound.
func (s *cacheShard) evict(keepNS, keep string) {
	for ns, nr := range s.ns {
		for k, r := range nr.m {
			if s.bytes <= recordCacheBytes/recordCacheShards {
				return
			}
			if ns != keepNS || k != keep {
				s.drop(ns, nr, k, r)
			}
		}
	}
}

func (c *recordCache) remove(ns string, key []byte) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if nr := s.ns[ns]; nr != nil {
		if old, ok := nr.m[string(key)]; ok {
			s.drop(ns, nr, string(key), old)
		}
	}
}

// removeNamespace removes every entry of ns.
func (c *recordCache) removeNamespace(ns string) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if nr := s.ns[ns]; nr != nil {
			s.bytes -= nr.bytes + cacheNSOverhead
			delete(s.ns, ns)
		}
		s.mu.Unlock()
	}
}

// currentRecord returns the record pebble holds at lk, the storage key of
// key in ns, through the cache; the caller holds the key's stripe lock
// (see above) and must not change the record.
func (e *Engine) currentRecord(ns string, key, lk []byte) (*record, error) {
	if r, ok := e.cache.get(ns, key); ok {
		return r, nil
	}
	r, err := readRecord(e.db, lk)
	if err != nil || r == nil {
		return r, err
	}
	e.cache.put(ns, key, r)
	return r, nil
}

// committed records a committed batch's changes: in the digests, and in
// the cache.
func (e *Engine) committed(st *nsState, ns string, changes []change) {
	st.apply(changes)
	for _, c := range changes {
		e.cache.put(ns, c.key, c.new)
	}
}
