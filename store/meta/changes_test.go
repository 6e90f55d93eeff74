package meta

import (
	"fmt"
	"testing"

	"github.com/rdb-project/rdb/proto/storepb"
)

// TestChangeFeed: the feed hands the switch driver each changed row once,
// the newest of each namespace; past its limit it keeps none and says so
// (the driver then reads the whole table), and starts over after.
func TestChangeFeed(t *testing.T) {
	var f changeFeed
	f.add(&storepb.NamespaceRecord{Name: "a", Version: 1})
	f.add(&storepb.NamespaceRecord{Name: "a", Version: 2})
	f.add(&storepb.NamespaceRecord{Name: "b", Version: 1})
	recs, ok := f.take()
	if !ok || len(recs) != 2 {
		t.Fatalf("take() = %v, %v; want a and b", recs, ok)
	}
	for _, r := range recs {
		if r.GetName() == "a" && r.GetVersion() != 2 {
			t.Fatalf("a at version %d, want 2", r.GetVersion())
		}
	}
	if recs, ok := f.take(); !ok || len(recs) != 0 {
		t.Fatalf("second take() = %v, %v; want nothing, ok", recs, ok)
	}
	for i := range changeFeedLimit + 1 {
		f.add(&storepb.NamespaceRecord{Name: fmt.Sprintf("n%d", i), Version: 1})
	}
	if recs, ok := f.take(); ok || len(recs) != 0 {
		t.Fatalf("take() after %d changes = %d rows, %v; want none, not ok", changeFeedLimit+1, len(recs), ok)
	}
	f.add(&storepb.NamespaceRecord{Name: "c", Version: 1})
	if recs, ok := f.take(); !ok || len(recs) != 1 {
		t.Fatalf("take() after the overflow was taken = %v, %v; want c", recs, ok)
	}
}
