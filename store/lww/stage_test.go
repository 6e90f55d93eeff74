package lww

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
)

// TestStageReplaceWritesOnlyTheBatch: a staged replace is invisible until
// its batch commits, holds the namespace until done (a write that arrives
// meanwhile waits), updates the digests only when committed, and a dropped
// batch changes nothing.
func TestStageReplaceWritesOnlyTheBatch(t *testing.T) {
	s := newSolo(t, 1, nil)
	old := hlc.Timestamp{Wall: s.time.now() - int64(time.Minute), StoreID: 2}
	s.merge("ns", &storepb.LWWRecord{Key: []byte("gone"), Value: []byte("x"), Ts: old.ToProto()})
	before := s.eng.Digests("ns")
	ts := hlc.Timestamp{Wall: s.time.now(), StoreID: 3}
	kvs := []KV{{Key: []byte("a"), Value: []byte("va")}}

	for _, commit := range []bool{false, true} {
		b := s.db.NewIndexedBatch()
		done, err := s.eng.StageReplace(b, "ns", ts, kvs)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := s.get("ns", "a"); r != nil {
			t.Fatal("a staged record is visible before its batch commits")
		}
		// A write to the namespace waits for done.
		wrote := make(chan error, 1)
		go func() {
			_, err := s.eng.Put(context.Background(), "ns", []byte("late"), []byte("v"))
			wrote <- err
		}()
		select {
		case err := <-wrote:
			t.Fatalf("a write went through while a replace was staged: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if commit {
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}
		done(commit)
		_ = b.Close()
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		a, _ := s.get("ns", "a")
		gone, _ := s.get("ns", "gone")
		if !commit {
			if a != nil || gone.GetTombstone() {
				t.Fatalf("a dropped replace changed the records: a=%v gone=%v", a, gone)
			}
			if !equalDigests(s.eng.Digests("ns"), digestsOf(s.dump("ns"))) {
				t.Fatal("a dropped replace changed the digests")
			}
			continue
		}
		if string(a.GetValue()) != "va" || hlc.FromProto(a.GetTs()) != ts {
			t.Fatalf("a = %v after the commit", a)
		}
		if !gone.GetTombstone() || hlc.FromProto(gone.GetTs()) != ts {
			t.Fatalf("gone = %v, want a tombstone at the replace's timestamp", gone)
		}
	}
	// The digests took the committed changes: they describe the records.
	if !equalDigests(s.eng.Digests("ns"), digestsOf(s.dump("ns"))) {
		t.Fatal("digests after the staged replace differ from the records")
	}
	if equalDigests(s.eng.Digests("ns"), before) {
		t.Fatal("the digests did not change")
	}
}

func equalDigests(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// digestsOf computes bucket digests from records.
func digestsOf(recs []*storepb.LWWRecord) []uint64 {
	out := make([]uint64, NumBuckets)
	for _, r := range recs {
		out[bucketOf(r.GetKey())] ^= recordHash(r.GetKey(), hlc.FromProto(r.GetTs()), r.GetTombstone())
	}
	return out
}
