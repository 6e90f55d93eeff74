package lww

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/testseed"
)

// solo is one engine with no peers, not started.
type solo struct {
	t     *testing.T
	dir   string
	time  *fakeTime
	clock *hlc.Clock
	db    *pebble.DB
	eng   *Engine
	tune  func(*Config)
}

func newSolo(t *testing.T, id uint64, tune func(*Config)) *solo {
	s := &solo{t: t, dir: t.TempDir(), time: &fakeTime{}, tune: tune}
	s.open(id)
	t.Cleanup(func() {
		s.eng.Close()
		s.db.Close()
	})
	return s
}

func (s *solo) open(id uint64) {
	t := s.t
	db := openDB(t, s.dir)
	upper, err := loadClockBound(db)
	if err != nil {
		t.Fatal(err)
	}
	s.clock, err = hlc.New(hlc.Config{StoreID: id, Physical: s.time.now, Persisted: upper, Persist: persistClockBound(db)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{StoreID: id, DB: db, Clock: s.clock, Logger: testLogger(t)}
	if s.tune != nil {
		s.tune(&cfg)
	}
	s.eng, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.db = db
}

func (s *solo) reopen(id uint64) {
	if err := s.eng.Close(); err != nil {
		s.t.Fatal(err)
	}
	if err := s.db.Close(); err != nil {
		s.t.Fatal(err)
	}
	s.open(id)
}

func (s *solo) get(ns, key string) (*storepb.LWWRecord, bool) {
	s.t.Helper()
	r, found, err := s.eng.Get(ns, []byte(key))
	if err != nil {
		s.t.Fatal(err)
	}
	return r, found
}

func (s *solo) merge(ns string, recs ...*storepb.LWWRecord) int {
	s.t.Helper()
	n, err := s.eng.Merge(ns, recs, true)
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

func (s *solo) dump(ns string) []*storepb.LWWRecord {
	s.t.Helper()
	var all []*storepb.LWWRecord
	if err := s.eng.Dump(ns, func(recs []*storepb.LWWRecord) error { all = append(all, recs...); return nil }); err != nil {
		s.t.Fatal(err)
	}
	return all
}

func TestPutGetDeleteScan(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	for i := range 10 {
		if _, err := s.eng.Put(ctx, "ns", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Another namespace whose name extends this one's stays apart.
	if _, err := s.eng.Put(ctx, "ns2", []byte("k00"), []byte("other")); err != nil {
		t.Fatal(err)
	}
	ts1, err := s.eng.Put(ctx, "ns", []byte("k03"), []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if r, found := s.get("ns", "k03"); !found || string(r.Value) != "new" || hlc.FromProto(r.Ts) != ts1 {
		t.Fatalf("Get after overwrite: %v %v", r, found)
	}
	tsDel, err := s.eng.Delete(ctx, "ns", []byte("k05"))
	if err != nil {
		t.Fatal(err)
	}
	if !ts1.Less(tsDel) {
		t.Fatalf("delete stamped %v, not after %v", tsDel, ts1)
	}
	if r, found := s.get("ns", "k05"); found || r == nil || !r.Tombstone || hlc.FromProto(r.Ts) != tsDel {
		t.Fatalf("Get of a deleted key: %v %v", r, found)
	}
	if r, found := s.get("ns", "nope"); found || r != nil {
		t.Fatalf("Get of a missing key: %v %v", r, found)
	}

	keysOf := func(recs []*storepb.LWWRecord) []string {
		var out []string
		for _, r := range recs {
			out = append(out, string(r.Key))
		}
		return out
	}
	tests := []struct {
		start, end string
		limit      int
		want       []string
		more       bool
	}{
		{"", "", 0, []string{"k00", "k01", "k02", "k03", "k04", "k06", "k07", "k08", "k09"}, false},
		{"", "", 3, []string{"k00", "k01", "k02"}, true},
		{"k04", "k07", 0, []string{"k04", "k06"}, false},
		{"k04", "k07", 1, []string{"k04"}, true},
		{"k04", "k06", 1, []string{"k04"}, false}, // only a tombstone follows
		{"k09", "", 5, []string{"k09"}, false},
		{"k07", "k02", 5, nil, false},
	}
	for _, tt := range tests {
		recs, more, err := s.eng.Scan("ns", []byte(tt.start), []byte(tt.end), tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(recs); !slices.Equal(got, tt.want) || more != tt.more {
			t.Errorf("Scan(%q, %q, %d) = %v, %v; want %v, %v", tt.start, tt.end, tt.limit, got, more, tt.want, tt.more)
		}
	}
	// Dump includes the tombstone and nothing of ns2.
	if got := keysOf(s.dump("ns")); len(got) != 10 || got[5] != "k05" {
		t.Fatalf("Dump = %v", got)
	}
}

func TestLocalValidation(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"bad namespace": func() error { _, err := s.eng.Put(ctx, "Bad/NS", []byte("k"), nil); return err },
		"empty key":     func() error { _, err := s.eng.Put(ctx, "ns", nil, nil); return err },
		"long key":      func() error { _, err := s.eng.Delete(ctx, "ns", make([]byte, api.MaxKeyBytes+1)); return err },
		"big value": func() error {
			_, err := s.eng.Put(ctx, "ns", []byte("k"), make([]byte, api.MaxValueBytes+1))
			return err
		},
		"merge no ts":   func() error { _, err := s.eng.Merge("ns", []*storepb.LWWRecord{{Key: []byte("k")}}, true); return err },
		"replace no ts": func() error { return replaceNow(s.eng, "ns", hlc.Timestamp{}, nil) },
	} {
		if err := call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.eng.Put(cctx, "ns", []byte("k"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: %v", err)
	}
}

func TestMergeTies(t *testing.T) {
	s := newSolo(t, 9, nil)
	now := s.time.now()
	// The greater store id wins at an equal wall and logical time, in
	// either order of arrival.
	s.merge("ns", rec("a", "from2", now, 1, 2))
	if n := s.merge("ns", rec("a", "from3", now, 1, 3)); n != 1 {
		t.Fatalf("greater store id not applied")
	}
	if n := s.merge("ns", rec("a", "from2", now, 1, 2)); n != 0 {
		t.Fatalf("smaller store id applied")
	}
	if r, _ := s.get("ns", "a"); string(r.Value) != "from3" {
		t.Fatalf("a = %q", r.Value)
	}
	// A tombstone wins an exact tie, in either order.
	s.merge("ns", rec("b", "v", now, 2, 4))
	if n := s.merge("ns", tomb("b", now, 2, 4)); n != 1 {
		t.Fatal("tombstone lost an exact tie")
	}
	s.merge("ns", tomb("c", now, 2, 4))
	if n := s.merge("ns", rec("c", "v", now, 2, 4)); n != 0 {
		t.Fatal("value won an exact tie against a tombstone")
	}
	for _, k := range []string{"b", "c"} {
		if r, found := s.get("ns", k); found || !r.Tombstone {
			t.Fatalf("%s: %v", k, r)
		}
	}
	// Identical records change nothing.
	if n := s.merge("ns", rec("a", "from3", now, 1, 3)); n != 0 {
		t.Fatal("identical record applied")
	}
	// Within one call, the newest version of a key wins whatever the order.
	if n := s.merge("ns", rec("d", "new", now, 9, 1), rec("d", "old", now, 8, 1)); n != 1 {
		t.Fatalf("applied %d", n)
	}
	if r, _ := s.get("ns", "d"); string(r.Value) != "new" {
		t.Fatalf("d = %q", r.Value)
	}
}

func TestMergeOutOfOrder(t *testing.T) {
	seed := testseed.For(t, 232)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	a, b := newSolo(t, 1, nil), newSolo(t, 2, nil)
	now := a.time.now()
	// Versions of 20 keys from 3 stores with colliding times, tombstones
	// included.
	var versions []*storepb.LWWRecord
	for k := range 20 {
		for range 6 {
			key := fmt.Sprintf("k%d", k)
			wall, logical, store := now+int64(rng.IntN(3)), uint32(rng.IntN(2)), uint64(1+rng.IntN(3))
			if rng.IntN(3) == 0 {
				versions = append(versions, tomb(key, wall, logical, store))
			} else {
				versions = append(versions, rec(key, fmt.Sprintf("v%d", rng.IntN(1000)), wall, logical, store))
			}
		}
	}
	for round := range 5 {
		pa, pb := slices.Clone(versions), slices.Clone(versions)
		rng.Shuffle(len(pa), func(i, j int) { pa[i], pa[j] = pa[j], pa[i] })
		rng.Shuffle(len(pb), func(i, j int) { pb[i], pb[j] = pb[j], pb[i] })
		// a gets them one by one, b in random chunks.
		for _, r := range pa {
			a.merge("ns", r)
		}
		for len(pb) > 0 {
			n := 1 + rng.IntN(len(pb))
			b.merge("ns", pb[:n]...)
			pb = pb[n:]
		}
		if err := sameRecords(a.dump("ns"), b.dump("ns")); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !slices.Equal(a.eng.Digests("ns"), b.eng.Digests("ns")) {
			t.Fatalf("round %d: same records, different digests", round)
		}
	}
	// Each key holds its newest version.
	for _, got := range a.dump("ns") {
		for _, v := range versions {
			if string(v.Key) == string(got.Key) && Newer(v, got) {
				t.Fatalf("%s lost to %s", recString(v), recString(got))
			}
		}
	}
}

func TestMergeRefusesClockSkew(t *testing.T) {
	s := newSolo(t, 1, nil)
	ahead := s.time.now() + int64(2*time.Second) // the max offset is 500ms
	n := s.merge("ns", rec("far", "x", ahead, 0, 2), rec("near", "y", s.time.now(), 0, 2))
	if n != 1 {
		t.Fatalf("applied %d, want 1", n)
	}
	if _, found := s.get("ns", "far"); found {
		t.Fatal("a record too far ahead was applied")
	}
	if _, found := s.get("ns", "near"); !found {
		t.Fatal("the record within the offset was not applied")
	}
	if st := s.eng.Stats(); st.Refused != 1 {
		t.Fatalf("Refused = %d", st.Refused)
	}
	// The refused timestamp did not move the clock.
	ts, err := s.clock.Now()
	if err != nil {
		t.Fatal(err)
	}
	if ts.Wall >= ahead {
		t.Fatalf("clock moved to %v", ts)
	}
	// Once the physical clock catches up, the same record is accepted.
	s.time.advance(2 * time.Second)
	if n := s.merge("ns", rec("far", "x", ahead, 0, 2)); n != 1 {
		t.Fatal("record refused after the clock caught up")
	}
	// And a local write after it is stamped after it.
	ts, err = s.eng.Put(context.Background(), "ns", []byte("far"), []byte("local"))
	if err != nil {
		t.Fatal(err)
	}
	if ts.Wall < ahead {
		t.Fatalf("local write %v not after the merged record", ts)
	}
	if r, _ := s.get("ns", "far"); string(r.Value) != "local" {
		t.Fatalf("far = %q", r.Value)
	}
}

func TestDigestsRebuiltOnRestart(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	var last hlc.Timestamp
	for i := range 200 {
		k := fmt.Appendf(nil, "k%d", i%50)
		var err error
		if i%7 == 0 {
			last, err = s.eng.Delete(ctx, "ns", k)
		} else {
			last, err = s.eng.Put(ctx, "ns", k, fmt.Appendf(nil, "v%d", i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.merge("other", rec("x", "y", s.time.now(), 0, 5))
	want, wantOther := s.eng.Digests("ns"), s.eng.Digests("other")
	if slices.Equal(want, make([]uint64, NumBuckets)) {
		t.Fatal("digests are empty")
	}
	// Restart with the physical clock ten seconds behind.
	s.time.advance(-10 * time.Second)
	s.reopen(1)
	if got := s.eng.Digests("ns"); !slices.Equal(got, want) {
		t.Fatal("digests rebuilt from the DB differ from the incremental ones")
	}
	if got := s.eng.Digests("other"); !slices.Equal(got, wantOther) {
		t.Fatal("digests of the second namespace differ")
	}
	ts, err := s.eng.Put(ctx, "ns", []byte("k1"), []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if !last.Less(ts) {
		t.Fatalf("after restart stamped %v, not after %v", ts, last)
	}
}

func TestReplaceLocal(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.eng.Put(ctx, "ns", []byte(k), []byte("old-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := s.clock.Now()
	if err != nil {
		t.Fatal(err)
	}
	// A write newer than the replace timestamp (accepted elsewhere after
	// the switch) survives it.
	newer := rec("d", "newer", ts.Wall+1, 0, 7)
	s.merge("ns", newer)
	kvs := []KV{{Key: []byte("b"), Value: []byte("B")}, {Key: []byte("x"), Value: []byte("X")}}
	if err := replaceNow(s.eng, "ns", ts, kvs); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.eng.Scan("ns", nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, recString(r))
	}
	want := []string{
		recString(rec("b", "B", ts.Wall, ts.Logical, ts.StoreID)),
		recString(newer),
		recString(rec("x", "X", ts.Wall, ts.Logical, ts.StoreID)),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after Replace: %v, want %v", got, want)
	}
	before := s.dump("ns")
	digest := s.eng.Digests("ns")
	if err := replaceNow(s.eng, "ns", ts, kvs); err != nil {
		t.Fatal(err)
	}
	if err := sameRecords(before, s.dump("ns")); err != nil {
		t.Fatalf("Replace is not idempotent: %v", err)
	}
	if !slices.Equal(digest, s.eng.Digests("ns")) {
		t.Fatal("second Replace changed the digests")
	}
}

func TestDrop(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	for _, ns := range []string{"a", "b"} {
		if _, err := s.eng.Put(ctx, ns, []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.eng.Drop("a"); err != nil {
		t.Fatal(err)
	}
	if got := s.dump("a"); len(got) != 0 {
		t.Fatalf("after Drop: %v", got)
	}
	if !slices.Equal(s.eng.Digests("a"), make([]uint64, NumBuckets)) {
		t.Fatal("digests not cleared")
	}
	if _, found := s.get("b", "k"); !found {
		t.Fatal("Drop removed another namespace")
	}
}

func TestClosedEngine(t *testing.T) {
	s := newSolo(t, 1, nil)
	s.eng.Start()
	if err := s.eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.eng.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.eng.Put(context.Background(), "ns", []byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, _, err := s.eng.Get("ns", []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := s.eng.HandleDigest(context.Background(), &storepb.DigestRequest{Namespace: "ns"}); err == nil {
		t.Fatal("HandleDigest after Close succeeded")
	}
	s.eng.PeerUp(2) // a no-op, not a panic
}

func TestDumpBatches(t *testing.T) {
	s := newSolo(t, 1, func(cfg *Config) { cfg.MaxBatch = 3 })
	for i := range 10 {
		s.merge("ns", rec(fmt.Sprint("k", i), "v", s.time.now(), 0, 2))
	}
	s.merge("ns", tomb("k3", s.time.now(), 1, 2))
	var sizes []int
	var n int
	if err := s.eng.Dump("ns", func(recs []*storepb.LWWRecord) error {
		sizes = append(sizes, len(recs))
		n += len(recs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{3, 3, 3, 1}) {
		t.Fatalf("batches of %v", sizes)
	}
	stop := errors.New("stop here")
	if err := s.eng.Dump("ns", func([]*storepb.LWWRecord) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Dump returned %v, want fn's error", err)
	}
}

func TestCloseDoesNotWaitForSlowDump(t *testing.T) {
	s := newSolo(t, 1, func(cfg *Config) { cfg.MaxBatch = 2 })
	for i := range 5 {
		s.merge("ns", rec(fmt.Sprint("k", i), "v", s.time.now(), 0, 2))
	}
	inFn := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- s.eng.Dump("ns", func([]*storepb.LWWRecord) error {
			if first {
				first = false
				close(inFn)
				<-release
			}
			return nil
		})
	}()
	<-inFn
	closed := make(chan struct{})
	go func() {
		s.eng.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a Dump blocked in fn")
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Dump after Close: %v, want ErrClosed", err)
	}
}

// replaceNow stages a replace in a batch of its own and commits it, synced:
// what a fence does inside its apply batch.
func replaceNow(e *Engine, ns string, ts hlc.Timestamp, kvs []KV) error {
	b := e.db.NewIndexedBatch()
	defer b.Close()
	done, err := e.StageReplace(b, ns, ts, kvs)
	if err != nil {
		return err
	}
	err = b.Commit(pebble.Sync)
	done(err == nil)
	return err
}

// TestReplacesNestInOneBatch: two replaces of a namespace staged in one
// batch (a log with two fences of it, applied in one round after a
// restart) do not wait on each other: the second stages over the first,
// the namespace is released by the last done, and the records and digests
// are those of the second.
func TestReplacesNestInOneBatch(t *testing.T) {
	s := newSolo(t, 1, nil)
	ctx := context.Background()
	if _, err := s.eng.Put(ctx, "ns", []byte("a"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	ts1, err := s.clock.Now()
	if err != nil {
		t.Fatal(err)
	}
	ts2 := ts1
	ts2.Logical++
	b := s.db.NewIndexedBatch()
	defer b.Close()
	staged := make(chan func(bool), 2)
	go func() {
		for _, st := range []struct {
			ts  hlc.Timestamp
			kvs []KV
		}{{ts1, []KV{{Key: []byte("b"), Value: []byte("1")}}}, {ts2, []KV{{Key: []byte("c"), Value: []byte("2")}}}} {
			done, err := s.eng.StageReplace(b, "ns", st.ts, st.kvs)
			if err != nil {
				t.Error(err)
				close(staged)
				return
			}
			staged <- done
		}
	}()
	var dones []func(bool)
	for range 2 {
		select {
		case done, ok := <-staged:
			if !ok {
				t.FailNow()
			}
			dones = append(dones, done)
		case <-time.After(10 * time.Second):
			// Release the first, so that the second (then done) and the
			// engine's close do not wait for ever.
			dones[0](false)
			if done, ok := <-staged; ok {
				done(false)
			}
			t.Fatal("the second replace of the namespace in one batch waits for the first")
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	dones[0](true)
	// Still held by the second replace: a write waits.
	wrote := make(chan error, 1)
	go func() {
		_, err := s.eng.Put(ctx, "ns", []byte("d"), []byte("after"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("a write went through while a replace still held the namespace (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	dones[1](true)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	want := []string{
		recString(tomb("a", ts2.Wall, ts2.Logical, ts2.StoreID)),
		recString(tomb("b", ts2.Wall, ts2.Logical, ts2.StoreID)),
		recString(rec("c", "2", ts2.Wall, ts2.Logical, ts2.StoreID)),
	}
	var got []string
	for _, r := range s.dump("ns") {
		if string(r.Key) != "d" {
			got = append(got, recString(r))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after two replaces: %v, want %v", got, want)
	}
	if !equalDigests(s.eng.Digests("ns"), digestsOf(s.dump("ns"))) {
		t.Fatal("the digests are not those of the records after two replaces")
	}
}
