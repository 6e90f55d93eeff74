package lww

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/testseed"
)

// TestDigestsBefore: the digests at a cutoff cover exactly the records
// that were current at the cutoff (for each key, the newest version
// applied with a wall time below it), whatever was folded, overwritten or
// collected since; a cutoff older than the slices kept apart gives every
// record as it is now, and says so.
func TestDigestsBefore(t *testing.T) {
	seed := testseed.For(t, 20261203)
	rng := rand.New(rand.NewPCG(seed, 1))
	base := int64(1_700_000_000) * int64(time.Second)
	var st nsState
	// Each key's events in the order applied: a version, or the collection
	// of the tombstone before it (gone: true, at the tombstone's time).
	type event struct {
		r    record
		gone bool
	}
	history := make(map[string][]event)
	var newest int64
	for i := range 20000 {
		key := fmt.Sprintf("k%d", rng.IntN(500))
		// Mostly recent wall times, some far in the past (a repair).
		wall := base + int64(i)*int64(2*time.Millisecond) - rng.Int64N(int64(2*time.Second))
		if rng.IntN(20) == 0 {
			wall = base - rng.Int64N(int64(time.Hour))
		}
		r := record{ts: hlc.Timestamp{Wall: wall, Logical: uint32(i), StoreID: 1}, tombstone: rng.IntN(5) == 0}
		h := history[key]
		var old *record
		if len(h) > 0 {
			last := h[len(h)-1]
			if compareRecords(r, last.r) <= 0 {
				continue // the engine applies only newer records
			}
			if !last.gone {
				old = &last.r
			}
		}
		newest = max(newest, wall)
		st.change([]byte(key), old, &r)
		h = append(h, event{r: r})
		// Now and then a tombstone is collected: the key is gone.
		if r.tombstone && rng.IntN(10) == 0 {
			st.change([]byte(key), &r, nil)
			h = append(h, event{r: r, gone: true})
		}
		history[key] = h
	}
	want := func(before int64) []uint64 {
		out := make([]uint64, NumBuckets)
		for k, h := range history {
			var cur *event
			for i := range h {
				if before == 0 || h[i].r.ts.Wall < before {
					cur = &h[i]
				}
			}
			if cur != nil && !cur.gone {
				out[bucketOf([]byte(k))] ^= recordHash([]byte(k), cur.r.ts, cur.r.tombstone)
			}
		}
		return out
	}
	if got := st.digests(); !slices.Equal(got, want(0)) {
		t.Fatal("digests of every record differ from the records")
	}
	for _, back := range []time.Duration{0, 300 * time.Millisecond, time.Second, 5 * time.Second, 10 * time.Second} {
		before := (newest - int64(back)) / EpochNanos * EpochNanos
		got, cut := st.digestsBefore(newest - int64(back))
		if cut != before {
			t.Fatalf("%v back: cutoff %d, want %d", back, cut, before)
		}
		if !slices.Equal(got, want(before)) {
			t.Errorf("%v back: digests differ from the records current at the cutoff", back)
		}
	}
	tooOld := newest - int64(2*MaxSettle) - int64(time.Minute)
	if got, cut := st.digestsBefore(tooOld); cut != 0 || !slices.Equal(got, want(0)) {
		t.Errorf("cutoff older than the slices kept: cut %d, want 0 and every record", cut)
	}
	if got, cut := st.digestsBefore(0); cut != 0 || !slices.Equal(got, want(0)) {
		t.Errorf("zero cutoff: cut %d, want 0 and every record", cut)
	}
	if n := len(st.recent); n > recentEpochs+1 {
		t.Errorf("%d slices kept apart, want at most %d", n, recentEpochs+1)
	}
}

// TestDigestsAgreeWhileAPushIsInFlight: a store that has overwritten keys
// and one that has not received the overwrites yet agree on the digests
// as of a cutoff before the overwrites, and disagree after it.
func TestDigestsAgreeWhileAPushIsInFlight(t *testing.T) {
	base := int64(1_700_000_000) * int64(time.Second)
	var a, b nsState
	for i := range 100 {
		r := record{ts: hlc.Timestamp{Wall: base + int64(i)*int64(time.Millisecond), StoreID: 1}}
		a.change(fmt.Appendf(nil, "k%d", i), nil, &r)
		b.change(fmt.Appendf(nil, "k%d", i), nil, &r)
	}
	later := base + int64(10*time.Second)
	for i := range 10 {
		old := record{ts: hlc.Timestamp{Wall: base + int64(i)*int64(time.Millisecond), StoreID: 1}}
		r := record{ts: hlc.Timestamp{Wall: later, Logical: uint32(i), StoreID: 2}, tombstone: i%2 == 0}
		a.change(fmt.Appendf(nil, "k%d", i), &old, &r)
	}
	da, _ := a.digestsBefore(later - int64(time.Second))
	db, _ := b.digestsBefore(later - int64(time.Second))
	if !slices.Equal(da, db) {
		t.Error("digests before the overwrites differ")
	}
	da, _ = a.digestsBefore(later + int64(time.Second))
	db, _ = b.digestsBefore(later + int64(time.Second))
	if slices.Equal(da, db) {
		t.Error("digests after the overwrites agree, but only one store has them")
	}
}

// TestDigestsConcurrent: writers in many goroutines leave the digests
// equal to those of the final records (run with -race).
func TestDigestsConcurrent(t *testing.T) {
	var st nsState
	var wg sync.WaitGroup
	now := time.Now().UnixNano()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r := record{ts: hlc.Timestamp{Wall: now + int64(i)*int64(time.Millisecond), StoreID: uint64(g + 1)}}
				st.change(fmt.Appendf(nil, "g%d-%d", g, i), nil, &r)
			}
		}()
	}
	wg.Wait()
	var want [NumBuckets]uint64
	for g := range 8 {
		for i := range 500 {
			k := fmt.Appendf(nil, "g%d-%d", g, i)
			want[bucketOf(k)] ^= recordHash(k, hlc.Timestamp{Wall: now + int64(i)*int64(time.Millisecond), StoreID: uint64(g + 1)}, false)
		}
	}
	if !slices.Equal(st.digests(), want[:]) {
		t.Error("digests differ from the records written")
	}
}

// TestSteadyWritesNeedNoRepair: under steady writes and overwrites of the
// same keys on every store, with every link up, periodic anti-entropy
// rounds run but send (almost) no records, because they compare the
// records as they stood before the writes still being pushed.
func TestSteadyWritesNeedNoRepair(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.AntiEntropyInterval = 100 * time.Millisecond
		cfg.AntiEntropySettle = 2 * time.Second
	})
	waitPeersUp(t, c)
	rounds0 := c.eng(1).Stats().AntiEntropyRounds
	writes := 0
	// Write for two seconds and at least five rounds, within a bound.
	for start := time.Now(); time.Since(start) < 2*time.Second || c.eng(1).Stats().AntiEntropyRounds < rounds0+5; {
		if time.Since(start) > convergeBound {
			t.Fatalf("%d anti-entropy rounds in %v", c.eng(1).Stats().AntiEntropyRounds-rounds0, convergeBound)
		}
		for _, id := range c.ids {
			// A few hundred keys, written by every store: overwrites and
			// conflicts all the time.
			put(t, c.eng(id), "ns", fmt.Sprintf("k%d", (writes*7+int(id))%300), fmt.Sprint(writes))
		}
		writes++
	}
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	sent := uint64(0)
	for _, id := range c.ids {
		sent += c.eng(id).Stats().RepairSent
	}
	t.Logf("%d writes per store, %d anti-entropy rounds on store 1, %d records sent by repair",
		writes, c.eng(1).Stats().AntiEntropyRounds-rounds0, sent)
	if sent > uint64(writes)/10 {
		t.Errorf("anti-entropy sent %d records for %d writes per store with every push delivered", sent, writes)
	}
}
