package chaos

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCheckerCatchesStaleReads breaks the stores on purpose: they serve
// Get from their own replica without ReadIndex, so a store cut off from
// the others answers with what it had. The checker must say so. Run it
// with: go test -tags rdb_unsafe_reads -run TestCheckerCatchesStaleReads ./tests/chaos/
func TestCheckerCatchesStaleReads(t *testing.T) {
	if !unsafeReads {
		t.Skip("needs the test-only build tag: go test -tags rdb_unsafe_reads -run TestCheckerCatchesStaleReads ./tests/chaos/")
	}
	isolateOnly := onlyFaults("isolate-")
	for seed := uint64(1); seed <= 5; seed++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		res, err := RunLocal(ctx, LocalConfig{T: t, Seed: seed, Duration: 8 * time.Second, UnsafeFollowerReads: true,
			Faults: isolateOnly, VisualizeDir: t.TempDir(), Logger: logger(t)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: %d operations, faults %v", seed, res.Ops, res.Faults)
		for _, v := range res.Violations {
			if strings.Contains(v, "not linearizable") && len(res.Visualized) > 0 {
				t.Logf("caught: %s", v)
				return
			}
			t.Logf("violation: %s", v)
		}
	}
	t.Fatal("stale reads went unnoticed in 5 runs")
}
