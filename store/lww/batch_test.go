package lww

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
)

func kvs(pairs ...string) []KV {
	var out []KV
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, KV{Key: []byte(pairs[i]), Value: []byte(pairs[i+1])})
	}
	return out
}

// TestPutBatchLocal: a batch is stamped with consecutive timestamps in the
// order of its pairs, a key given twice keeps its last value, GetMany reads
// it back in the order asked, DeleteBatch removes keys, an empty batch
// writes nothing, and a bad key anywhere writes nothing at all.
func TestPutBatchLocal(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	before := put(t, s.eng, "ns", "a", "old")
	first, last, err := s.eng.PutBatch(ctx, "ns", kvs("a", "1", "b", "2", "a", "3", "c", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !before.Less(first) || last.Wall != first.Wall || last.Logical != first.Logical+3 || last.StoreID != 1 {
		t.Fatalf("timestamps %v .. %v after %v: want 4 consecutive ones", first, last, before)
	}
	recs, err := s.eng.GetMany("ns", [][]byte{[]byte("c"), []byte("a"), []byte("zz"), []byte("b"), []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		value string
		ts    hlc.Timestamp
	}{{"", last}, {"3", hlc.Timestamp{Wall: first.Wall, Logical: first.Logical + 2, StoreID: 1}}, {}, {"2", hlc.Timestamp{Wall: first.Wall, Logical: first.Logical + 1, StoreID: 1}}, {"3", hlc.Timestamp{Wall: first.Wall, Logical: first.Logical + 2, StoreID: 1}}}
	for i, w := range want {
		r := recs[i]
		if w.ts.IsZero() {
			if r != nil {
				t.Fatalf("entry %d: %s, want none", i, recString(r))
			}
			continue
		}
		if r == nil || string(r.Value) != w.value || hlc.FromProto(r.Ts) != w.ts || r.Tombstone {
			t.Fatalf("entry %d: %v, want %q at %v", i, r, w.value, w.ts)
		}
	}

	dfirst, dlast, err := s.eng.DeleteBatch(ctx, "ns", [][]byte{[]byte("a"), []byte("never")})
	if err != nil || !last.Less(dfirst) || dlast.Logical != dfirst.Logical+1 {
		t.Fatalf("DeleteBatch = %v, %v, %v", dfirst, dlast, err)
	}
	if _, found := s.get("ns", "a"); found {
		t.Fatal("a deleted key is still live")
	}
	if r, _ := s.get("ns", "never"); r == nil || !r.Tombstone {
		t.Fatalf("a key deleted without a value holds %v, want a tombstone", r)
	}

	snapshot := s.dump("ns")
	if f, l, err := s.eng.PutBatch(ctx, "ns", nil); err != nil || !f.IsZero() || !l.IsZero() {
		t.Fatalf("empty batch = %v, %v, %v", f, l, err)
	}
	for _, bad := range [][]KV{
		kvs("x", "1", "", "2"),
		append(kvs("x", "1"), KV{Key: []byte(strings.Repeat("k", api.MaxKeyBytes+1))}),
		append(kvs("x", "1"), KV{Key: []byte("y"), Value: make([]byte, api.MaxValueBytes+1)}),
		make([]KV, api.MaxBatchKeys+1),
	} {
		if _, _, err := s.eng.PutBatch(ctx, "ns", bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad batch: %v, want ErrInvalid", err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.eng.PutBatch(cancelled, "ns", kvs("x", "1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled batch: %v", err)
	}
	if err := sameRecords(snapshot, s.dump("ns")); err != nil {
		t.Fatalf("a refused batch wrote something: %v", err)
	}
}

// TestBatchPushedAsOneUnit: a batch reaches each peer as one unit applied
// in one pebble batch, so readers on a peer see all of it or none of it,
// however small the peers' push batches are. Anti-entropy is off (an hour):
// only pushes deliver.
func TestBatchPushedAsOneUnit(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.AntiEntropyInterval = time.Hour
		cfg.MaxBatch = 8 // without units, a batch would travel in pieces of 8
	})
	waitPeersUp(t, c)
	const keys, rounds = 300, 30 // more keys than one merge chunk (applyChunk)
	keyList := make([][]byte, keys)
	for i := range keyList {
		keyList[i] = fmt.Appendf(nil, "k%03d", i)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var torn []string
	for _, id := range []uint64{2, 3} {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				recs, err := c.eng(id).GetMany("ns", keyList)
				if err != nil {
					t.Error(err)
					return
				}
				if v := mixed(recs); v != "" {
					mu.Lock()
					torn = append(torn, fmt.Sprintf("store %d: %s", id, v))
					mu.Unlock()
				}
			}
		})
	}
	for r := range rounds {
		batch := make([]KV, keys)
		for i := range batch {
			batch[i] = KV{Key: keyList[i], Value: fmt.Appendf(nil, "round-%d", r)}
		}
		if _, _, err := c.eng(1).PutBatch(context.Background(), "ns", batch); err != nil {
			t.Fatal(err)
		}
		// A stretch of single writes between batches shares the pushes.
		put(t, c.eng(1), "ns", fmt.Sprintf("single-%d", r), "x")
	}
	c.waitValue(replicateBound, "ns", "k000", fmt.Sprintf("round-%d", rounds-1), 2, 3)
	close(done)
	wg.Wait()
	if len(torn) > 0 {
		t.Fatalf("readers saw %d torn batches, the first: %s", len(torn), torn[0])
	}
	eventually(t, replicateBound, func() error { return c.converged("ns") })
	for _, id := range c.ids {
		if st := c.eng(id).Stats(); st.Dropped != 0 {
			t.Errorf("store %d dropped %d records with every peer up", id, st.Dropped)
		}
	}
}

// mixed describes recs if they are not all absent or all equal.
func mixed(recs []*storepb.LWWRecord) string {
	val := func(r *storepb.LWWRecord) string {
		if r == nil {
			return "<none>"
		}
		return string(r.Value)
	}
	for _, r := range recs[1:] {
		if val(r) != val(recs[0]) {
			return fmt.Sprintf("%q beside %q", val(recs[0]), val(r))
		}
	}
	return ""
}

// TestUnitRefusedWhole: a pushed unit is applied whole or not at all: one
// record too far ahead of the clock refuses every record of the unit
// (while the same records sent as ordinary records are taken one by one),
// and a unit larger than a batch may be is refused as malformed.
func TestUnitRefusedWhole(t *testing.T) {
	s := newSolo(t, 1, nil)
	now := s.time.now()
	ahead := now + int64(2*time.Second) // the max offset is 500ms
	push := func(b *storepb.ReplicateBatch) error {
		return s.eng.HandleReplicate(&batchStream{batches: []*storepb.ReplicateBatch{b}})
	}
	unit := func(recs ...*storepb.LWWRecord) *storepb.ReplicateBatch {
		return &storepb.ReplicateBatch{FromStore: 2, Namespaces: []*storepb.NamespaceRecords{{Namespace: "ns", Records: recs, Unit: true}}}
	}
	if err := push(unit(rec("u1", "v", now, 0, 2), rec("u2", "v", ahead, 0, 2))); err != nil {
		t.Fatal(err)
	}
	if _, found := s.get("ns", "u1"); found {
		t.Fatal("part of a refused unit was applied")
	}
	if st := s.eng.Stats(); st.Refused != 2 {
		t.Fatalf("Refused = %d, want the unit's 2 records", st.Refused)
	}
	if err := push(unit(rec("u1", "v", now, 0, 2), rec("u2", "v", now, 1, 2))); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"u1", "u2"} {
		if _, found := s.get("ns", k); !found {
			t.Fatalf("%s of a unit within the offset not applied", k)
		}
	}
	big := make([]*storepb.LWWRecord, api.MaxBatchKeys+1)
	for i := range big {
		big[i] = rec(fmt.Sprintf("big%d", i), "v", now, uint32(i), 2)
	}
	if err := push(unit(big...)); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a unit of %d records: %v, want InvalidArgument", len(big), err)
	}
	if _, found := s.get("ns", "big0"); found {
		t.Fatal("an oversize unit was applied")
	}
}
