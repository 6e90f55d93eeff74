package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store/storetest"
)

// leaderOf is the index of the store that leads ns's group, as every
// running store sees it (it waits until they agree).
func leaderOf(t *testing.T, c *storetest.Cluster, ns string) int {
	t.Helper()
	var leader uint64
	storetest.Eventually(t, 10*time.Second, func() error {
		leader = 0
		for i := range c.N() {
			st, ok := c.Store(i).GroupStatus(ns)
			if !ok || st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				return fmt.Errorf("store %d sees leader %d", i+1, st.Leader)
			}
			leader = st.Leader
		}
		return nil
	}, "every store knows the leader of %s", ns)
	return int(leader - 1)
}

// hinted is the rdb-leader header of an answer ("" if none).
func hinted(md metadata.MD) string {
	if v := md.Get("rdb-leader"); len(v) == 1 {
		return v[0]
	}
	return strings.Join(md.Get("rdb-leader"), ",")
}

// forwardedCount is store metrics' count of method's calls sent on to
// another store.
func forwardedCount(t *testing.T, metrics, method string) float64 {
	t.Helper()
	n, _ := metricValue(httpGet(t, metrics, "/metrics"), `rdb_forwarded_requests_total\{method="`+method+`"\}`)
	return n
}

// TestLeaderHint: every strong call's answer names the namespace's leader
// (rdb-leader: its address), whichever store answers, errors included;
// eventual namespaces' answers do not. A call through a follower is
// counted as forwarded (rdb_forwarded_requests_total); one sent to the
// leader the hint names is not.
func TestLeaderHint(t *testing.T) {
	metrics, withMetrics := metricsAddrs(t, 3)
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}, Configure: withMetrics})
	ctx := ctxT(t, 30*time.Second)
	if r, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "h", Value: "v"}); err != nil || !r.GetSuccess() {
		t.Fatalf("CAS = %v, %v", r, err)
	}
	leader := leaderOf(t, c, "default")
	want := c.Addr(leader)
	for i := range 3 {
		calls := map[string]func(md *metadata.MD) error{
			"CompareAndSwap": func(md *metadata.MD) error {
				_, err := c.Cas(i).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "h", Value: "x", ExpectedVersion: 1}, grpc.Header(md))
				return err // a mismatch: an answer
			},
			"Get": func(md *metadata.MD) error {
				_, err := c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "h"}, grpc.Header(md))
				return err
			},
			"Delete": func(md *metadata.MD) error {
				_, err := c.Cas(i).Delete(ctx, &kvrpc.DeleteRequest{Namespace: "default", Key: "none"}, grpc.Header(md))
				return err
			},
			"Scan": func(md *metadata.MD) error {
				_, err := c.Cas(i).Scan(ctx, &kvrpc.ScanRequest{Namespace: "default"}, grpc.Header(md))
				return err
			},
			"BatchGet": func(md *metadata.MD) error {
				_, err := c.Cas(i).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "default", Keys: []string{"h"}}, grpc.Header(md))
				return err
			},
		}
		for name, call := range calls {
			var md metadata.MD
			if err := call(&md); err != nil {
				t.Fatalf("%s through store %d: %v", name, i+1, err)
			}
			if got := hinted(md); got != want {
				t.Errorf("%s through store %d: rdb-leader %q, want %q (store %d)", name, i+1, got, want, leader+1)
			}
		}
		// An error names the leader too.
		var md metadata.MD
		_, err := c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: ""}, grpc.Header(&md))
		if status.Code(err) != codes.InvalidArgument || hinted(md) != want {
			t.Errorf("a refused Get through store %d: %v with rdb-leader %q, want InvalidArgument with %q", i+1, err, hinted(md), want)
		}
		// An eventual namespace has no leader to name.
		md = nil
		_, err = c.Cas(i).Get(ctx, &kvrpc.GetRequest{Namespace: "logs", Key: "a"}, grpc.Header(&md))
		if status.Code(err) != codes.FailedPrecondition || hinted(md) != "" {
			t.Errorf("Get on eventual logs through store %d: %v with rdb-leader %q, want FailedPrecondition and none", i+1, err, hinted(md))
		}
	}

	// Through a follower, each call takes a hop to the leader; straight to
	// the leader, none.
	follower := (leader + 1) % 3
	const method = "/kvrpc.KvCas/Get"
	before, leaderBefore := forwardedCount(t, metrics[follower], method), forwardedCount(t, metrics[leader], method)
	var md metadata.MD
	for range 10 {
		if _, err := c.Cas(follower).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "h"}, grpc.Header(&md)); err != nil {
			t.Fatal(err)
		}
	}
	if n := forwardedCount(t, metrics[follower], method); n != before+10 {
		t.Fatalf("follower store %d counts %v forwarded Gets, want %v", follower+1, n, before+10)
	}
	// The client follows the hint.
	to := -1
	for i := range 3 {
		if c.Addr(i) == hinted(md) {
			to = i
		}
	}
	if to != leader {
		t.Fatalf("the hint %q names no store, or not the leader (store %d)", hinted(md), leader+1)
	}
	for range 10 {
		if _, err := c.Cas(to).Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := forwardedCount(t, metrics[to], method); n != leaderBefore {
		t.Fatalf("the leader counts %v forwarded Gets, want %v: calls sent to it took a hop", n, leaderBefore)
	}
	if n := forwardedCount(t, metrics[follower], method); n != before+10 {
		t.Fatalf("the follower counts %v forwarded Gets after calls went to the leader, want %v", n, before+10)
	}
}

// TestBatchForwardedInPDMode: a store that holds no replica of a namespace
// answers the batch calls by forwarding them to one that does (counted per
// method), and passes on the leader hint of a strong namespace's answer.
func TestBatchForwardedInPDMode(t *testing.T) {
	metrics, withMetrics := metricsAddrs(t, 4)
	_, c, cli := placedCluster(t, 4, withMetrics)
	c.WaitReady()
	ctx := ctxT(t, time.Minute)
	if _, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "pe", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, 20*time.Second, func() error {
		_, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "ps", Key: "k", Value: "v"})
		return err
	}, "create and write ps")
	placed := waitPlaced(t, cli, []string{"pe", "ps"}, nil, 30*time.Second)
	outside := func(ns string) int {
		for i := range c.N() {
			if !slices.Contains(placed[ns], uint64(i+1)) {
				return i
			}
		}
		t.Fatalf("%s is on every store: %v", ns, placed[ns])
		return -1
	}

	// Eventual: every batch call through a store without a replica.
	o := outside("pe")
	keys := batchKeys("f", 50)
	storetest.Eventually(t, 20*time.Second, func() error {
		_, err := c.Raw(o).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "pe", Pairs: pairsOf(keys, "v")})
		return err
	}, "RawBatchPut through store %d", o+1)
	g, err := c.Raw(o).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "pe", Keys: keys})
	if err != nil || uniform(g.GetPairs(), keys) != nil || len(g.GetPairs()) != len(keys) {
		t.Fatalf("RawBatchGet through store %d: %d pairs, %v", o+1, len(g.GetPairs()), err)
	}
	if _, err := c.Raw(o).RawBatchDelete(ctx, &kvrpc.RawBatchDeleteRequest{Namespace: "pe", Keys: keys[:25]}); err != nil {
		t.Fatal(err)
	}
	for _, id := range placed["pe"] {
		storetest.Eventually(t, 10*time.Second, func() error {
			g, err := c.Raw(int(id-1)).RawBatchGet(ctx, &kvrpc.RawBatchGetRequest{Namespace: "pe", Keys: keys})
			if err != nil || len(g.GetPairs()) != 25 || g.GetPairs()[0].GetKey() != keys[25] {
				return fmt.Errorf("%d pairs, %v", len(g.GetPairs()), err)
			}
			return nil
		}, "replica on store %d has the forwarded batches", id)
	}
	for _, m := range []string{"/kvrpc.KvRaw/RawBatchPut", "/kvrpc.KvRaw/RawBatchGet", "/kvrpc.KvRaw/RawBatchDelete"} {
		if n := forwardedCount(t, metrics[o], m); n < 1 {
			t.Errorf("store %d counts %v forwarded %s", o+1, n, m)
		}
	}

	// Strong: BatchGet forwarded, with the holder's leader hint.
	o = outside("ps")
	var md metadata.MD
	b, err := c.Cas(o).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "ps", Keys: []string{"k"}}, grpc.Header(&md))
	if err != nil || len(b.GetKvs()) != 1 || b.GetKvs()[0].GetValue() != "v" {
		t.Fatalf("BatchGet through store %d = %v, %v", o+1, b, err)
	}
	st, err := cli.GetNamespace(ctx, "ps", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.Addr(int(st.GetLeader() - 1)); hinted(md) != want {
		t.Fatalf("forwarded BatchGet: rdb-leader %q, want %q (store %d)", hinted(md), want, st.GetLeader())
	}
	if n := forwardedCount(t, metrics[o], "/kvrpc.KvCas/BatchGet"); n < 1 {
		t.Errorf("store %d counts %v forwarded BatchGets", o+1, n)
	}
}
