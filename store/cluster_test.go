package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/storetest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func modesOf(t *testing.T, c *storetest.Cluster, i int) map[string]*raftpb.NamespaceMode {
	t.Helper()
	resp, err := c.Modes(i).ListNamespaceModes(ctxT(t, 5*time.Second), &raftpb.ListNamespaceModesRequest{})
	if err != nil {
		t.Fatalf("ListNamespaceModes on store %d: %v", i+1, err)
	}
	out := make(map[string]*raftpb.NamespaceMode)
	for _, m := range resp.GetNamespaces() {
		out[m.GetNamespace()] = m
	}
	return out
}

// TestQuickstartStrongPath follows the quickstart: three stores seeded with
// logs=eventual, the mode commands, then CAS and Get through any store.
func TestQuickstartStrongPath(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})

	for i := range 3 {
		storetest.Eventually(t, 5*time.Second, func() error {
			m := modesOf(t, c, i)
			if m["logs"].GetMode() != "eventual" || m["logs"].GetFromDefault() {
				return fmt.Errorf("logs = %v", m["logs"])
			}
			if m["default"].GetMode() != "strong" {
				return fmt.Errorf("default = %v", m["default"])
			}
			return nil
		}, "store %d lists the seeded modes", i+1)
	}

	gm, err := c.Modes(1).GetMode(ctxT(t, 5*time.Second), &raftpb.GetModeRequest{Namespace: "never_configured"})
	if err != nil {
		t.Fatal(err)
	}
	if gm.GetMode() != "strong" || !gm.GetFromDefault() || gm.GetVersion() == 0 {
		t.Fatalf("GetMode(never_configured) = %v, want strong from_default with a version", gm)
	}

	up, err := c.Modes(0).UpdateNamespaceMode(ctxT(t, 5*time.Second), &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"})
	if err != nil {
		t.Fatal(err)
	}
	if !up.GetChanged() || up.GetMode() != "strong" || up.GetFromDefault() {
		t.Fatalf("UpdateNamespaceMode = %v", up)
	}
	start := time.Now()
	for i := range 3 {
		storetest.Eventually(t, time.Second, func() error {
			if m := modesOf(t, c, i)["logs"]; m.GetMode() != "strong" || m.GetVersion() != up.GetVersion() {
				return fmt.Errorf("store %d has logs = %v", i+1, m)
			}
			return nil
		}, "store %d applies the update", i+1)
	}
	t.Logf("all stores agree %v after the update returned", time.Since(start))

	again, err := c.Modes(2).UpdateNamespaceMode(ctxT(t, 5*time.Second), &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"})
	if err != nil || again.GetChanged() || again.GetVersion() != up.GetVersion() {
		t.Fatalf("repeating the update = %v, %v; want unchanged at version %d", again, err, up.GetVersion())
	}

	cas, err := c.Cas(0).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: "a", Value: "b", ExpectedVersion: 0})
	if err != nil || !cas.GetSuccess() || cas.GetVersion() == 0 {
		t.Fatalf("CAS = %v, %v", cas, err)
	}
	for i := range 3 {
		g, err := c.Cas(i).Get(ctxT(t, 5*time.Second), &kvrpc.GetRequest{Namespace: "default", Key: "a"})
		if err != nil || !g.GetFound() || g.GetValue() != "b" || g.GetVersion() != cas.GetVersion() {
			t.Fatalf("Get on store %d = %v, %v", i+1, g, err)
		}
	}
	// A write through a follower, read through another.
	cas2, err := c.Cas(2).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: "a", Value: "c", ExpectedVersion: cas.GetVersion()})
	if err != nil || !cas2.GetSuccess() || cas2.GetVersion() <= cas.GetVersion() {
		t.Fatalf("CAS via store 3 = %v, %v", cas2, err)
	}
	g, err := c.Cas(1).Get(ctxT(t, 5*time.Second), &kvrpc.GetRequest{Namespace: "default", Key: "a"})
	if err != nil || g.GetValue() != "c" {
		t.Fatalf("Get via store 2 after CAS via store 3 = %v, %v", g, err)
	}
}

func TestStaleCasChangesNothing(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	ctx := ctxT(t, 10*time.Second)
	first, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v1"})
	if err != nil || !first.GetSuccess() {
		t.Fatalf("first CAS = %v, %v", first, err)
	}
	second, err := c.Cas(1).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v2", ExpectedVersion: first.GetVersion()})
	if err != nil || !second.GetSuccess() {
		t.Fatalf("second CAS = %v, %v", second, err)
	}
	for _, expected := range []uint64{0, first.GetVersion(), second.GetVersion() + 1000} {
		stale, err := c.Cas(2).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "lost", ExpectedVersion: expected})
		if err != nil {
			t.Fatalf("stale CAS is an answer, not an error: %v", err)
		}
		if stale.GetSuccess() || stale.Success == nil || stale.GetVersion() != second.GetVersion() || stale.GetValue() != "v2" {
			t.Fatalf("stale CAS (expected %d) = %v; want success=false, version %d, value v2", expected, stale, second.GetVersion())
		}
	}
	g, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "k"})
	if err != nil || g.GetValue() != "v2" || g.GetVersion() != second.GetVersion() {
		t.Fatalf("Get after stale CAS = %v, %v", g, err)
	}
	// Delete with a stale version is refused the same way; then deleted.
	d, err := c.Cas(0).Delete(ctx, &kvrpc.DeleteRequest{Namespace: "default", Key: "k", ExpectedVersion: first.GetVersion()})
	if err != nil || d.GetSuccess() || d.GetVersion() != second.GetVersion() {
		t.Fatalf("stale Delete = %v, %v", d, err)
	}
	d, err = c.Cas(0).Delete(ctx, &kvrpc.DeleteRequest{Namespace: "default", Key: "k", ExpectedVersion: second.GetVersion()})
	if err != nil || !d.GetSuccess() || !d.GetFound() {
		t.Fatalf("Delete = %v, %v", d, err)
	}
	g, err = c.Cas(2).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "k"})
	if err != nil || g.GetFound() {
		t.Fatalf("Get after Delete = %v, %v", g, err)
	}
}

func TestInvalidInputGetsClearErrors(t *testing.T) {
	c := storetest.NewCluster(t, 1, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		says string
	}{
		{"bad namespace", func() error {
			_, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "Bad/NS", Key: "a"})
			return err
		}, codes.InvalidArgument, "namespace"},
		{"empty key", func() error {
			_, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "default"})
			return err
		}, codes.InvalidArgument, "key is empty"},
		{"oversize value", func() error {
			_, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "a", Value: strings.Repeat("x", 1<<20+1)})
			return err
		}, codes.InvalidArgument, "maximum"},
		{"unknown mode", func() error {
			_, err := c.Modes(0).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "linearizable"})
			return err
		}, codes.InvalidArgument, "strong"},
		{"raw write on strong", func() error {
			_, err := c.Raw(0).RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "default", Key: "a", Value: "b"})
			return err
		}, codes.FailedPrecondition, "KvCas"},
		{"cas on eventual", func() error {
			_, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "logs", Key: "a", Value: "b"})
			return err
		}, codes.FailedPrecondition, "KvRaw"},
		{"get on eventual", func() error {
			_, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "a"})
			return err
		}, codes.FailedPrecondition, "RawGet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want %v saying %q", err, tc.code, tc.says)
			}
		})
	}
	// Nothing was half-written by the refused calls.
	g, err := c.Raw(0).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "logs", Key: "a"})
	if err != nil || g.GetFound() {
		t.Fatalf("RawGet after refused writes = %v, %v", g, err)
	}
}

// TestRestartKeepsEverything stops each store in turn and restarts it with
// the same config: acknowledged writes and the mode table survive.
func TestRestartKeepsEverything(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Modes(0).UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "audit", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	versions := map[string]uint64{}
	for k := range 20 {
		key := fmt.Sprintf("k%02d", k)
		r, err := c.Cas(k%3).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: key, Value: "v-" + key})
		if err != nil || !r.GetSuccess() {
			t.Fatalf("CAS %s = %v, %v", key, r, err)
		}
		versions[key] = r.GetVersion()
	}
	for i := range 3 {
		c.Restart(i)
		c.WaitReady()
		for key, ver := range versions {
			storetest.Eventually(t, 10*time.Second, func() error {
				g, err := c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: key})
				if err != nil {
					return err
				}
				if g.GetValue() != "v-"+key || g.GetVersion() != ver {
					return fmt.Errorf("Get %s = %v", key, g)
				}
				return nil
			}, "store %d has %s after restart", i+1, key)
		}
		m := modesOf(t, c, i)
		if m["audit"].GetMode() != "eventual" || m["logs"].GetMode() != "eventual" || m["default"].GetMode() != "strong" {
			t.Fatalf("store %d table after restart: %v", i+1, m)
		}
	}
}

// TestLeaderLossKeepsServing stops the leader of the default namespace
// while clients write; a new leader serves within a few seconds.
func TestLeaderLossKeepsServing(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "warm", Value: "x"}); err != nil {
		t.Fatal(err)
	}
	leader := -1
	storetest.Eventually(t, 5*time.Second, func() error {
		for i := range 3 {
			if st, ok := c.Store(i).GroupStatus("default"); ok && st.IsLeader {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("no leader")
	}, "default has a leader")

	var ok, failed atomic.Int64
	var lastOK atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := (leader + 1 + w%2) % 3 // the survivors
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := c.Cas(target).CompareAndSwap(cctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("w%d-%d", w, n), Value: "v"})
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				lastOK.Store(time.Now().UnixNano())
			}
		}()
	}
	storetest.Eventually(t, 5*time.Second, func() error {
		if ok.Load() < 50 {
			return fmt.Errorf("%d writes", ok.Load())
		}
		return nil
	}, "writes flow before the leader stops")
	c.Stop(leader)
	stopped := time.Now()
	before := ok.Load()
	storetest.Eventually(t, 10*time.Second, func() error {
		if ok.Load() < before+50 {
			return fmt.Errorf("%d writes since the leader stopped", ok.Load()-before)
		}
		return nil
	}, "writes succeed again after the leader stopped")
	t.Logf("50 writes succeeded %v after the leader stopped (%d failed meanwhile)", time.Since(stopped), failed.Load())
	close(stop)
	wg.Wait()
}

// TestSnapshotCatchUp stops a store while more writes than the compaction
// threshold are made; it catches up by snapshot when it returns.
func TestSnapshotCatchUp(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{CompactThreshold: 40})
	ctx := ctxT(t, 60*time.Second)
	if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "first", Value: "x"}); err != nil {
		t.Fatal(err)
	}
	c.Stop(2)
	for k := range 300 {
		if _, err := c.Cas(k%2).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%03d", k), Value: fmt.Sprint(k)}); err != nil {
			t.Fatalf("CAS %d: %v", k, err)
		}
	}
	c.Start(2)
	// RawGet on a strong namespace reads the store's own replica: it shows
	// what store 3 holds without going through the leader.
	storetest.Eventually(t, 20*time.Second, func() error {
		for _, k := range []int{0, 150, 299} {
			g, err := c.Raw(2).RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "default", Key: fmt.Sprintf("k%03d", k)})
			if err != nil {
				return err
			}
			if g.GetValue() != fmt.Sprint(k) {
				return fmt.Errorf("k%03d = %v", k, g)
			}
		}
		// The status is published at the end of the loop's round, after
		// the state it describes is readable.
		if st, _ := c.Store(2).GroupStatus("default"); st.Applied < 300 || st.SnapshotsApplied == 0 {
			return fmt.Errorf("store 3: applied %d, snapshots installed %d; want >= 300 and a snapshot", st.Applied, st.SnapshotsApplied)
		}
		return nil
	}, "store 3 catches up by snapshot")
}

// TestRestartedStoreLeavesGroupsAsleep: a restarted store's replicas of
// idle namespaces led by other stores start asleep and stay so until used
// (start-up woke every one: with 100,000 namespaces, 100,000 elections),
// and a namespace used through it is served.
func TestRestartedStoreLeavesGroupsAsleep(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	ctx := ctxT(t, 60*time.Second)
	var names []string
	for i := range 8 {
		ns := fmt.Sprintf("idle%d", i)
		if r, err := c.Cas(i%3).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: "k", Value: "v"}); err != nil || !r.GetSuccess() {
			t.Fatalf("CAS on %s = %v, %v", ns, r, err)
		}
		names = append(names, ns)
	}
	storetest.Eventually(t, 20*time.Second, func() error {
		for _, ns := range names {
			for i := range 3 {
				if st, ok := c.Store(i).GroupStatus(ns); !ok || !st.Asleep {
					return fmt.Errorf("store %d: %s is awake (%+v)", i+1, ns, st)
				}
			}
		}
		return nil
	}, "every namespace's group falls asleep")
	// Those it led wake (it voted for itself in their last term): they
	// may have no leader anywhere else. The others sleep on.
	ledElsewhere := map[string]bool{}
	for _, ns := range names {
		st, _ := c.Store(1).GroupStatus(ns)
		ledElsewhere[ns] = st.Leader != c.Store(1).ID()
	}
	c.Restart(1)
	c.WaitReady()
	for _, ns := range names {
		if st, ok := c.Store(1).GroupStatus(ns); ledElsewhere[ns] && (!ok || !st.Asleep) {
			t.Fatalf("restarted store: %s is awake (%+v); want asleep until used", ns, st)
		}
	}
	g, err := c.Cas(1).Get(ctx, &kvrpc.GetRequest{Namespace: names[0], Key: "k"})
	if err != nil || g.GetValue() != "v" {
		t.Fatalf("Get through the restarted store = %v, %v", g, err)
	}
}
