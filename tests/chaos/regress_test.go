package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/raftpb"
)

// Bugs the suite found, each kept with what found it.

// TestConfiguredModeSurvivesEarlyClients: a client that named a namespace
// before the bootstrapping store had proposed its --namespace-mode row
// created it with the default mode (strong), and the configured mode was
// dropped for good (the first row wins). Found by the stale-read test
// (seed 1, -tags rdb_unsafe_reads): its cluster's readiness check calls
// GetMode on every namespace as soon as the stores start, and "lww" came
// up strong; the final check saw it never became eventual. Every run now
// checks the modes at start; this test starts clusters and asks at once.
func TestConfiguredModeSurvivesEarlyClients(t *testing.T) {
	modes := map[string]string{"logs": "eventual", "audit": "eventual", "cas": "strong"}
	for run := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := NewLocalCluster(ctx, t, LocalOptions{N: 3, Seed: uint64(run), NamespaceModes: modes})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for ns, want := range modes {
			for i := range c.N() {
				r, err := raftpb.NewRaftServiceClient(c.Conn(i)).GetMode(ctx, &raftpb.GetModeRequest{Namespace: ns})
				if err != nil || r.GetMode() != want || r.GetFromDefault() {
					t.Errorf("run %d: GetMode(%s) on store %d = %v, %v; want %s as configured", run, ns, i+1, r, err, want)
				}
			}
		}
		c.Close()
		cancel()
	}
}
