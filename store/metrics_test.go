package store_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// TestMetricsEndpoint: a store started with a metrics address serves
// Prometheus text on /metrics that counts the calls it answered and the
// Raft loop's synced batches, and pprof's index on /debug/pprof/.
func TestMetricsEndpoint(t *testing.T) {
	addr := storetest.FreeAddr(t)
	c := storetest.NewCluster(t, 1, storetest.Options{Configure: func(i int, cfg *store.Config) { cfg.MetricsAddr = addr }})
	for i := range 5 {
		r, err := c.Cas(0).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprintf("k%d", i), Value: "v"})
		if err != nil || !r.GetSuccess() {
			t.Fatalf("CAS: %v, %v", r, err)
		}
	}
	get := func(path string) string {
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
	metrics := get("/metrics")
	value := func(re string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("no %s in /metrics:\n%s", re, metrics)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if n := value(`rdb_grpc_requests_total\{code="OK",method="/kvrpc.KvCas/CompareAndSwap"\}`); n != 5 {
		t.Errorf("CompareAndSwap OK count = %v, want 5", n)
	}
	if n := value(`rdb_raft_synced_batches_total`); n < 1 {
		t.Errorf("synced batches = %v, want at least 1", n)
	}
	if n := value(`rdb_raft_entries_applied_total`); n < 5 {
		t.Errorf("entries applied = %v, want at least 5", n)
	}
	if body := get("/debug/pprof/"); !regexp.MustCompile(`goroutine`).MatchString(body) {
		t.Errorf("pprof index lists no goroutine profile")
	}
}
