package pdfollow

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/modetable"
)

// TestWatchMustContinueTheAppliedTable: once a store applied revision 10,
// a response behind it is refused (PD went back), except a progress
// report of a lagging member, which is skipped; a whole table must hold,
// of every row it has not changed since revision 10, the version the store
// applied.
func TestWatchMustContinueTheAppliedTable(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := New(Config{StoreID: 1, PD: []string{"127.0.0.1:1"}, DB: db, Table: modetable.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := func(name string, version uint64) *storepb.NamespaceRecord {
		return &storepb.NamespaceRecord{Name: name, Mode: "eventual", Version: version, Epoch: 1}
	}
	if err := f.ApplyWatch(&pdpb.WatchNamespacesResponse{Revision: 10, Reload: true,
		Records: []*storepb.NamespaceRecord{rec("a", 5), rec("b", 10)}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		resp         *pdpb.WatchNamespacesResponse
		skip, ok     bool
		wantPDBehind bool
	}{
		{"a change after the store's revision", &pdpb.WatchNamespacesResponse{Revision: 11, Records: []*storepb.NamespaceRecord{rec("c", 11)}}, false, true, false},
		{"progress at the store's revision", &pdpb.WatchNamespacesResponse{Revision: 10}, false, true, false},
		{"progress behind, from a lagging member", &pdpb.WatchNamespacesResponse{Revision: 8}, true, true, false},
		{"a change behind", &pdpb.WatchNamespacesResponse{Revision: 8, Records: []*storepb.NamespaceRecord{rec("a", 8)}}, false, false, true},
		{"the whole table behind", &pdpb.WatchNamespacesResponse{Revision: 9, Reload: true, Records: []*storepb.NamespaceRecord{rec("a", 5)}}, false, false, true},
		{"the whole table, consistent", &pdpb.WatchNamespacesResponse{Revision: 20, Reload: true,
			Records: []*storepb.NamespaceRecord{rec("a", 5), rec("b", 15), rec("c", 12)}}, false, true, false},
		{"the whole table with a row the store never had", &pdpb.WatchNamespacesResponse{Revision: 20, Reload: true,
			Records: []*storepb.NamespaceRecord{rec("a", 5), rec("x", 7)}}, false, false, false},
		{"the whole table with another version of a row", &pdpb.WatchNamespacesResponse{Revision: 20, Reload: true,
			Records: []*storepb.NamespaceRecord{rec("a", 6)}}, false, false, false},
	} {
		skip, err := f.checkWatch(tc.resp)
		if skip != tc.skip || (err == nil) != tc.ok || clusterid.IsPDBehind(err) != tc.wantPDBehind {
			t.Errorf("%s: skip %v, err %v; want skip %v, ok %v, PD behind %v", tc.name, skip, err, tc.skip, tc.ok, tc.wantPDBehind)
		}
	}
}
