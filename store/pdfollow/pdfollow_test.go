package pdfollow

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/modetable"
)

// TestWatchVersionsOutOfOrder delivers a namespace's versions to a PD-mode
// store out of order: it never applies (nor persists) an older version
// after a newer one, and after a restart it holds the newest.
func TestWatchVersionsOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	open := func() (*pebble.DB, *modetable.Table, *Follower) {
		t.Helper()
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		table := modetable.New()
		f, err := New(Config{StoreID: 1, PD: []string{"127.0.0.1:1"}, DB: db, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		return db, table, f
	}
	db, table, f := open()
	deliver := func(rev uint64, mode string, version uint64) {
		t.Helper()
		err := f.ApplyWatch(&pdpb.WatchNamespacesResponse{Revision: rev, Records: []*storepb.NamespaceRecord{
			{Name: "logs", Mode: mode, Version: version, Epoch: version},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	deliver(9, "strong", 9)
	deliver(5, "eventual", 5) // an old response arriving late
	deliver(7, "eventual", 7)
	if r, _ := table.Get("logs"); r.GetVersion() != 9 || r.GetMode() != "strong" {
		t.Fatalf("after out-of-order delivery the row is %v, want version 9 strong", r)
	}
	if f.AppliedRevision() != 9 {
		t.Fatalf("applied revision %d went back", f.AppliedRevision())
	}
	f.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, table, f = open()
	defer db.Close()
	defer f.Close()
	if r, _ := table.Get("logs"); r.GetVersion() != 9 || r.GetMode() != "strong" {
		t.Fatalf("after a restart the row is %v, want version 9 strong", r)
	}
	if got := f.AppliedRevision(); got != 9 {
		t.Fatalf("after a restart the applied revision is %d", got)
	}
}
