package modeswitch

import (
	"fmt"
	"testing"

	"github.com/rdb-project/rdb/proto/storepb"
)

// TestChangeFeed: the feed hands the switch driver each changed row once,
// the newest of each namespace; past its limit it keeps none and says so
// (the driver then reads the whole table), and starts over after.
func TestChangeFeed(t *testing.T) {
	var f Feed
	f.Add(&storepb.NamespaceRecord{Name: "a", Version: 1})
	f.Add(&storepb.NamespaceRecord{Name: "a", Version: 2})
	f.Add(&storepb.NamespaceRecord{Name: "b", Version: 1})
	recs, ok := f.Take()
	if !ok || len(recs) != 2 {
		t.Fatalf("Take() = %v, %v; want a and b", recs, ok)
	}
	for _, r := range recs {
		if r.GetName() == "a" && r.GetVersion() != 2 {
			t.Fatalf("a at version %d, want 2", r.GetVersion())
		}
	}
	if recs, ok := f.Take(); !ok || len(recs) != 0 {
		t.Fatalf("second Take() = %v, %v; want nothing, ok", recs, ok)
	}
	for i := range FeedLimit + 1 {
		f.Add(&storepb.NamespaceRecord{Name: fmt.Sprintf("n%d", i), Version: 1})
	}
	if recs, ok := f.Take(); ok || len(recs) != 0 {
		t.Fatalf("Take() after %d changes = %d rows, %v; want none, not ok", FeedLimit+1, len(recs), ok)
	}
	f.Add(&storepb.NamespaceRecord{Name: "c", Version: 1})
	if recs, ok := f.Take(); !ok || len(recs) != 1 {
		t.Fatalf("Take() after the overflow was taken = %v, %v; want c", recs, ok)
	}
	f.Add(&storepb.NamespaceRecord{Name: "d", Version: 1})
	f.Lost()
	if recs, ok := f.Take(); ok || len(recs) != 0 {
		t.Fatalf("Take() after Lost = %v, %v; want none, not ok", recs, ok)
	}
}
