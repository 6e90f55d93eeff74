package nsgroup

import (
	"github.com/rdb-project/rdb/store/keys"
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
// Absent keys are cached too. It is bounded by bytes; past the bound,
// entries leave in no particular order.

const (
	valueCacheBytes    = 32 << 20
	valueCacheMaxValue = 16 << 10
	valueEntryOverhead = 96
)

type cachedValue struct {
	version uint64
	value   []byte
	found   bool
}

type valueCache struct {
	m     map[string]cachedValue
	bytes int
	// ac is the apply batch the cache follows: if it is dropped, the
	// cache is emptied.
	ac *raftstore.ApplyContext
}

func newValueCache() *valueCache { return &valueCache{m: make(map[string]cachedValue)} }

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

func (c *valueCache) get(sk []byte) (cachedValue, bool) {
	v, ok := c.m[string(sk)]
	return v, ok
}

// put caches sk's version and value (copied), or forgets sk if the value
// is too large.
func (c *valueCache) put(sk []byte, v cachedValue) {
	if len(v.value) > valueCacheMaxValue {
		c.remove(sk)
		return
	}
	if v.value != nil {
		v.value = append(make([]byte, 0, len(v.value)), v.value...)
	}
	if old, ok := c.m[string(sk)]; ok {
		c.bytes -= len(sk) + len(old.value) + valueEntryOverhead
	}
	c.m[string(sk)] = v
	c.bytes += len(sk) + len(v.value) + valueEntryOverhead
	for k, old := range c.m {
		if c.bytes <= valueCacheBytes {
			break
		}
		if k == string(sk) {
			continue
		}
		delete(c.m, k)
		c.bytes -= len(k) + len(old.value) + valueEntryOverhead
	}
}

func (c *valueCache) remove(sk []byte) {
	if old, ok := c.m[string(sk)]; ok {
		delete(c.m, string(sk))
		c.bytes -= len(sk) + len(old.value) + valueEntryOverhead
	}
}

// removeGroup forgets every key of group id.
func (c *valueCache) removeGroup(id uint64) {
	prefix := string(keys.StrongPrefix(id))
	for k, old := range c.m {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(c.m, k)
			c.bytes -= len(k) + len(old.value) + valueEntryOverhead
		}
	}
}

func (c *valueCache) clear() {
	clear(c.m)
	c.bytes = 0
}

// current returns key's version and value as the apply batch holds them,
// through the cache. Loop only; the value must not be changed.
func (g *Group) current(ac *raftstore.ApplyContext, key []byte) (version uint64, value []byte, found bool, err error) {
	c := g.cache
	c.follow(ac)
	sk := keys.StrongKey(g.id, key)
	if v, ok := c.get(sk); ok {
		return v.version, v.value, v.found, nil
	}
	version, value, found, err = g.Read(ac.Batch, key)
	if err != nil {
		return 0, nil, false, err
	}
	c.put(sk, cachedValue{version: version, value: value, found: found})
	return version, value, found, nil
}

// wrote records a write of key staged in ac's batch.
func (g *Group) wrote(ac *raftstore.ApplyContext, key []byte, v cachedValue) {
	g.cache.follow(ac)
	g.cache.put(keys.StrongKey(g.id, key), v)
}
