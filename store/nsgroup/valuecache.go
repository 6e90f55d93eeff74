package nsgroup

import (
	"github.com/rdb-project/rdb/store/raftstore"
)

// The value cache: the version and value of recently applied keys of the
// store's strong namespaces, so that applying a CAS or a Delete does not
// read the key from pebble first. Every replica applies every write, and
// that read was a fifth of a follower's CPU under 64 clients' CAS.
//
// It is used and changed by the Raft loop only (Apply, Restore, Forget),
// so it needs no lock, and it holds what the round's apply batch holds,
// uncommitted writes included (a CAS later in the round reads the earlier
// one's write). Every write of a strong key updates it as it is staged:
// a CAS or a Delete the key, a switch step's load its keys, a switch
// step that clears the keys, a snapshot restored and a replica destroyed
// the whole group. A batch that is dropped (the loop then stops) empties
// it. Reads outside the loop (Get, Scan) go to pebble.
//
// Absent keys are cached too. Entries are kept by group, so that emptying
// a group costs its own entries, not the whole cache's (a store may
// receive snapshots for, or destroy, thousands of its 100,000 replicas).
// It is bounded by bytes; past the bound, entries leave in no particular
// order.

const (
	valueCacheBytes    = 32 << 20
	valueCacheMaxValue = 16 << 10
	// valueEntryOverhead is about what an entry costs beyond its key and
	// value, and valueGroupOverhead what a group with entries costs beyond
	// them (its map): counted too, so that 100,000 groups written once
	// stay within the bound.
	valueEntryOverhead = 96
	valueGroupOverhead = 256
)

type cachedValue struct {
	version uint64
	value   []byte
	found   bool
}

type valueCache struct {
	groups map[uint64]*groupValues
	bytes  int
	// ac is the apply batch the cache follows: if it is dropped, the
	// cache is emptied.
	ac *raftstore.ApplyContext
}

// groupValues are one group's entries, by key.
type groupValues struct {
	m     map[string]cachedValue
	bytes int
}

func newValueCache() *valueCache { return &valueCache{groups: make(map[uint64]*groupValues)} }

func valueSize(key string, v cachedValue) int { return len(key) + len(v.value) + valueEntryOverhead }

// follow ties the cache to ac's fate, once per batch.
func (c *valueCache) follow(ac *raftstore.ApplyContext) {
	if c.ac == ac {
		return
	}
	c.ac = ac
	ac.Finally(func(committed bool) {
		if !committed {
			c.clear()
		}
		if c.ac == ac {
			c.ac = nil
		}
	})
}

func (c *valueCache) get(group uint64, key []byte) (cachedValue, bool) {
	gv := c.groups[group]
	if gv == nil {
		return cachedValue{}, false
	}
	v, ok := gv.m[string(key)]
	return v, ok
}

// put caches key's version and value (copied) in group, or forgets key if
// the value is too large.
func (c *valueCache) put(group uint64, key []byte, v cachedValue) {
	if len(v.value) > valueCacheMaxValue {
		c.remove(group, key)
		return
	}
	if v.value != nil {
		v.value = append(make([]byte, 0, len(v.value)), v.value...)
	}
	k := string(key)
	gv := c.groups[group]
	if gv == nil {
		gv = &groupValues{m: make(map[string]cachedValue)}
		c.groups[group] = gv
		c.bytes += valueGroupOverhead
	}
	if old, ok := gv.m[k]; ok {
		gv.bytes -= valueSize(k, old)
		c.bytes -= valueSize(k, old)
	}
	gv.m[k] = v
	gv.bytes += valueSize(k, v)
	c.bytes += valueSize(k, v)
	c.evict(group, k)
}

// drop removes one entry of group's gv, and gv once it is empty.
func (c *valueCache) drop(group uint64, gv *groupValues, k string, v cachedValue) {
	delete(gv.m, k)
	gv.bytes -= valueSize(k, v)
	c.bytes -= valueSize(k, v)
	if len(gv.m) == 0 {
		delete(c.groups, group)
		c.bytes -= valueGroupOverhead
	}
}

// evict removes entries, any but keep of keepGroup, until the cache is
// within its bound.
func (c *valueCache) evict(keepGroup uint64, keep string) {
	for id, gv := range c.groups {
		for k, v := range gv.m {
			if c.bytes <= valueCacheBytes {
				return
			}
			if id != keepGroup || k != keep {
				c.drop(id, gv, k, v)
			}
		}
	}
}

func (c *valueCache) remove(group uint64, key []byte) {
	if gv := c.groups[group]; gv != nil {
		if old, ok := gv.m[string(key)]; ok {
			c.drop(group, gv, string(key), old)
		}
	}
}

// removeGroup forgets every key of group.
func (c *valueCache) removeGroup(group uint64) {
	if gv := c.groups[group]; gv != nil {
		c.bytes -= gv.bytes + valueGroupOverhead
		delete(c.groups, group)
	}
}

func (c *valueCache) clear() {
	clear(c.groups)
	c.bytes = 0
}

// current returns key's version and value as the apply batch holds them,
// through the cache. Loop only; the value must not be changed.
func (g *Group) current(ac *raftstore.ApplyContext, key []byte) (version uint64, value []byte, found bool, err error) {
	c := g.cache
	c.follow(ac)
	if v, ok := c.get(g.id, key); ok {
		return v.version, v.value, v.found, nil
	}
	version, value, found, err = g.Read(ac.Batch, key)
	if err != nil {
		return 0, nil, false, err
	}
	c.put(g.id, key, cachedValue{version: version, value: value, found: found})
	return version, value, found, nil
}

// wrote records a write of key staged in ac's batch.
func (g *Group) wrote(ac *raftstore.ApplyContext, key []byte, v cachedValue) {
	g.cache.follow(ac)
	g.cache.put(g.id, key, v)
}
