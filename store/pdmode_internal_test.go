package store

import (
	"testing"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// TestWatchVersionsOutOfOrder delivers a namespace's versions to a PD-mode
// store out of order: it never applies (nor persists) an older version
// after a newer one, and after a restart it holds the newest.
func TestWatchVersionsOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{StoreID: 1, Addr: "127.0.0.1:0", DataDir: dir, PD: []string{"127.0.0.1:1"}}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := s.auth.(*pdAuthority)
	deliver := func(rev uint64, mode string, version uint64) {
		t.Helper()
		err := a.applyWatch(&pdpb.WatchNamespacesResponse{Revision: rev, Records: []*storepb.NamespaceRecord{
			{Name: "logs", Mode: mode, Version: version, Epoch: version},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	deliver(9, "strong", 9)
	deliver(5, "eventual", 5) // an old response arriving late
	deliver(7, "eventual", 7)
	if r, _ := s.table.Get("logs"); r.GetVersion() != 9 || r.GetMode() != "strong" {
		t.Fatalf("after out-of-order delivery the row is %v, want version 9 strong", r)
	}
	if a.appliedRevision() != 9 {
		t.Fatalf("applied revision %d went back", a.appliedRevision())
	}
	s.Stop()

	s, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if r, _ := s.table.Get("logs"); r.GetVersion() != 9 || r.GetMode() != "strong" {
		t.Fatalf("after a restart the row is %v, want version 9 strong", r)
	}
	if got := s.auth.(*pdAuthority).appliedRevision(); got != 9 {
		t.Fatalf("after a restart the applied revision is %d", got)
	}
}
