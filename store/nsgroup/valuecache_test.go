package nsgroup

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/raftstore"
	"github.com/rdb-project/rdb/store/testseed"
)

// TestValueCacheHoldsWhatTheBatchHolds applies random rounds of CAS and
// Delete (right and wrong expected versions), whole switches (fence, load
// begin that clears the keys, load, activate) and snapshots restored, on a
// few keys, committing most rounds and dropping some. Every CAS and Delete
// must decide as the apply batch says the key stands, and after every round
// each cached key must be what pebble holds: a stale entry would make a
// replica decide a CAS against a version that is gone.
func TestValueCacheHoldsWhatTheBatchHolds(t *testing.T) {
	seed := testseed.For(t, 20261207)
	rng := rand.New(rand.NewPCG(seed, 3))
	f := newFixture(t)
	f.put(t, &storepb.GroupState{ActiveEpoch: 1}, map[string]string{"k0": "v0"})
	g := f.open(t)
	index, epoch, loadID := uint64(10), uint64(1), uint64(0)
	key := func() string { return fmt.Sprintf("k%d", rng.IntN(5)) }
	apply := func(ac *raftstore.ApplyContext, c *storepb.GroupCommand) Result {
		t.Helper()
		index++
		res, err := g.Apply(ac, index, command(t, c))
		if err != nil {
			t.Fatalf("seed %d: apply %v: %v", seed, c, err)
		}
		return res.(Result)
	}
	for round := range 400 {
		b := f.db.NewIndexedBatch()
		ac := raftstore.NewApplyContext(b)
		finished := false
		// A failure below still drops the batch: a replace staged in it
		// holds the namespace until then, and the engine's close waits.
		t.Cleanup(func() {
			if !finished {
				ac.Done(false)
				_ = b.Close()
			}
		})
		for range 1 + rng.IntN(6) {
			k := key()
			ver, _, found, err := g.Read(b, []byte(k))
			if err != nil {
				t.Fatal(err)
			}
			expect := ver
			if rng.IntN(3) == 0 {
				expect = uint64(rng.IntN(int(index)))
			}
			active := g.cur.GetActiveEpoch() > g.cur.GetFencedEpoch()
			switch n := rng.IntN(20); {
			case n < 10:
				res := apply(ac, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{
					Key: []byte(k), Value: fmt.Appendf(nil, "v%d", index+1), ExpectedVersion: expect}}})
				if active && res.Success != (expect == ver) || !res.Success && !res.Aborted && res.Version != ver {
					t.Fatalf("seed %d round %d: CAS %s expecting %d, batch holds version %d: %+v", seed, round, k, expect, ver, res)
				}
			case n < 14:
				res := apply(ac, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Delete{Delete: &storepb.DeleteCommand{
					Key: []byte(k), ExpectedVersion: expect}}})
				if active && res.Success != (expect == 0 || expect == ver) || res.Success && res.Found != found {
					t.Fatalf("seed %d round %d: Delete %s expecting %d, batch holds version %d (found %v): %+v", seed, round, k, expect, ver, found, res)
				}
			case n < 16:
				// A switch away and back, in this round: the load clears
				// the keys and brings others.
				ts := hlc.Timestamp{Wall: time.Now().UnixNano(), StoreID: 2}
				apply(ac, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{Epoch: epoch + 1, Ts: ts.ToProto()}}})
				epoch, loadID = epoch+2, loadID+1
				apply(ac, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBegin{LoadBegin: &storepb.LoadBegin{Epoch: epoch, LoadId: loadID}}})
				var recs []*storepb.LWWRecord
				for range rng.IntN(3) {
					recs = append(recs, &storepb.LWWRecord{Key: []byte(key()), Value: []byte("loaded"), Ts: ts.ToProto()})
				}
				apply(ac, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBatch{LoadBatch: &storepb.LoadBatch{Epoch: epoch, LoadId: loadID, Records: recs}}})
				apply(ac, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Activate{Activate: &storepb.Activate{Epoch: epoch, LoadId: loadID, RecordsLoaded: uint64(len(recs))}}})
			case n < 17:
				// A snapshot: the keys replaced under the group (as an
				// ingestion does), then restored.
				if err := b.Set(keys.StrongKey(g.id, []byte(k)), encodeValue(index+1000, []byte("snap")), nil); err != nil {
					t.Fatal(err)
				}
				if err := g.Restore(ac); err != nil {
					t.Fatal(err)
				}
			}
		}
		commit := rng.IntN(6) != 0
		if commit {
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		finished = true
		ac.Done(commit)
		_ = b.Close()
		if err := valueCacheMatches(g, f.db); err != nil {
			t.Fatalf("seed %d round %d (committed %v): %v", seed, round, commit, err)
		}
	}
}

// valueCacheMatches checks every cached key of g against pebble, and the
// cache's byte counts against its entries.
func valueCacheMatches(g *Group, db *pebble.DB) error {
	total := 0
	for id, gv := range g.cache.groups {
		n := 0
		for k, c := range gv.m {
			n += valueSize(k, c)
		}
		if len(gv.m) == 0 || n != gv.bytes {
			return fmt.Errorf("group %d: %d entries counted as %d bytes, they hold %d", id, len(gv.m), gv.bytes, n)
		}
		total += n + valueGroupOverhead
	}
	if total != g.cache.bytes {
		return fmt.Errorf("the cache counts %d bytes, its entries %d", g.cache.bytes, total)
	}
	gv := g.cache.groups[g.id]
	if gv == nil {
		return nil
	}
	for sk, c := range gv.m {
		k := []byte(sk)
		ver, val, found, err := g.Read(db, k)
		if err != nil {
			return err
		}
		if ver != c.version || found != c.found || !bytes.Equal(val, c.value) {
			return fmt.Errorf("cache holds %q at version %d (found %v, %q), pebble at %d (found %v, %q)", k, c.version, c.found, c.value, ver, found, val)
		}
	}
	return nil
}

// TestValueCacheForgetsADestroyedReplica: a replica destroyed (Forget)
// leaves nothing of its keys in the cache.
func TestValueCacheForgetsADestroyedReplica(t *testing.T) {
	f := newFixture(t)
	f.put(t, &storepb.GroupState{ActiveEpoch: 1}, nil)
	g := f.open(t)
	b := f.db.NewIndexedBatch()
	ac := raftstore.NewApplyContext(b)
	if _, err := g.Apply(ac, 11, command(t, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Cas{Cas: &storepb.CasCommand{Key: []byte("a"), Value: []byte("x")}}})); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	ac.Done(true)
	_ = b.Close()
	if g.cache.groups[testGroup] == nil {
		t.Fatal("an applied CAS left nothing in the cache")
	}
	f.groups.Forget(testGroup)
	if gv := g.cache.groups[testGroup]; gv != nil {
		t.Fatalf("after Forget the cache holds %d keys of the group", len(gv.m))
	}
}

// TestValueCacheIsBounded fills the cache past its bound, with large
// values of one group and with small ones of 100,000 groups.
func TestValueCacheIsBounded(t *testing.T) {
	c := newValueCache()
	v := make([]byte, valueCacheMaxValue)
	for i := range 2 * valueCacheBytes / valueCacheMaxValue {
		c.put(1, fmt.Appendf(nil, "k%d", i), cachedValue{version: 1, value: v, found: true})
	}
	check := func() {
		t.Helper()
		if c.bytes > valueCacheBytes || c.bytes < valueCacheBytes/2 {
			t.Fatalf("the cache holds %d bytes, bound %d", c.bytes, valueCacheBytes)
		}
	}
	check()
	c.put(1, []byte("big"), cachedValue{value: make([]byte, valueCacheMaxValue+1), found: true})
	if _, ok := c.get(1, []byte("big")); ok {
		t.Fatal("a value above the bound was cached")
	}
	for g := range uint64(100000) {
		c.put(g+2, []byte("k"), cachedValue{version: 1, value: []byte("v"), found: true})
	}
	check()
}
