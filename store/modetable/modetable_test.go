package modetable

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/storepb"
)

func rec(ns, mode string, v uint64) *storepb.NamespaceRecord {
	return &storepb.NamespaceRecord{Name: ns, Mode: mode, Version: v}
}

func TestApplyKeepsTheNewestVersion(t *testing.T) {
	tb := New()
	for _, tc := range []struct {
		r       *storepb.NamespaceRecord
		applied bool
		mode    string
	}{
		{rec("logs", "eventual", 5), true, "eventual"},
		{rec("logs", "strong", 9), true, "strong"},
		{rec("logs", "eventual", 7), false, "strong"}, // older, arrives late
		{rec("logs", "eventual", 9), false, "strong"}, // same version
		{rec("logs", "eventual", 10), true, "eventual"},
	} {
		if got := tb.Apply(tc.r); got != tc.applied {
			t.Fatalf("Apply(v%d) = %v, want %v", tc.r.Version, got, tc.applied)
		}
		if r, _ := tb.Get("logs"); r.Mode != tc.mode {
			t.Fatalf("after v%d mode = %s, want %s", tc.r.Version, r.Mode, tc.mode)
		}
	}
}

func TestApplyWaitsForWritesInFlight(t *testing.T) {
	tb := New()
	tb.Apply(rec("logs", "eventual", 1))
	unlock := tb.Writes("logs")
	var applied atomic.Bool
	done := make(chan struct{})
	go func() {
		tb.Apply(rec("logs", "strong", 2))
		applied.Store(true)
		close(done)
	}()
	// The row must not change while a write holds the fence.
	select {
	case <-done:
		t.Fatal("row applied while a write was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	if r, _ := tb.Get("logs"); r.Mode != "eventual" {
		t.Fatalf("mode changed under the fence: %s", r.Mode)
	}
	unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("row not applied after the write finished")
	}
}

func TestWaitVersionAndHooks(t *testing.T) {
	tb := New()
	var seen atomic.Int32
	tb.OnChange(func(old, cur *storepb.NamespaceRecord) { seen.Add(1) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go tb.Apply(&storepb.NamespaceRecord{Name: "a", Mode: "strong", Version: 3, GroupId: 7})
	r, err := tb.WaitVersion(ctx, "a", 3)
	if err != nil || r.Version != 3 {
		t.Fatalf("WaitVersion = %v, %v", r, err)
	}
	if ns, ok := tb.NamespaceOfGroup(7); !ok || ns != "a" {
		t.Fatalf("NamespaceOfGroup(7) = %q, %v", ns, ok)
	}
	if seen.Load() != 1 {
		t.Fatalf("hook ran %d times", seen.Load())
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := tb.WaitVersion(short, "a", 4); err == nil {
		t.Fatal("WaitVersion for a version never applied returned nil")
	}
}

// TestEventualFollowsTheRows: the eventual index lists what the rows say,
// through switches both ways and rows applied out of order.
func TestEventualFollowsTheRows(t *testing.T) {
	tb := New()
	tb.Apply(&storepb.NamespaceRecord{Name: "b", Mode: "eventual", Version: 1})
	tb.Apply(&storepb.NamespaceRecord{Name: "a", Mode: "eventual", Version: 1})
	tb.Apply(&storepb.NamespaceRecord{Name: "c", Mode: "strong", Version: 1})
	if got := tb.Eventual(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Eventual() = %v, want [a b]", got)
	}
	tb.Apply(&storepb.NamespaceRecord{Name: "a", Mode: "strong", Version: 3})
	tb.Apply(&storepb.NamespaceRecord{Name: "a", Mode: "eventual", Version: 2}) // older: ignored
	tb.Apply(&storepb.NamespaceRecord{Name: "c", Mode: "eventual", Version: 2})
	if got := tb.Eventual(); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("Eventual() = %v, want [b c]", got)
	}
}

// TestWaitVersionWakesOnItsOwnRow: a caller waiting for one namespace's
// row wakes when that row arrives, whatever else is applied meanwhile; a
// caller that gives up leaves nothing behind.
func TestWaitVersionWakesOnItsOwnRow(t *testing.T) {
	tb := New()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan *storepb.NamespaceRecord, 1)
	go func() {
		r, err := tb.WaitVersion(ctx, "b", 2)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	for v := range uint64(100) {
		tb.Apply(&storepb.NamespaceRecord{Name: "a", Mode: "strong", Version: v + 1})
	}
	tb.Apply(&storepb.NamespaceRecord{Name: "b", Mode: "strong", Version: 1})
	select {
	case r := <-got:
		t.Fatalf("WaitVersion(b, 2) returned %v before version 2", r)
	default:
	}
	tb.Apply(&storepb.NamespaceRecord{Name: "b", Mode: "eventual", Version: 2})
	if r := <-got; r.GetVersion() != 2 {
		t.Fatalf("WaitVersion(b, 2) = %v", r)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if _, err := tb.WaitVersion(short, "c", 1); err == nil {
		t.Fatal("WaitVersion for a row never applied returned nil")
	}
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	if len(tb.waiting) != 0 {
		t.Fatalf("%d namespaces still have waiters: %v", len(tb.waiting), tb.waiting)
	}
}
