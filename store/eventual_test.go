package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/store/testseed"
)

func eventualCluster(t *testing.T) *storetest.Cluster {
	return storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
}

// TestRawPutReplicates is the quickstart's eventual path: a write on one
// store is readable on the others within a second.
func TestRawPutReplicates(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, 10*time.Second)
	if _, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "a", Value: "b"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		storetest.Eventually(t, time.Second, func() error {
			g, err := c.Raw(i).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: "a"})
			if err != nil || g.GetValue() != "b" {
				return fmt.Errorf("RawGet = %v, %v", g, err)
			}
			return nil
		}, "store %d sees the write", i+1)
	}
	if _, err := c.Raw(2).RawDelete(ctx, &kvrpc.RawDeleteRequest{Namespace: "logs", Key: "a"}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, time.Second, func() error {
		g, err := c.Raw(0).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: "a"})
		if err != nil || g.GetFound() {
			return fmt.Errorf("RawGet after delete = %v, %v", g, err)
		}
		return nil
	}, "the delete reaches store 1")
	storetest.Eventually(t, time.Second, func() error {
		scan, err := c.Raw(1).RawScan(ctx, &kvrpc.RawScanRequest{Namespace: "logs"})
		if err != nil || len(scan.GetKvs()) != 0 {
			return fmt.Errorf("RawScan after delete = %v, %v", scan, err)
		}
		return nil
	}, "the delete reaches store 2")
}

// rawContents reads every key of a namespace from one store.
func rawContents(ctx context.Context, c *storetest.Cluster, i int, ns string) (map[string]string, error) {
	resp, err := c.Raw(i).RawScan(ctx, &kvrpc.RawScanRequest{Namespace: ns, Limit: 10000})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, kv := range resp.GetKvs() {
		out[kv.GetKey()] = kv.GetValue()
	}
	return out, nil
}

// waitHolds waits until store i's live records of ns are want.
func waitHolds(t *testing.T, ctx context.Context, c *storetest.Cluster, i int, ns string, want map[string]string, within time.Duration) {
	t.Helper()
	storetest.Eventually(t, within, func() error {
		got, err := rawContents(ctx, c, i, ns)
		if err != nil {
			return err
		}
		return sameContents(want, got)
	}, "store %d holds the %d keys wanted in %s", i+1, len(want), ns)
}

// replicasDiffer says how the first store whose records of ns differ from
// store 1's differs (nil: every store holds the same).
func replicasDiffer(ctx context.Context, c *storetest.Cluster, ns string) error {
	want, err := rawContents(ctx, c, 0, ns)
	if err != nil {
		return err
	}
	for i := 1; i < c.N(); i++ {
		got, err := rawContents(ctx, c, i, ns)
		if err != nil {
			return err
		}
		if err := sameContents(want, got); err != nil {
			return fmt.Errorf("store %d differs from store 1: %v", i+1, err)
		}
	}
	return nil
}

func sameContents(a, b map[string]string) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d keys vs %d keys", len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			return fmt.Errorf("key %s: %q vs %q", k, v, b[k])
		}
	}
	return nil
}

// TestPartitionedStoreConverges cuts store 3 off (then stops another time)
// while the others take writes and deletes; after it returns it converges
// by anti-entropy alone, with no new write to the affected keys.
func TestPartitionedStoreConverges(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, 60*time.Second)
	for k := range 50 {
		if _, err := c.Raw(k%3).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("k%02d", k), Value: "v0"}); err != nil {
			t.Fatal(err)
		}
	}
	converged := func(what string) {
		storetest.Eventually(t, 15*time.Second, func() error { return replicasDiffer(ctx, c, "logs") }, "%s: replicas converge", what)
	}
	converged("before")

	c.Links.Isolate(3, 3)
	for k := range 50 {
		if k%5 == 0 {
			if _, err := c.Raw(k%2).RawDelete(ctx, &kvrpc.RawDeleteRequest{Namespace: "logs", Key: fmt.Sprintf("k%02d", k)}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := c.Raw(k%2).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("k%02d", k), Value: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	// The cut-off store still takes writes of its own.
	if _, err := c.Raw(2).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "from3", Value: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := rawContents(ctx, c, 2, "logs"); got["k01"] != "v0" {
		t.Fatalf("the partition leaked: store 3 has k01=%q", got["k01"])
	}
	c.Links.Heal()
	converged("after the partition")
	got, _ := rawContents(ctx, c, 2, "logs")
	if got["k01"] != "v1" || got["from3"] != "x" {
		t.Fatalf("after healing store 3 has k01=%q from3=%q", got["k01"], got["from3"])
	}
	if _, deleted := got["k05"]; deleted {
		t.Fatal("a key deleted during the partition came back")
	}

	// Stopped rather than cut off.
	c.Stop(1)
	for k := range 20 {
		if _, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: fmt.Sprintf("k%02d", k), Value: "v2"}); err != nil {
			t.Fatal(err)
		}
	}
	c.Start(1)
	converged("after a restart")
}

// writeLog records acknowledged raw writes: per key, the timestamp and
// value of the latest.
type writeLog struct {
	mu     sync.Mutex
	latest map[string]ackedWrite
	n      int
}

type ackedWrite struct {
	ts    hlc.Timestamp
	value string
}

func (w *writeLog) ack(key, value string, ts *kvrpc.HLC) {
	t := hlc.Timestamp{Wall: ts.GetWallTime(), Logical: ts.GetLogical(), StoreID: ts.GetStoreId()}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if cur, ok := w.latest[key]; !ok || cur.ts.Less(t) {
		w.latest[key] = ackedWrite{ts: t, value: value}
	}
}

// rawWriters write unique values to a small key set on random stores until
// stop is closed; Aborted answers (a switch in progress) are retried later.
// Any other failure fails the test: nothing else should go wrong here.
func rawWriters(t *testing.T, c *storetest.Cluster, ns string, seed uint64, stop <-chan struct{}, log *writeLog) *sync.WaitGroup {
	return writers(t, seed, stop, func(ctx context.Context, rng *rand.Rand, w, n int) error {
		key, val := fmt.Sprintf("k%02d", rng.IntN(40)), fmt.Sprintf("w%d-%d", w, n)
		r, err := c.Raw(rng.IntN(3)).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: ns, Key: key, Value: val})
		if err == nil {
			log.ack(key, val, r.GetTimestamp())
		}
		return err
	})
}

// writers runs six writers that call write (writer w's n-th call, with a
// rand of its own) until stop is closed. A call answered Aborted or
// FailedPrecondition (a switch in progress, or done) is retried later; any
// other failure fails the test.
func writers(t *testing.T, seed uint64, stop <-chan struct{}, write func(ctx context.Context, rng *rand.Rand, w, n int) error) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := write(ctx, rng, w, n)
				cancel()
				switch status.Code(err) {
				case codes.OK:
				case codes.Aborted, codes.FailedPrecondition:
					time.Sleep(time.Millisecond)
				default:
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	return &wg
}

// TestSwitchUnderLoadLosesNothing switches logs from eventual to strong
// while clients keep writing, then back: every write acknowledged before
// the switch is readable with Get afterwards (the latest one per key), no
// raw write is accepted once the namespace is strong, and every strong
// value is then readable with RawGet on every store.
func TestSwitchUnderLoadLosesNothing(t *testing.T) {
	seed := testseed.For(t, 221)
	c := eventualCluster(t)
	ctx := ctxT(t, 2*time.Minute)
	log := &writeLog{latest: map[string]ackedWrite{}}
	stop := make(chan struct{})
	wg := rawWriters(t, c, "logs", seed, stop, log)
	storetest.Eventually(t, 10*time.Second, func() error {
		log.mu.Lock()
		defer log.mu.Unlock()
		if log.n < 300 {
			return fmt.Errorf("%d writes", log.n)
		}
		return nil
	}, "writes flow")

	if _, err := c.Modes(1).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 15*time.Second, func() error {
		_, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "k00"})
		return err
	}, "logs serves strong reads")
	close(stop)
	wg.Wait()
	// Every store refuses raw writes now, but each says the switch is done
	// only once its own replica of the group has applied the activation:
	// store 1 serving strong reads does not mean store 3 has. Until then a
	// store answers Aborted (namespace.Decide: "Aborted while a switch is
	// under way on this store"); never does it accept the write.
	for i := range 3 {
		waitRawRefused(t, i, "RawPut", func() error {
			_, err := c.Raw(i).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "late", Value: "x"})
			return err
		})
	}
	t.Logf("%d raw writes acknowledged across the switch", log.n)
	for key, w := range log.latest {
		for i := range 3 {
			g, err := c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: key})
			if err != nil || g.GetValue() != w.value {
				t.Fatalf("key %s: latest acknowledged write %q (ts %v), Get on store %d = %v, %v", key, w.value, w.ts, i+1, g, err)
			}
		}
	}

	// Strong writes, then back to eventual: every strong value is on every
	// store's LWW replica.
	final := map[string]string{}
	for k := range 40 {
		key := fmt.Sprintf("k%02d", k)
		g, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		val := "strong-" + key
		if k%7 == 0 {
			if g.GetFound() {
				if _, err := c.Cas(k%3).Delete(ctx, &kvrpc.DeleteRequest{Namespace: "logs", Key: key}); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		r, err := c.Cas(k%3).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "logs", Key: key, Value: val, ExpectedVersion: g.GetVersion()})
		if err != nil || !r.GetSuccess() {
			t.Fatalf("CAS %s = %v, %v", key, r, err)
		}
		final[key] = val
	}
	if _, err := c.Modes(2).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		waitHolds(t, ctx, c, i, "logs", final, 15*time.Second) // the strong state, as LWW records
	}
	// And raw writes are accepted again, after the converted values.
	r, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "k01", Value: "after"})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 5*time.Second, func() error {
		g, err := c.Raw(2).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: "k01"})
		if err != nil || g.GetValue() != "after" {
			return fmt.Errorf("RawGet = %v, %v (write at %v)", g, err, r.GetTimestamp())
		}
		return nil
	}, "a raw write after the switch wins over the converted value")
	if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "logs", Key: "x"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("CAS on eventual logs = %v", err)
	}
}

// waitRawRefused waits until store i refuses a raw write (call, named
// what) on a namespace switched to strong: FailedPrecondition, or Aborted
// until its replica is active. Any other answer fails the test.
func waitRawRefused(t *testing.T, i int, what string, call func() error) {
	t.Helper()
	storetest.Eventually(t, 15*time.Second, func() error {
		err := call()
		switch status.Code(err) {
		case codes.FailedPrecondition:
			return nil
		case codes.Aborted:
			return err
		}
		t.Fatalf("%s on store %d after the switch = %v, want FailedPrecondition (or Aborted until its replica is active)", what, i+1, err)
		return nil
	}, "store %d refuses %s on strong logs", i+1, what)
}

// TestSwitchWaitsForUnreachableStore: eventual -> strong holds while a
// store is cut off (it may hold writes nobody else has), completes when
// it returns, and a forced switch goes ahead without it.
func TestSwitchWaitsForUnreachableStore(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, 60*time.Second)
	c.Links.Isolate(3, 3)
	// Only store 3 has this write.
	if _, err := c.Raw(2).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "only3", Value: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Modes(0).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	// The switch cannot finish: strong operations keep answering Aborted.
	storetest.Consistently(t, time.Second, func() error {
		_, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "only3"})
		if status.Code(err) != codes.Aborted {
			return fmt.Errorf("Get during a held switch = %v, want Aborted", err)
		}
		m, _ := c.Modes(0).GetMode(ctx, &raftpb.GetModeRequest{Namespace: "logs"})
		if m.GetState() != "switching" {
			return fmt.Errorf("state = %q, want switching", m.GetState())
		}
		return nil
	}, "the switch waits for store 3")
	c.Links.Heal()
	storetest.Eventually(t, 15*time.Second, func() error {
		g, err := c.Cas(1).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "only3"})
		if err != nil {
			return err
		}
		if g.GetValue() != "x" {
			return fmt.Errorf("only3 = %v", g)
		}
		return nil
	}, "the switch completes with store 3's write once it is back")

	// Forced: back to eventual, cut store 3 off again, write there, force.
	if _, err := c.Modes(0).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 15*time.Second, func() error {
		for i := range 3 {
			if _, err := c.Raw(i).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "ok", Value: "1"}); err != nil {
				return err
			}
		}
		return nil
	}, "every store takes raw writes again")
	c.Links.Isolate(3, 3)
	if _, err := c.Raw(2).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "lost", Value: "y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Modes(0).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong", Force: true}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 15*time.Second, func() error {
		g, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "lost"})
		if err != nil {
			return err
		}
		if g.GetFound() {
			return errors.New("a write only the missing store had survived a forced switch?")
		}
		return nil
	}, "the forced switch completes without store 3")
	c.Links.Heal()
}

// TestReadsOnTheOtherMode checks what the README promises: RawGet and
// RawScan on a strong namespace read the store's own replica (possibly
// stale), while Get and Scan on an eventual namespace are refused.
func TestReadsOnTheOtherMode(t *testing.T) {
	c := eventualCluster(t)
	ctx := ctxT(t, 20*time.Second)
	r, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "s", Value: "strong-value"})
	if err != nil || !r.GetSuccess() {
		t.Fatal(r, err)
	}
	for i := range 3 {
		storetest.Eventually(t, 5*time.Second, func() error {
			g, err := c.Raw(i).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "default", Key: "s"})
			if err != nil || g.GetValue() != "strong-value" {
				return fmt.Errorf("RawGet on strong = %v, %v", g, err)
			}
			sc, err := c.Raw(i).RawScan(ctx, &kvrpc.RawScanRequest{Namespace: "default"})
			if err != nil || len(sc.GetKvs()) != 1 || sc.GetKvs()[0].GetValue() != "strong-value" {
				return fmt.Errorf("RawScan on strong = %v, %v", sc, err)
			}
			return nil
		}, "store %d reads its replica of a strong namespace", i+1)
	}
	if _, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "e", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cas(1).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "e"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Get on eventual = %v, want FailedPrecondition", err)
	}
	if _, err := c.Cas(1).Scan(ctx, &kvrpc.ScanRequest{Namespace: "logs"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Scan on eventual = %v, want FailedPrecondition", err)
	}
	if _, err := c.Cas(1).Delete(ctx, &kvrpc.DeleteRequest{Namespace: "logs", Key: "e"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Delete on eventual = %v, want FailedPrecondition", err)
	}
	if _, err := c.Raw(1).RawDelete(ctx, &kvrpc.RawDeleteRequest{Namespace: "default", Key: "s"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RawDelete on strong = %v, want FailedPrecondition", err)
	}
}
