package lww

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/testseed"
)

// Bounds on waiting in cluster tests: generous for a loaded 2-core CI
// machine under the race detector.
const (
	replicateBound = 10 * time.Second
	convergeBound  = 30 * time.Second
)

func put(t testing.TB, e *Engine, ns, key, value string) hlc.Timestamp {
	t.Helper()
	ts, err := e.Put(context.Background(), ns, []byte(key), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func del(t testing.TB, e *Engine, ns, key string) hlc.Timestamp {
	t.Helper()
	ts, err := e.Delete(context.Background(), ns, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// waitValue waits until every node in ids has value at key ("" = no live
// value).
func (c *cluster) waitValue(bound time.Duration, ns, key, value string, ids ...uint64) {
	c.t.Helper()
	eventually(c.t, bound, func() error {
		for _, id := range ids {
			got, found := c.valueOn(id, ns, key)
			if value == "" && found {
				return fmt.Errorf("store %d: %q = %q, want none", id, key, got)
			}
			if value != "" && got != value {
				return fmt.Errorf("store %d: %q = %q (found %v), want %q", id, key, got, found, value)
			}
		}
		return nil
	})
}

func TestReplicationThreeStores(t *testing.T) {
	// A long anti-entropy interval: only pushes can pass this test.
	c := newCluster(t, 3, func(cfg *Config) { cfg.AntiEntropyInterval = time.Hour })
	// Every store is probed and repaired once at start; wait for the
	// peers to be reachable so pushes are not dropped.
	waitPeersUp(t, c)
	put(t, c.eng(1), "ns", "a", "1")
	c.waitValue(replicateBound, "ns", "a", "1", 2, 3)
	put(t, c.eng(2), "ns", "a", "2")
	put(t, c.eng(3), "ns", "b", "3")
	c.waitValue(replicateBound, "ns", "a", "2", 1, 3)
	c.waitValue(replicateBound, "ns", "b", "3", 1, 2)
	del(t, c.eng(3), "ns", "a")
	c.waitValue(replicateBound, "ns", "a", "", 1, 2)
	eventually(t, replicateBound, func() error { return c.converged("ns") })
	for _, id := range c.ids {
		if st := c.eng(id).Stats(); st.Dropped != 0 {
			t.Errorf("store %d dropped %d records with every peer up", id, st.Dropped)
		}
	}
}

// waitPeersUp waits until every engine has sent to every peer once.
func waitPeersUp(t testing.TB, c *cluster) {
	t.Helper()
	eventually(t, replicateBound, func() error {
		for _, id := range c.ids {
			e := c.eng(id)
			e.peerMu.Lock()
			n, down := len(e.peers), 0
			for _, p := range e.peers {
				if p.isDown() {
					down++
				}
			}
			e.peerMu.Unlock()
			if n != len(c.ids)-1 || down > 0 {
				return fmt.Errorf("store %d: %d peers, %d down", id, n, down)
			}
		}
		return nil
	})
}

func TestPartitionHealsByAntiEntropy(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitPeersUp(t, c)
	for i := range 20 {
		put(t, c.eng(1), "ns", fmt.Sprint("pre", i), "v")
	}
	eventually(t, replicateBound, func() error { return c.converged("ns") })

	c.isolate(3)
	// Writes on both sides of the partition, deletes included.
	for i := range 50 {
		put(t, c.eng(uint64(1+i%2)), "ns", fmt.Sprint("maj", i), fmt.Sprint("m", i))
		put(t, c.eng(3), "ns", fmt.Sprint("min", i), fmt.Sprint("n", i))
	}
	del(t, c.eng(1), "ns", "pre3")
	put(t, c.eng(3), "ns", "pre4", "minority")
	c.waitValue(replicateBound, "ns", "maj49", "m49", 1, 2)
	if _, found := c.valueOn(3, "ns", "maj0"); found {
		t.Fatal("a write crossed the partition")
	}
	repairedBefore := c.eng(3).Stats().Repaired + c.eng(1).Stats().Repaired + c.eng(2).Stats().Repaired

	// Heal; no new writes: anti-entropy alone must converge.
	c.heal()
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	repairedAfter := c.eng(3).Stats().Repaired + c.eng(1).Stats().Repaired + c.eng(2).Stats().Repaired
	if repairedAfter-repairedBefore < 100 {
		t.Fatalf("anti-entropy repaired %d records, want at least 100", repairedAfter-repairedBefore)
	}
	c.waitValue(0, "ns", "pre3", "", 1, 2, 3)
	c.waitValue(0, "ns", "pre4", "minority", 1, 2, 3)
	c.waitValue(0, "ns", "min7", "n7", 1, 2, 3)
}

func TestRestartConverges(t *testing.T) {
	// With a long interval, convergence after the restart shows that a
	// store coming back is repaired at once.
	c := newCluster(t, 3, func(cfg *Config) { cfg.AntiEntropyInterval = time.Hour })
	waitPeersUp(t, c)
	for i := range 30 {
		put(t, c.eng(uint64(1+i%3)), "ns", fmt.Sprint("k", i), "before")
	}
	eventually(t, replicateBound, func() error { return c.converged("ns") })
	last := put(t, c.eng(3), "ns", "k0", "last-before-stop")
	c.waitValue(replicateBound, "ns", "k0", "last-before-stop", 1, 2)

	c.stop(3)
	for i := range 30 {
		put(t, c.eng(uint64(1+i%2)), "ns", fmt.Sprint("k", i), "while-down")
	}
	del(t, c.eng(1), "ns", "k5")
	put(t, c.eng(2), "ns", "new", "while-down")
	// The pushes to the stopped store fail and are dropped.
	eventually(t, replicateBound, func() error {
		if c.eng(1).Stats().Dropped == 0 {
			return fmt.Errorf("no push to the stopped store dropped yet")
		}
		return nil
	})

	c.restart(3)
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	c.waitValue(0, "ns", "k5", "", 3)
	c.waitValue(0, "ns", "new", "while-down", 3)
	// The restarted clock is ahead of what it handed out before.
	if ts := put(t, c.eng(3), "ns", "after", "x"); !last.Less(ts) {
		t.Fatalf("after restart stamped %v, not after %v", ts, last)
	}
}

func TestLostPushesRepaired(t *testing.T) {
	// A queue that holds nothing drops every push.
	c := newCluster(t, 3, func(cfg *Config) { cfg.QueueBytes = 1 })
	waitPeersUp(t, c)
	for i := range 40 {
		put(t, c.eng(uint64(1+i%3)), "ns", fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	del(t, c.eng(2), "ns", "k1")
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	if st := c.eng(1).Stats(); st.Dropped == 0 || st.Pushed != 0 {
		t.Fatalf("stats %+v: want every push dropped", st)
	}
}

func TestLargeRepairInSmallMessages(t *testing.T) {
	seed := testseed.For(t, 191)
	rng := rand.New(rand.NewPCG(seed, 7))
	// Messages of 4 KiB: most buckets need several requests and every
	// answer is cut.
	c := newCluster(t, 2, func(cfg *Config) { cfg.MaxMessageBytes = 4 << 10 })
	c.isolate(2)
	value := func() string {
		b := make([]byte, 50+rng.IntN(200))
		for i := range b {
			b[i] = 'a' + byte(rng.IntN(26))
		}
		return string(b)
	}
	for i := range 1500 {
		put(t, c.eng(1), "ns", fmt.Sprint("one", i), value())
		if i%3 == 0 {
			put(t, c.eng(2), "ns", fmt.Sprint("two", i), value())
		}
	}
	// A value just above the message size travels alone.
	put(t, c.eng(2), "ns", "big", string(make([]byte, 6<<10)))
	c.heal()
	eventually(t, convergeBound, func() error { return c.converged("ns") })
}

func TestServingGatesReplication(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.mu.Lock()
	c.serving[2] = func(ns string) bool { return ns != "private" }
	c.mu.Unlock()
	waitPeersUp(t, c)
	put(t, c.eng(1), "private", "k", "v")
	put(t, c.eng(1), "public", "k", "v")
	c.waitValue(replicateBound, "public", "k", "v", 2)
	// Let anti-entropy run a few rounds: still nothing of "private" on 2.
	rounds := c.eng(1).Stats().AntiEntropyRounds
	eventually(t, convergeBound, func() error {
		if got := c.eng(1).Stats().AntiEntropyRounds; got < rounds+3 {
			return fmt.Errorf("%d rounds", got-rounds)
		}
		return nil
	})
	if got := c.dump(2, "private"); len(got) != 0 {
		t.Fatalf("store 2 holds %d records of a namespace it does not serve", len(got))
	}
	resp, err := c.eng(2).HandleDigest(context.Background(), &storepb.DigestRequest{Namespace: "private"})
	if err != nil || resp.Serving {
		t.Fatalf("HandleDigest of an unserved namespace: %v, %v", resp, err)
	}
}

func TestTombstoneCollectedWithoutResurrection(t *testing.T) {
	const grace = time.Hour
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.TombstoneGrace = grace
		cfg.GCInterval = 20 * time.Millisecond
	})
	waitPeersUp(t, c)
	put(t, c.eng(1), "ns", "k", "old")
	put(t, c.eng(1), "ns", "keep", "x")
	c.waitValue(replicateBound, "ns", "k", "old", 2, 3)

	// Store 3 misses the delete's push: it still has the old value.
	c.isolate(3)
	del(t, c.eng(1), "ns", "k")
	c.waitValue(replicateBound, "ns", "k", "", 2)
	if v, _ := c.valueOn(3, "ns", "k"); v != "old" {
		t.Fatalf("store 3: %q", v)
	}
	// Within the grace, anti-entropy carries the tombstone to store 3.
	c.heal()
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	if r, _, _ := c.eng(3).Get("ns", []byte("k")); r == nil || !r.Tombstone {
		t.Fatalf("store 3 holds %v", r)
	}

	// Past the grace every store collects the tombstone.
	c.time.advance(grace + time.Minute)
	eventually(t, convergeBound, func() error {
		for _, id := range c.ids {
			if r, _, _ := c.eng(id).Get("ns", []byte("k")); r != nil {
				return fmt.Errorf("store %d still holds %s", id, recString(r))
			}
		}
		return nil
	})
	// Several anti-entropy rounds later, k is still gone everywhere.
	rounds := c.eng(3).Stats().AntiEntropyRounds
	eventually(t, convergeBound, func() error {
		if got := c.eng(3).Stats().AntiEntropyRounds; got < rounds+3 {
			return fmt.Errorf("%d rounds", got-rounds)
		}
		return c.converged("ns")
	})
	for _, id := range c.ids {
		if r, _, _ := c.eng(id).Get("ns", []byte("k")); r != nil {
			t.Fatalf("store %d: %s came back", id, recString(r))
		}
		if v, _ := c.valueOn(id, "ns", "keep"); v != "x" {
			t.Fatalf("store %d lost a live key", id)
		}
	}
	if st := c.eng(1).Stats(); st.Collected == 0 {
		t.Fatal("nothing collected")
	}
}

// TestPartitionLongerThanGraceResurrects documents the limit of tombstone
// collection: a store cut off for longer than the grace still holds the
// value its peers deleted and collected, and brings it back.
func TestPartitionLongerThanGraceResurrects(t *testing.T) {
	const grace = time.Hour
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.TombstoneGrace = grace
		cfg.GCInterval = 20 * time.Millisecond
	})
	waitPeersUp(t, c)
	put(t, c.eng(1), "ns", "k", "old")
	c.waitValue(replicateBound, "ns", "k", "old", 2, 3)
	c.isolate(3)
	del(t, c.eng(1), "ns", "k")
	c.waitValue(replicateBound, "ns", "k", "", 2)
	c.time.advance(grace + time.Minute)
	eventually(t, convergeBound, func() error {
		for _, id := range []uint64{1, 2} {
			if r, _, _ := c.eng(id).Get("ns", []byte("k")); r != nil {
				return fmt.Errorf("store %d still holds %s", id, recString(r))
			}
		}
		return nil
	})
	c.heal()
	c.waitValue(convergeBound, "ns", "k", "old", 1, 2, 3)
}

func TestReplaceEndsIdentical(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.isolate(1)
	// Different prior local state on each store.
	put(t, c.eng(1), "ns", "a", "only-on-1")
	put(t, c.eng(1), "ns", "same", "1")
	put(t, c.eng(2), "ns", "b", "only-on-2")
	put(t, c.eng(2), "ns", "same", "2")
	del(t, c.eng(2), "ns", "x")

	ts, err := c.nodes[1].clock.Now()
	if err != nil {
		t.Fatal(err)
	}
	kvs := []KV{{Key: []byte("same"), Value: []byte("S")}, {Key: []byte("x"), Value: []byte("X")}, {Key: []byte("y"), Value: []byte("Y")}}
	for _, id := range c.ids {
		if err := replaceNow(c.eng(id), "ns", ts, kvs); err != nil {
			t.Fatal(err)
		}
	}
	live := func(id uint64) []*storepb.LWWRecord {
		recs, _, err := c.eng(id).Scan("ns", nil, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	if err := sameRecords(live(1), live(2)); err != nil {
		t.Fatalf("live records differ after Replace: %v", err)
	}
	if n := len(live(1)); n != 3 {
		t.Fatalf("%d live records, want 3", n)
	}
	// Each holds a tombstone for the key only it had; anti-entropy makes
	// the full states identical.
	c.heal()
	eventually(t, convergeBound, func() error { return c.converged("ns") })
	if err := sameRecords(live(1), live(2)); err != nil {
		t.Fatal(err)
	}
}

func TestPeerUpRepairsAtOnce(t *testing.T) {
	// Every push is dropped and periodic anti-entropy never comes: only
	// PeerUp can bring the writes over.
	c := newCluster(t, 2, func(cfg *Config) {
		cfg.QueueBytes = 1
		cfg.AntiEntropyInterval = time.Hour
	})
	waitPeersUp(t, c)
	// The start-up repair has run once both stores answered; wait for it.
	eventually(t, replicateBound, func() error {
		for _, id := range c.ids {
			if c.eng(id).Stats().AntiEntropyRounds == 0 {
				return fmt.Errorf("store %d: no round yet", id)
			}
		}
		return nil
	})
	for i := range 10 {
		put(t, c.eng(1), "ns", fmt.Sprint("k", i), "v")
	}
	if err := c.converged("ns"); err == nil {
		t.Fatal("converged with every push dropped")
	}
	c.eng(1).PeerUp(2)
	eventually(t, replicateBound, func() error { return c.converged("ns") })
}

func TestReceiveValidation(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.isolate(1) // the test speaks for store 1
	client := c.clients[2]
	ctx := context.Background()
	send := func(b *storepb.ReplicateBatch) error {
		s, err := client.Replicate(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(b); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = s.CloseAndRecv()
		return err
	}
	now := c.time.now()
	bad := &storepb.ReplicateBatch{FromStore: 1, Namespaces: []*storepb.NamespaceRecords{
		{Namespace: "ns", Records: []*storepb.LWWRecord{rec("ok", "v", now, 0, 1), {Key: []byte("nots")}}},
	}}
	if err := send(bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("batch with a record without a timestamp: %v, want InvalidArgument", err)
	}
	if _, found := c.valueOn(2, "ns", "ok"); found {
		t.Fatal("part of a refused batch was applied")
	}
	skewed := &storepb.ReplicateBatch{FromStore: 1, Namespaces: []*storepb.NamespaceRecords{
		{Namespace: "ns", Records: []*storepb.LWWRecord{rec("ok", "v", now, 0, 1), rec("ahead", "v", now+int64(time.Minute), 0, 1)}},
	}}
	if err := send(skewed); err != nil {
		t.Fatal(err)
	}
	if _, found := c.valueOn(2, "ns", "ok"); !found {
		t.Fatal("the valid record was not applied")
	}
	if _, found := c.valueOn(2, "ns", "ahead"); found {
		t.Fatal("a record a minute ahead was applied")
	}
	if got := c.eng(2).Stats().Refused; got != 1 {
		t.Fatalf("Refused = %d", got)
	}
	_, err := client.Repair(ctx, &storepb.RepairRequest{FromStore: 1, Namespace: "ns", Buckets: []uint32{NumBuckets}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Repair of bucket %d: %v", NumBuckets, err)
	}
	_, err = client.Digest(ctx, &storepb.DigestRequest{Namespace: "NS!"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Digest of a bad name: %v", err)
	}
}
