package store_test

// The batch calls: RawBatchPut and RawBatchDelete are one write on the
// store that takes them and on every replica, survive crashes and mode
// switches whole, converge after partitions like single writes, and are
// refused whole past their limits; BatchGet is one linearizable read.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/store/testseed"
)

// batchKeys returns n keys named prefix000, prefix001, ...
func batchKeys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// pairsOf pairs every key with value.
func pairsOf(keys []string, value string) []*kvrpc.RawKv {
	out := make([]*kvrpc.RawKv, len(keys))
	for i, k := range keys {
		out[i] = &kvrpc.RawKv{Key: k, Value: value}
	}
	return out
}

// samePairs compares a RawBatchGet answer with key, value, key, value...
func samePairs(got []*kvrpc.RawKv, want ...string) error {
	if len(got) != len(want)/2 {
		return fmt.Errorf("%d pairs, want %d: %v", len(got), len(want)/2, got)
	}
	for i, p := range got {
		if p.GetKey() != want[2*i] || p.GetValue() != want[2*i+1] {
			return fmt.Errorf("pair %d = %s=%q, want %s=%q", i, p.GetKey(), p.GetValue(), want[2*i], want[2*i+1])
		}
	}
	return nil
}

// uniform says what is wrong if a batch read of keys is neither all absent
// nor all one value.
func uniform(got []*kvrpc.RawKv, keys []string) error {
	if len(got) == 0 {
		return nil
	}
	if len(got) != len(keys) {
		return fmt.Errorf("%d of %d keys found", len(got), len(keys))
	}
	for _, p := range got {
		if p.GetValue() != got[0].GetValue() {
			return fmt.Errorf("%s=%q beside %s=%q", got[0].GetKey(), got[0].GetValue(), p.GetKey(), p.GetValue())
		}
	}
	return nil
}

// ackBatch records an acknowledged batch in log: the i-th key was stamped
// with first's logical part plus i. A delete is recorded as deleted.
func ackBatch(log *writeLog, keys []string, value string, first *kvrpc.HLC) {
	for i, k := range keys {
		log.ack(k, value, &kvrpc.HLC{WallTime: first.GetWallTime(), Logical: first.GetLogical() + uint32(i), StoreId: first.GetStoreId()})
	}
}

// deleted marks a key's delete in a writeLog.
const deleted = "\x00deleted"

// expected is what log says every key should hold: the latest acknowledged
// write, deletes left out.
func (w *writeLog) expected() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]string{}
	for k, a := range w.latest {
		if a.value != deleted {
			out[k] = a.value
		}
	}
	return out
}

// TestRawBatchReplicates: a batch is stamped with consecutive timestamps
// in the order of its pairs (a key given twice keeps its last value), is
// read back in the order asked on every store, and a batch delete reaches
// every store too.
func TestRawBatchReplicates(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, 30*time.Second)
	keys := batchKeys("k", 100)
	pairs := append(pairsOf(keys, "v"), &kvrpc.RawKv{Key: "k000", Value: "last"})
	r, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	first, last := r.GetTimestamp(), r.GetLastTimestamp()
	if first.GetStoreId() != 1 || last.GetWallTime() != first.GetWallTime() || last.GetLogical()-first.GetLogical() != 100 {
		t.Fatalf("timestamps %v .. %v: want 101 consecutive ones of store 1", first, last)
	}
	ask := []string{"k050", "missing", "k000", "k099", "k050"}
	for i := range 3 {
		storetest.Eventually(t, 5*time.Second, func() error {
			g, err := c.Raw(i).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: ask})
			if err != nil {
				return err
			}
			return samePairs(g.GetPairs(), "k050", "v", "k000", "last", "k099", "v", "k050", "v")
		}, "store %d reads the batch", i+1)
	}

	d, err := c.Raw(1).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "logs", Keys: keys[:50]})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetTimestamp().GetStoreId() != 2 || d.GetLastTimestamp().GetLogical()-d.GetTimestamp().GetLogical() != 49 {
		t.Fatalf("delete timestamps %v .. %v", d.GetTimestamp(), d.GetLastTimestamp())
	}
	want := map[string]string{}
	for _, k := range keys[50:] {
		want[k] = "v"
	}
	for i := range 3 {
		waitHolds(t, ctx, c, i, "logs", want, 5*time.Second)
	}
}

// TestRawBatchAtomicForReaders: while every store takes batches over the
// same keys, readers on every store never see part of a batch: the store
// that takes one commits it in one pebble batch, each other store applies
// its push in one batch, and RawBatchGet reads one snapshot. Anti-entropy
// is off once the first exchange with each peer is over (it repairs a
// missed push key range by key range), so the batches travel by pushes.
func TestRawBatchAtomicForReaders(t *testing.T) {
	metrics, withMetrics := metricsAddrs(t, 3)
	c := storetest.NewCluster(t, 3, storetest.Options{
		NamespaceModes:      map[string]string{"logs": "eventual"},
		AntiEntropyInterval: time.Hour,
		Configure:           withMetrics,
	})
	ctx := ctxT(t, 2*time.Minute)
	// Every store pushes to every other, and has had its first exchange
	// with each peer.
	for i := range 3 {
		if _, err := c.Raw(i).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("warm%d", i), Value: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		storetest.Eventually(t, 10*time.Second, func() error {
			g, err := c.Raw(i).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: []string{"warm0", "warm1", "warm2"}})
			if err != nil || len(g.GetPairs()) != 3 {
				return fmt.Errorf("%v, %v", g, err)
			}
			if n, _ := metricValue(httpGet(t, metrics[i], "/metrics"), `rdb_lww_anti_entropy_rounds_total`); n < 2 {
				return fmt.Errorf("%v anti-entropy rounds", n)
			}
			return nil
		}, "store %d has every store's first write and its first exchanges", i+1)
	}

	keys := batchKeys("a", 300)
	var reads, torn atomic.Int64
	var firstTorn atomic.Value
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 3 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				g, err := c.Raw(i).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: keys})
				if err != nil {
					t.Errorf("RawBatchGet on store %d: %v", i+1, err)
					return
				}
				reads.Add(1)
				if err := uniform(g.GetPairs(), keys); err != nil {
					torn.Add(1)
					firstTorn.CompareAndSwap(nil, fmt.Sprintf("store %d: %v", i+1, err))
				}
			}
		})
	}
	var writers sync.WaitGroup
	for i := range 3 {
		writers.Go(func() {
			for r := range 15 {
				req := &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf(keys, fmt.Sprintf("s%d-r%d", i+1, r))}
				if _, err := c.Raw(i).RawBatchPut(ctx, req); err != nil {
					t.Errorf("RawBatchPut on store %d: %v", i+1, err)
					return
				}
			}
		})
	}
	writers.Wait()
	storetest.Eventually(t, 10*time.Second, func() error { return replicasDiffer(ctx, c, "logs") }, "the stores converge")
	close(stop)
	readers.Wait()
	t.Logf("%d batch reads", reads.Load())
	if n := torn.Load(); n > 0 {
		t.Fatalf("%d of %d reads saw part of a batch; the first: %v", n, reads.Load(), firstTorn.Load())
	}
}

// TestRawBatchSurvivesCrashWhole: a store crashes (losing what it had not
// synced) while it takes batches; after the restart it holds every
// acknowledged batch, and no batch in part.
func TestRawBatchSurvivesCrashWhole(t *testing.T) {
	c := storetest.NewCluster(t, 1, storetest.Options{
		NamespaceModes: map[string]string{"logs": "eventual"},
		CrashableFS:    true,
		Seed:           testseed.For(t, 131),
	})
	keys := batchKeys("c", 200)
	for crash := range 3 {
		var acked atomic.Int64
		acked.Store(-1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for r := 0; ; r++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf(keys, fmt.Sprintf("crash%d-r%04d", crash, r))})
				cancel()
				if err != nil {
					return // the crash
				}
				acked.Store(int64(r))
			}
		}()
		storetest.Eventually(t, 20*time.Second, func() error {
			if n := acked.Load(); n < 10 {
				return fmt.Errorf("%d batches acknowledged", n+1)
			}
			return nil
		}, "batches flow")
		c.Crash(0, 50)
		<-done
		last := acked.Load()
		c.Start(0)
		ctx := ctxT(t, 10*time.Second)
		var g *kvrpc.RawBatchGetResponse
		storetest.Eventually(t, 10*time.Second, func() error {
			var err error
			g, err = c.Raw(0).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: keys})
			return err
		}, "the restarted store reads")
		if err := uniform(g.GetPairs(), keys); err != nil {
			t.Fatalf("crash %d: the restarted store holds part of a batch: %v", crash, err)
		}
		if want := fmt.Sprintf("crash%d-r%04d", crash, last); len(g.GetPairs()) == 0 || g.GetPairs()[0].GetValue() < want {
			t.Fatalf("crash %d: the restarted store holds %v, older than the last acknowledged batch %s", crash, g.GetPairs()[:min(1, len(g.GetPairs()))], want)
		}
	}
}

// TestRawBatchConvergesAfterPartition: batches and batch deletes taken on
// both sides of a partition converge once it heals, by anti-entropy alone,
// to the newest acknowledged write of every key.
func TestRawBatchConvergesAfterPartition(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, time.Minute)
	log := &writeLog{latest: map[string]ackedWrite{}}
	put := func(i int, keys []string, value string) {
		t.Helper()
		r, err := c.Raw(i).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf(keys, value)})
		if err != nil {
			t.Fatal(err)
		}
		ackBatch(log, keys, value, r.GetTimestamp())
	}
	del := func(i int, keys []string) {
		t.Helper()
		r, err := c.Raw(i).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "logs", Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		ackBatch(log, keys, deleted, r.GetTimestamp())
	}
	keys := batchKeys("p", 90)
	put(0, keys, "before")
	waitHolds(t, ctx, c, 2, "logs", log.expected(), 5*time.Second)
	c.Links.Isolate(3, 3)
	put(0, keys[:50], "side-a")
	del(1, keys[:10])
	put(2, keys[40:], "side-b") // overlaps side a on p040..p049
	del(2, keys[45:46])
	if got, _ := rawContents(ctx, c, 2, "logs"); got["p000"] != "before" {
		t.Fatalf("the partition leaked: store 3 has p000=%q", got["p000"])
	}
	c.Links.Heal()
	want := log.expected()
	for i := range 3 {
		waitHolds(t, ctx, c, i, "logs", want, 15*time.Second)
	}
}

// TestRawBatchSwitchLosesNothing: batches and batch deletes keep coming on
// every store while logs switches to strong; the newest acknowledged write
// of every key is what BatchGet reads afterwards on every store, batch
// writes are refused once the namespace is strong, and after switching
// back every store's RawBatchGet reads the strong state.
func TestRawBatchSwitchLosesNothing(t *testing.T) {
	seed := testseed.For(t, 227)
	c := eventualCluster(t)
	ctx := ctxT(t, 2*time.Minute)
	keys := batchKeys("s", 60)
	log := &writeLog{latest: map[string]ackedWrite{}}
	var batches atomic.Int64
	stop := make(chan struct{})
	wg := writers(t, seed, stop, func(ctx context.Context, rng *rand.Rand, w, n int) error {
		start, size := rng.IntN(len(keys)), 5+rng.IntN(16)
		var some []string
		for j := range size {
			some = append(some, keys[(start+j)%len(keys)])
		}
		raw := c.Raw(rng.IntN(3))
		if rng.IntN(4) == 0 {
			r, err := raw.RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "logs", Keys: some})
			if err == nil {
				ackBatch(log, some, deleted, r.GetTimestamp())
				batches.Add(1)
			}
			return err
		}
		value := fmt.Sprintf("w%d-%d", w, n)
		r, err := raw.RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf(some, value)})
		if err == nil {
			ackBatch(log, some, value, r.GetTimestamp())
			batches.Add(1)
		}
		return err
	})
	storetest.Eventually(t, 20*time.Second, func() error {
		if n := batches.Load(); n < 100 {
			return fmt.Errorf("%d batches", n)
		}
		return nil
	}, "batches flow")
	if _, err := c.Modes(1).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 15*time.Second, func() error {
		_, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: keys[:1]})
		return err
	}, "logs serves strong reads")
	close(stop)
	wg.Wait()
	t.Logf("%d batches acknowledged across the switch", batches.Load())
	want := log.expected()
	for i := range 3 {
		waitRawRefused(t, i, "RawBatchPut", func() error {
			_, err := c.Raw(i).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf(keys[:2], "late")})
			return err
		})
		g, err := c.Cas(i).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, kv := range g.GetKvs() {
			got[kv.GetKey()] = kv.GetValue()
		}
		if err := sameContents(want, got); err != nil {
			t.Fatalf("BatchGet on store %d after the switch: %v", i+1, err)
		}
	}

	if _, err := c.Modes(2).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		storetest.Eventually(t, 15*time.Second, func() error {
			g, err := c.Raw(i).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: keys})
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, p := range g.GetPairs() {
				got[p.GetKey()] = p.GetValue()
			}
			return sameContents(want, got)
		}, "store %d reads the strong state back as LWW records", i+1)
	}
	if _, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: keys}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("BatchGet on eventual logs = %v, want FailedPrecondition", err)
	}
}

// TestBatchCallsDuringHeldSwitch: while a switch to strong is held (a store
// is cut off), batch writes and reads answer Aborted, not applied, as the
// single calls do, and nothing is written.
func TestBatchCallsDuringHeldSwitch(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, 60*time.Second)
	c.Links.Isolate(3, 3)
	if _, err := c.Modes(0).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"h1", "h2"}
	storetest.Eventually(t, 10*time.Second, func() error {
		for i := range 2 {
			for name, call := range map[string]func() error{
				"RawBatchPut": func() error {
					_, err := c.Raw(i).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf(keys, "x")})
					return err
				},
				"RawBatchDelete": func() error {
					_, err := c.Raw(i).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "logs", Keys: keys})
					return err
				},
				"BatchGet": func() error {
					_, err := c.Cas(i).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: keys})
					return err
				},
			} {
				if err := call(); status.Code(err) != codes.Aborted || reasonOf(err) != api.ReasonNotApplied {
					return fmt.Errorf("%s on store %d during the switch = %v, want Aborted, not applied", name, i+1, err)
				}
			}
		}
		return nil
	}, "batch calls are refused while the switch is held")
	c.Links.Heal()
	storetest.Eventually(t, 15*time.Second, func() error {
		g, err := c.Cas(1).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: keys})
		if err != nil {
			return err
		}
		if len(g.GetKvs()) != 0 {
			return fmt.Errorf("a refused batch was written: %v", g.GetKvs())
		}
		return nil
	}, "the switch completes, with nothing of the refused batches")
}

// TestBatchLimitsAndModes: batches past the limits, with a bad entry, or
// on the wrong mode are refused whole with a clear error, writing nothing;
// an empty batch is a no-op; RawBatchGet on a strong namespace reads this
// store's replica, as RawGet does.
func TestBatchLimitsAndModes(t *testing.T) {
	c := storetest.NewCluster(t, 1, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	ctx := ctxT(t, 30*time.Second)
	tooMany := batchKeys("m", api.MaxBatchKeys+1)
	mib := strings.Repeat("v", api.MaxValueBytes)
	bigPairs := func(n int) []*kvrpc.RawKv {
		out := make([]*kvrpc.RawKv, n)
		for i := range out {
			out[i] = &kvrpc.RawKv{Key: fmt.Sprintf("big%02d", i), Value: mib}
		}
		return out
	}
	badEntry := append(pairsOf(batchKeys("bad", 5), "v"), &kvrpc.RawKv{Key: "", Value: "v"})
	rawPut := func(ns string, pairs []*kvrpc.RawKv) func() error {
		return func() error {
			_, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: ns, Pairs: pairs})
			return err
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		says string
	}{
		{"RawBatchPut of too many keys", rawPut("logs", pairsOf(tooMany, "v")), codes.InvalidArgument, "at most 10000 keys"},
		{"RawBatchGet of too many keys", func() error {
			_, err := c.Raw(0).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: tooMany})
			return err
		}, codes.InvalidArgument, "at most 10000 keys"},
		{"RawBatchDelete of too many keys", func() error {
			_, err := c.Raw(0).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "logs", Keys: tooMany})
			return err
		}, codes.InvalidArgument, "at most 10000 keys"},
		{"BatchGet of too many keys", func() error {
			_, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "default", Keys: tooMany})
			return err
		}, codes.InvalidArgument, "at most 10000 keys"},
		{"RawBatchPut of 17 MiB", rawPut("logs", bigPairs(17)), codes.InvalidArgument, "16 MiB"},
		{"RawBatchPut of 21 MiB, past the message limit too", rawPut("logs", bigPairs(21)), codes.InvalidArgument, "16 MiB"},
		{"RawBatchPut with an empty key", rawPut("logs", badEntry), codes.InvalidArgument, "batch entry 5: key is empty"},
		{"RawBatchPut with an oversize value", rawPut("logs", []*kvrpc.RawKv{{Key: "ok", Value: "v"}, {Key: "big", Value: mib + "v"}}),
			codes.InvalidArgument, "batch entry 1: value is"},
		{"RawBatchPut on a bad namespace", rawPut("Logs", pairsOf([]string{"a"}, "v")), codes.InvalidArgument, "namespace"},
		{"RawBatchPut on strong", rawPut("default", pairsOf([]string{"a"}, "v")), codes.FailedPrecondition, "KvCas"},
		{"RawBatchDelete on strong", func() error {
			_, err := c.Raw(0).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "default", Keys: []string{"a"}})
			return err
		}, codes.FailedPrecondition, "KvCas"},
		{"BatchGet on eventual", func() error {
			_, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: []string{"a"}})
			return err
		}, codes.FailedPrecondition, "RawBatchGet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want %v saying %q", err, tc.code, tc.says)
			}
		})
	}
	// Nothing of the refused batches was written.
	if got, err := rawContents(ctx, c, 0, "logs"); err != nil || len(got) != 0 {
		t.Fatalf("logs after refused batches: %v, %v", got, err)
	}

	// Empty batches: nothing written, nothing found, no timestamps.
	r, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs"})
	if err != nil || r.GetTimestamp() != nil || r.GetLastTimestamp() != nil {
		t.Fatalf("empty RawBatchPut = %v, %v", r, err)
	}
	if d, err := c.Raw(0).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "logs"}); err != nil || d.GetTimestamp() != nil {
		t.Fatalf("empty RawBatchDelete = %v, %v", d, err)
	}
	if g, err := c.Raw(0).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs"}); err != nil || len(g.GetPairs()) != 0 {
		t.Fatalf("empty RawBatchGet = %v, %v", g, err)
	}
	if g, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "default"}); err != nil || len(g.GetKvs()) != 0 {
		t.Fatalf("empty BatchGet = %v, %v", g, err)
	}
	if _, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "default"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("empty RawBatchPut on strong = %v, want FailedPrecondition", err)
	}

	// The largest batch there is: 16 MiB of keys and values, taken whole.
	full := bigPairs(16)
	full[15].Value = mib[:api.MaxValueBytes-16*len("big00")]
	if _, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: full}); err != nil {
		t.Fatalf("a batch of exactly 16 MiB: %v", err)
	}
	if g, err := c.Raw(0).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: []string{"big00", "big15"}}); err != nil ||
		len(g.GetPairs()) != 2 || len(g.GetPairs()[1].GetValue()) != len(full[15].Value) {
		t.Fatalf("RawBatchGet of the 16 MiB batch: %d pairs, %v", len(g.GetPairs()), err)
	}

	// RawBatchGet on strong: this store's replica.
	if cas, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "s", Value: "strong"}); err != nil || !cas.GetSuccess() {
		t.Fatalf("CAS = %v, %v", cas, err)
	}
	storetest.Eventually(t, 5*time.Second, func() error {
		g, err := c.Raw(0).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "default", Keys: []string{"none", "s"}})
		if err != nil {
			return err
		}
		return samePairs(g.GetPairs(), "s", "strong")
	}, "RawBatchGet reads the strong replica")
}

// TestBatchGetLinearizable: BatchGet through any store, followers
// included, reads every write acknowledged before it, its caller's own and
// those made through other stores.
func TestBatchGetLinearizable(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	ctx := ctxT(t, time.Minute)
	keys := batchKeys("l", 10)
	acked := map[string]*kvrpc.VersionedKv{}
	check := func(i int, after string) {
		t.Helper()
		g, err := c.Cas(i).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "default", Keys: append([]string{"never"}, keys...)})
		if err != nil {
			t.Fatalf("BatchGet on store %d: %v", i+1, err)
		}
		var want []*kvrpc.VersionedKv
		for _, k := range keys {
			if kv, ok := acked[k]; ok {
				want = append(want, kv)
			}
		}
		if len(g.GetKvs()) != len(want) {
			t.Fatalf("BatchGet on store %d after %s: %v, want %v", i+1, after, g.GetKvs(), want)
		}
		for j, kv := range g.GetKvs() {
			if kv.GetKey() != want[j].GetKey() || kv.GetValue() != want[j].GetValue() || kv.GetVersion() != want[j].GetVersion() {
				t.Fatalf("BatchGet on store %d after %s: %v, want %v", i+1, after, g.GetKvs(), want)
			}
		}
	}
	for round := range 60 {
		w := round % 3
		key := keys[(round*7)%len(keys)]
		value := fmt.Sprintf("r%d", round)
		r, err := c.Cas(w).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: key, Value: value, ExpectedVersion: acked[key].GetVersion()})
		if err != nil || !r.GetSuccess() {
			t.Fatalf("CAS %s through store %d = %v, %v", key, w+1, r, err)
		}
		acked[key] = &kvrpc.VersionedKv{Key: key, Value: value, Version: r.GetVersion()}
		after := fmt.Sprintf("round %d (CAS through store %d)", round, w+1)
		check(w, after)       // its own write
		check((w+1)%3, after) // another store's
		check((w+2)%3, after)
	}
}

// TestBatchTimestampsOrderWithSingleWrites: a batch's range comes from the
// store's one clock, after its single writes and before the next ones.
func TestBatchTimestampsOrderWithSingleWrites(t *testing.T) {
	c := storetest.NewCluster(t, 1, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	ctx := ctxT(t, 10*time.Second)
	ts := func(h *kvrpc.HLC) hlc.Timestamp {
		return hlc.Timestamp{Wall: h.GetWallTime(), Logical: h.GetLogical(), StoreID: h.GetStoreId()}
	}
	a, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "x", Value: "1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairsOf([]string{"x", "y", "z"}, "2")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Raw(0).RawDelete(ctx, &kvrpc.RawDeleteRequest{Namespace: "logs", Key: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if !ts(a.GetTimestamp()).Less(ts(b.GetTimestamp())) || !ts(b.GetLastTimestamp()).Less(ts(d.GetTimestamp())) {
		t.Fatalf("RawPut at %v, batch at %v .. %v, RawDelete at %v: not in order", a.GetTimestamp(), b.GetTimestamp(), b.GetLastTimestamp(), d.GetTimestamp())
	}
	g, err := c.Raw(0).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "logs", Keys: []string{"x", "y", "z"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := samePairs(g.GetPairs(), "x", "2", "z", "2"); err != nil {
		t.Fatal(err)
	}
}
