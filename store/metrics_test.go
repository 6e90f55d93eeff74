package store_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// TestMetricsEndpoint: a store started with a metrics address serves
// Prometheus text on /metrics that counts the calls it answered (the batch
// calls too) and the Raft loop's synced batches, and pprof's index on
// /debug/pprof/.
func TestMetricsEndpoint(t *testing.T) {
	addr := storetest.FreeAddr(t)
	c := storetest.NewCluster(t, 1, storetest.Options{
		NamespaceModes: map[string]string{"logs": "eventual"},
		Configure:      func(i int, cfg *store.Config) { cfg.MetricsAddr = addr },
	})
	ctx := ctxT(t, 10*time.Second)
	for i := range 5 {
		r, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%d", i), Value: "v"})
		if err != nil || !r.GetSuccess() {
			t.Fatalf("CAS: %v, %v", r, err)
		}
	}
	for range 2 {
		if _, err := c.Raw(0).RawBatchPut(ctx, &kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: []*kvrpc.RawKv{{Key: "a", Value: "1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "default", Keys: []string{"k0", "k1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cas(0).BatchGet(ctx, &kvrpc.BatchGetRequest{Namespace: "logs", Keys: []string{"a"}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("BatchGet on eventual: %v", err)
	}
	metrics := httpGet(t, addr, "/metrics")
	value := func(re string) float64 {
		t.Helper()
		v, ok := metricValue(metrics, re)
		if !ok {
			t.Fatalf("no %s in /metrics:\n%s", re, metrics)
		}
		return v
	}
	if n := value(`rdb_grpc_requests_total\{code="OK",method="/kvrpc.KvCas/CompareAndSwap"\}`); n != 5 {
		t.Errorf("CompareAndSwap OK count = %v, want 5", n)
	}
	if n := value(`rdb_grpc_requests_total\{code="OK",method="/kvrpc.KvRaw/RawBatchPut"\}`); n != 2 {
		t.Errorf("RawBatchPut OK count = %v, want 2", n)
	}
	if n := value(`rdb_grpc_requests_total\{code="OK",method="/kvrpc.KvCas/BatchGet"\}`); n != 1 {
		t.Errorf("BatchGet OK count = %v, want 1", n)
	}
	if n := value(`rdb_grpc_requests_total\{code="FailedPrecondition",method="/kvrpc.KvCas/BatchGet"\}`); n != 1 {
		t.Errorf("BatchGet FailedPrecondition count = %v, want 1", n)
	}
	if n := value(`rdb_raft_synced_batches_total`); n < 1 {
		t.Errorf("synced batches = %v, want at least 1", n)
	}
	if n := value(`rdb_raft_entries_applied_total`); n < 5 {
		t.Errorf("entries applied = %v, want at least 5", n)
	}
	if body := httpGet(t, addr, "/debug/pprof/"); !regexp.MustCompile(`goroutine`).MatchString(body) {
		t.Errorf("pprof index lists no goroutine profile")
	}
}

// httpGet returns the body of http://addr/path, failing the test unless it
// answers 200.
func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
	}
	return string(body)
}

// metricValue is the value of the sample of Prometheus text whose name and
// labels match the regular expression re, and whether there is one.
func metricValue(metrics, re string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// metricsAddrs picks a metrics address for each of n stores, and the
// Configure that gives store i the i-th.
func metricsAddrs(t *testing.T, n int) ([]string, func(i int, cfg *store.Config)) {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = storetest.FreeAddr(t)
	}
	return addrs, func(i int, cfg *store.Config) { cfg.MetricsAddr = addrs[i] }
}
