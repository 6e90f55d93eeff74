package lww

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/testseed"
)

// TestRecordCacheHoldsWhatPebbleHolds runs random writes of every kind
// (local puts and deletes, batches, merges of newer and older records and
// of tombstones, replaces committed and dropped, tombstone collection,
// drops) on a few keys of two namespaces, and after each checks that every
// record the cache holds is the one pebble holds: a stale entry would make
// a write lose to, or digest, a record that is no longer there.
func TestRecordCacheHoldsWhatPebbleHolds(t *testing.T) {
	seed := testseed.For(t, 20261207)
	rng := rand.New(rand.NewPCG(seed, 2))
	const grace = time.Hour
	s := newSolo(t, 1, func(c *Config) { c.TombstoneGrace = grace })
	e := s.eng
	ctx := context.Background()
	nss := []string{"a", "b"}
	key := func() []byte { return fmt.Appendf(nil, "k%d", rng.IntN(6)) }
	value := func() []byte { return fmt.Appendf(nil, "v%d", rng.IntN(1000)) }
	ts := func() *storepb.Timestamp {
		now, err := s.clock.Now()
		if err != nil {
			t.Fatal(err)
		}
		// Older or newer than what the keys hold, now and then from
		// before the grace (a tombstone to be ignored or collected).
		wall := now.Wall + int64(rng.IntN(2000)-1000)*int64(time.Millisecond)
		if rng.IntN(8) == 0 {
			wall = now.Wall - int64(2*grace)
		}
		return &storepb.Timestamp{WallTime: wall, Logical: uint32(rng.IntN(3)), StoreId: uint64(1 + rng.IntN(3))}
	}
	for step := range 3000 {
		ns := nss[rng.IntN(len(nss))]
		var op string
		var err error
		switch n := rng.IntN(100); {
		case n < 30:
			op = "put"
			_, err = e.Put(ctx, ns, key(), value())
		case n < 40:
			op = "delete"
			_, err = e.Delete(ctx, ns, key())
		case n < 50:
			op = "batch"
			kvs := []KV{{Key: key(), Value: value()}, {Key: key(), Value: value()}}
			_, _, err = e.PutBatch(ctx, ns, kvs)
		case n < 80:
			op = "merge"
			var recs []*storepb.LWWRecord
			for range 1 + rng.IntN(3) {
				r := &storepb.LWWRecord{Key: key(), Ts: ts()}
				if rng.IntN(3) == 0 {
					r.Tombstone = true
				} else {
					r.Value = value()
				}
				recs = append(recs, r)
			}
			_, err = e.Merge(ns, recs, false)
		case n < 88:
			op = "replace"
			now, cerr := s.clock.Now()
			if cerr != nil {
				t.Fatal(cerr)
			}
			b := e.db.NewIndexedBatch()
			done, serr := e.StageReplace(b, ns, now, []KV{{Key: key(), Value: value()}})
			if serr != nil {
				t.Fatal(serr)
			}
			commit := rng.IntN(4) != 0
			if commit {
				err = b.Commit(pebble.Sync)
			}
			done(commit && err == nil)
			_ = b.Close()
		case n < 95:
			op = "collect"
			s.time.offset.Add(int64(grace / 4))
			_, err = e.collectNamespace(ns)
		default:
			op = "drop"
			err = e.Drop(ns)
		}
		if err != nil {
			t.Fatalf("seed %d step %d %s: %v", seed, step, op, err)
		}
		if err := cacheMatchesPebble(e); err != nil {
			t.Fatalf("seed %d step %d, after %s: %v", seed, step, op, err)
		}
	}
}

// cacheMatchesPebble checks every cached record against pebble's.
func cacheMatchesPebble(e *Engine) error {
	for i := range e.cache.shards {
		sh := &e.cache.shards[i]
		sh.mu.Lock()
		err := shardMatchesPebble(e, sh)
		sh.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// shardMatchesPebble checks one shard (locked): its records against
// pebble's, and its byte counts against its entries.
func shardMatchesPebble(e *Engine, sh *cacheShard) error {
	total := 0
	for ns, nr := range sh.ns {
		if len(nr.m) == 0 {
			return fmt.Errorf("namespace %q kept with no entry", ns)
		}
		nsBytes := 0
		for key, c := range nr.m {
			lk := keys.LWWKey(ns, []byte(key))
			r, err := readRecord(e.db, lk)
			if err != nil {
				return err
			}
			if r == nil || hlc.Compare(r.ts, c.ts) != 0 || r.tombstone != c.tombstone || !bytes.Equal(r.value, c.value) {
				return fmt.Errorf("cache holds %q as %+v, pebble %+v", lk, *c, r)
			}
			nsBytes += entrySize(key, c)
		}
		if nsBytes != nr.bytes {
			return fmt.Errorf("namespace %q counts %d bytes, its entries %d", ns, nr.bytes, nsBytes)
		}
		total += nsBytes + cacheNSOverhead
	}
	if total != sh.bytes {
		return fmt.Errorf("shard counts %d bytes, its entries %d", sh.bytes, total)
	}
	return nil
}

// TestRecordCacheIsBounded fills the cache past its bound, with large
// records of one namespace and with small ones of 100,000 namespaces.
func TestRecordCacheIsBounded(t *testing.T) {
	c := newRecordCache()
	v := make([]byte, recordCacheMaxValue)
	for i := range 2 * recordCacheBytes / recordCacheMaxValue {
		c.put("ns", fmt.Appendf(nil, "k%d", i), &record{value: v})
	}
	checkBound := func() {
		t.Helper()
		total := 0
		for i := range c.shards {
			total += c.shards[i].bytes
			if c.shards[i].bytes > recordCacheBytes/recordCacheShards {
				t.Fatalf("shard %d holds %d bytes, above %d", i, c.shards[i].bytes, recordCacheBytes/recordCacheShards)
			}
		}
		if total < recordCacheBytes/2 {
			t.Fatalf("the cache holds %d bytes of %d", total, recordCacheBytes)
		}
	}
	checkBound()
	c.put("ns", []byte("big"), &record{value: make([]byte, recordCacheMaxValue+1)})
	if _, ok := c.get("ns", []byte("big")); ok {
		t.Fatal("a record above the value bound was cached")
	}
	for i := range 100000 {
		c.put(fmt.Sprintf("ns%d", i), []byte("k"), &record{value: []byte("v")})
	}
	checkBound()
}
