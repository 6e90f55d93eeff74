package raftstore

import (
	"flag"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var openGroups = flag.Int("open.groups", 20000, "groups BenchmarkOpen loads")

// BenchmarkOpen: how long a store with many groups (single-member, all
// applied) takes to load them at start-up.
func BenchmarkOpen(b *testing.B) {
	fs := vfs.NewMem()
	n := newNet()
	nd, err := n.open(1, fs)
	if err != nil {
		b.Fatal(err)
	}
	for g := uint64(1); g <= uint64(*openGroups); g++ {
		nd.rs.CreateGroupAsync(g, []uint64{1}, []KV{{Key: []byte("k"), Value: []byte("v")}}, true)
	}
	eventually(b, 5*time.Minute, func() error {
		_, err := nd.rs.ProposeRetrying(ctxT(b, 10*time.Second), uint64(*openGroups), []byte("x"))
		return err
	})
	nd.stop()
	b.ResetTimer()
	for b.Loop() {
		nd, err := n.open(1, fs)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		nd.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(*openGroups), "groups")
}
