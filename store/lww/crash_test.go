package lww

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/testseed"
)

// TestCrashKeepsAcknowledgedWrites crashes a store (keeping only what was
// synced, plus a random part of the rest) while writers run, and checks
// that every write acknowledged before the crash survives, that the
// restarted clock stamps after all of them, and that digests rebuilt from
// what survived match the records.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	seed := testseed.For(t, 24)
	rng := rand.New(rand.NewPCG(seed, 3))

	mem := vfs.NewCrashableMem()
	open := func(fs vfs.FS, physical func() int64) (*pebble.DB, *hlc.Clock, *Engine) {
		db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietPebble{}})
		if err != nil {
			t.Fatal(err)
		}
		upper, err := loadClockBound(db)
		if err != nil {
			t.Fatal(err)
		}
		clock, err := hlc.New(hlc.Config{StoreID: 1, Physical: physical, Persisted: upper, Persist: persistClockBound(db)})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(Config{StoreID: 1, DB: db, Clock: clock, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return db, clock, e
	}
	var ft fakeTime
	db, _, e := open(mem, ft.now)

	var (
		mu    sync.Mutex
		acked = map[string]*storepb.LWWRecord{}
		ops   int
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-k%d", w, i%50)
				var ts hlc.Timestamp
				var err error
				del := i%4 == 3
				if del {
					ts, err = e.Delete(context.Background(), "ns", []byte(key))
				} else {
					ts, err = e.Put(context.Background(), "ns", []byte(key), fmt.Appendf(nil, "v%d", i))
				}
				if err != nil {
					return // the engine closed under us
				}
				r := &storepb.LWWRecord{Key: []byte(key), Ts: ts.ToProto(), Tombstone: del}
				if !del {
					r.Value = fmt.Appendf(nil, "v%d", i)
				}
				mu.Lock()
				acked[key] = r
				ops++
				mu.Unlock()
			}
		}()
	}
	// Unsynced merges may or may not survive; they must not break anything.
	for i := range 100 {
		if _, err := e.Merge("ns", []*storepb.LWWRecord{rec(fmt.Sprint("unsynced", i), "u", ft.now(), 0, 2)}, false); err != nil {
			t.Fatal(err)
		}
	}
	// Crash at some point while the writers run.
	eventually(t, replicateBound, func() error {
		mu.Lock()
		defer mu.Unlock()
		if ops < 2000 {
			return fmt.Errorf("%d writes so far", ops)
		}
		return nil
	})

	// Everything acknowledged so far was synced before it was acknowledged.
	mu.Lock()
	want := make(map[string]*storepb.LWWRecord, len(acked))
	for k, r := range acked {
		want[k] = r
	}
	mu.Unlock()
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
	close(stop)
	wg.Wait()
	e.Close()
	db.Close()

	// Restart on what the crash left, with the physical clock 10s behind.
	ft.advance(-10 * time.Second)
	db2, clock2, e2 := open(crashed, ft.now)
	defer db2.Close()
	defer e2.Close()
	var newest hlc.Timestamp
	for key, w := range want {
		got, _, err := e2.Get("ns", []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || Newer(w, got) {
			t.Fatalf("%s: acknowledged %s, after the crash %v", key, recString(w), got)
		}
		if ts := hlc.FromProto(w.Ts); newest.Less(ts) {
			newest = ts
		}
	}
	if len(want) < 100 {
		t.Fatalf("only %d writes acknowledged before the crash", len(want))
	}
	ts, err := clock2.Now()
	if err != nil {
		t.Fatal(err)
	}
	if !newest.Less(ts) {
		t.Fatalf("restarted clock stamped %v, not after the acknowledged %v", ts, newest)
	}
	// Digests match the surviving records (compare with a second rebuild
	// after more writes through the incremental path).
	if _, err := e2.Put(context.Background(), "ns", []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	d := e2.Digests("ns")
	e3, err := New(Config{StoreID: 1, DB: db2, Clock: clock2})
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	if got := e3.Digests("ns"); fmt.Sprint(got) != fmt.Sprint(d) {
		t.Fatal("incremental digests differ from a rebuild")
	}
	t.Logf("%d acknowledged writes survived the crash", len(want))
}
