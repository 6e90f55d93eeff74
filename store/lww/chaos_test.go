package lww

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/testseed"
)

// TestRandomizedConvergence writes and deletes random keys on random
// stores while stores are partitioned, healed and restarted at random.
// Once the faults stop, with no new write, every store must hold, for each
// key, the acknowledged write with the greatest timestamp.
func TestRandomizedConvergence(t *testing.T) {
	seed := testseed.For(t, 20)
	rng := rand.New(rand.NewPCG(seed, 42))
	var rngMu sync.Mutex
	intn := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(n)
	}

	c := newCluster(t, 3, func(cfg *Config) {
		cfg.QueueBytes = 4 << 10 // small queues: some pushes overflow
		cfg.MaxMessageBytes = 8 << 10
	})
	var (
		faults sync.RWMutex // held exclusively while a store restarts
		ackMu  sync.Mutex
		newest = map[string]*storepb.LWWRecord{} // the newest acknowledged write per key
	)
	ack := func(key string, r *storepb.LWWRecord) {
		ackMu.Lock()
		defer ackMu.Unlock()
		if Newer(r, newest[key]) {
			newest[key] = r
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := uint64(1 + intn(3))
				key := fmt.Sprint("k", intn(40))
				value := fmt.Sprintf("w%d-%d", w, i)
				deleteIt := intn(5) == 0
				faults.RLock()
				e := c.eng(id)
				var ts hlc.Timestamp
				var err error
				if deleteIt {
					ts, err = e.Delete(ctx, "ns", []byte(key))
				} else {
					ts, err = e.Put(ctx, "ns", []byte(key), []byte(value))
				}
				faults.RUnlock()
				if err != nil {
					continue // not acknowledged
				}
				r := &storepb.LWWRecord{Key: []byte(key), Ts: ts.ToProto(), Tombstone: deleteIt}
				if !deleteIt {
					r.Value = []byte(value)
				}
				ack(key, r)
				time.Sleep(time.Duration(intn(2000)) * time.Microsecond)
			}
		}()
	}
	for ctx.Err() == nil {
		switch intn(4) {
		case 0:
			c.isolate(uint64(1 + intn(3)))
		case 1:
			c.heal()
		case 2:
			id := uint64(1 + intn(3))
			faults.Lock()
			c.restart(id)
			faults.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(100+intn(300)) * time.Millisecond):
		}
	}
	wg.Wait()
	c.heal()
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	ackMu.Lock()
	defer ackMu.Unlock()
	for _, id := range c.ids {
		for key, want := range newest {
			got, _, err := c.eng(id).Get("ns", []byte(key))
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || Newer(want, got) || Newer(got, want) {
				t.Fatalf("store %d: %s holds %v, want %s", id, key, got, recString(want))
			}
		}
	}
	for _, id := range c.ids {
		// A restarted clock starts ahead of physical time by at most its
		// window, which peers accept.
		if st := c.eng(id).Stats(); st.Refused != 0 {
			t.Errorf("store %d refused %d records with synchronized clocks", id, st.Refused)
		}
	}
	t.Logf("%d keys checked; store 1: %+v", len(newest), c.eng(1).Stats())
}
