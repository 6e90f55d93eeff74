package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/storetest"
)

// TestLeadersSpreadAtCreation: in static mode, new strong namespaces are
// led by every store, not all by the lowest store id.
func TestLeadersSpreadAtCreation(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	const n = 30
	for i := range n {
		if _, err := c.Modes(i%3).GetMode(ctxT(t, 10*time.Second), &raftpb.GetModeRequest{Namespace: fmt.Sprintf("ns%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.Eventually(t, 20*time.Second, func() error {
		leads := make([]int, 3)
		for i := range n {
			for s := range 3 {
				if st, ok := c.Store(s).GroupStatus(fmt.Sprintf("ns%d", i)); ok && st.IsLeader {
					leads[s]++
				}
			}
		}
		for s, l := range leads {
			if l < n/3/2 {
				return fmt.Errorf("leaders per store %v: store %d leads %d of %d", leads, s+1, l, n)
			}
		}
		return nil
	}, "leaders spread")
}
