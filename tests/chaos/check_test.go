package chaos

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Tests of the checker on histories written by hand: it accepts what a
// correct store may do and catches what it must not.

type hist struct {
	ops []*Op
}

// op appends an operation that ran from call to ret (in ticks).
func (h *hist) op(call, ret int64, o Op) *Op {
	o.Call, o.Return = call, ret
	if o.NS == "" {
		o.NS = "ns"
	}
	if o.Key == "" {
		o.Key = "k"
	}
	h.ops = append(h.ops, &o)
	return &o
}

func checkHist(t *testing.T, ns Namespace, h *hist, final map[string]map[string]Cand) Result {
	t.Helper()
	if ns.Name == "" {
		ns.Name = "ns"
	}
	if ns.Keys == nil {
		ns.Keys = []string{"k"}
	}
	return Check(Input{Namespaces: []Namespace{ns}, Ops: h.ops, Final: final, MaxOpDelay: 5, Timeout: 10 * time.Second})
}

func TestCheckStrong(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  func(h *hist)
		ok   bool
	}{
		{"cas then get", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Get, Found: true, OutValue: "a", Version: 10})
		}, true},
		{"stale read after a write returned", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Cas, Value: "b", Expected: 10, Success: true, Version: 12})
			h.op(21, 30, Op{Kind: Get, Found: true, OutValue: "a", Version: 10})
		}, false},
		{"concurrent read may see either", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Cas, Value: "b", Expected: 10, Success: true, Version: 12})
			h.op(15, 30, Op{Kind: Get, Found: true, OutValue: "a", Version: 10})
		}, true},
		{"acknowledged write lost", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(20, 30, Op{Kind: Get, Found: false})
		}, false},
		{"version goes backwards", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Delete, Expected: 10, Success: true, Found: true})
			h.op(21, 30, Op{Kind: Cas, Value: "b", Success: true, Version: 9})
		}, false},
		{"two cas succeed on one version", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Cas, Value: "b", Expected: 10, Success: true, Version: 12})
			h.op(11, 20, Op{Kind: Cas, Value: "c", Expected: 10, Success: true, Version: 13})
		}, false},
		{"mismatch reports the current value", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Cas, Value: "b", Expected: 0, Success: false, Version: 10, OutValue: "a"})
		}, true},
		{"mismatch reports a wrong value", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Cas, Value: "b", Expected: 0, Success: false, Version: 10, OutValue: "x"})
		}, false},
		{"lost answer, write seen later", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Outcome: Unknown})
			h.op(50, 60, Op{Kind: Get, Found: true, OutValue: "a", Version: 7})
			h.op(61, 70, Op{Kind: Cas, Value: "b", Expected: 7, Success: true, Version: 9})
		}, true},
		{"lost answer, never seen", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Outcome: Unknown})
			h.op(50, 60, Op{Kind: Get, Found: false})
		}, true},
		{"lost answer takes effect late", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Outcome: Unknown})
			h.op(50, 60, Op{Kind: Get, Found: false})
			h.op(70, 80, Op{Kind: Get, Found: true, OutValue: "a", Version: 7})
		}, true},
		{"value from nowhere", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(50, 60, Op{Kind: Get, Found: true, OutValue: "zz", Version: 11})
		}, false},
		{"a failed write has no effect", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Outcome: Failed})
			h.op(50, 60, Op{Kind: Get, Found: true, OutValue: "a", Version: 7})
		}, false},
		{"unconditional delete", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Delete, Success: true, Found: true})
			h.op(21, 30, Op{Kind: Delete, Success: true, Found: false})
			h.op(31, 40, Op{Kind: Cas, Value: "b", Success: true, Version: 15})
		}, true},
		{"deleted value comes back", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(11, 20, Op{Kind: Delete, Success: true, Found: true})
			h.op(21, 30, Op{Kind: Get, Found: true, OutValue: "a", Version: 10})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hist{}
			tc.ops(h)
			res := checkHist(t, Namespace{Mode: Strong}, h, nil)
			if got := len(res.Violations) == 0; got != tc.ok {
				t.Fatalf("linearizable = %v, want %v: %v", got, tc.ok, res.Violations)
			}
		})
	}
}

func TestCheckEventual(t *testing.T) {
	ts := func(w int64, s uint64) TS { return TS{Wall: w, Store: s} }
	for _, tc := range []struct {
		name  string
		ops   func(h *hist)
		final Cand
		ok    bool
	}{
		{"newest acknowledged wins", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
			h.op(0, 10, Op{Kind: RawPut, Value: "b", TS: ts(6, 2)})
		}, Cand{true, "b"}, true},
		{"older acknowledged write wins", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
			h.op(0, 10, Op{Kind: RawPut, Value: "b", TS: ts(6, 2)})
		}, Cand{true, "a"}, false},
		{"deleted key comes back", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
			h.op(11, 20, Op{Kind: RawDelete, TS: ts(15, 2)})
		}, Cand{true, "a"}, false},
		{"write with a lost answer may win", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
			h.op(11, 20, Op{Kind: RawPut, Value: "b", Outcome: Unknown})
		}, Cand{true, "b"}, true},
		{"acknowledged write lost", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
		}, Cand{}, false},
		{"raw read of a value never written", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
			h.op(11, 20, Op{Kind: RawGet, Found: true, OutValue: "zz"})
		}, Cand{true, "a"}, false},
		{"raw read of a write with a lost answer", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", TS: ts(5, 1)})
			h.op(0, 10, Op{Kind: RawPut, Value: "b", Outcome: Unknown})
			h.op(11, 20, Op{Kind: RawGet, Found: true, OutValue: "b"})
		}, Cand{true, "a"}, true},
		{"failed write appears", func(h *hist) {
			h.op(0, 10, Op{Kind: RawPut, Value: "a", Outcome: Failed})
		}, Cand{true, "a"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hist{}
			tc.ops(h)
			res := checkHist(t, Namespace{Mode: Eventual}, h, map[string]map[string]Cand{"ns": {"k": tc.final}})
			if got := len(res.Violations) == 0; got != tc.ok {
				t.Fatalf("ok = %v, want %v: %v", got, tc.ok, res.Violations)
			}
		})
	}
}

// A namespace that switches: strong, eventual from 100 to 200, strong.
func TestCheckSwitching(t *testing.T) {
	ts := func(w int64, s uint64) TS { return TS{Wall: w, Store: s} }
	ns := Namespace{Mode: Flip, Initial: "strong", Windows: []Window{{Start: 100, End: 200}}}
	for _, tc := range []struct {
		name string
		ops  func(h *hist)
		ok   bool
	}{
		{"strong value survives a round trip", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(210, 220, Op{Kind: Get, Found: true, OutValue: "a", Version: 40})
		}, true},
		{"strong value lost in a round trip", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(210, 220, Op{Kind: Get, Found: false})
		}, false},
		{"newest raw write is loaded", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(110, 120, Op{Kind: RawPut, Value: "r1", TS: ts(115, 1)})
			h.op(130, 140, Op{Kind: RawPut, Value: "r2", TS: ts(135, 2)})
			h.op(210, 220, Op{Kind: Get, Found: true, OutValue: "r2", Version: 40})
		}, true},
		{"older raw write is loaded", func(h *hist) {
			h.op(110, 120, Op{Kind: RawPut, Value: "r1", TS: ts(115, 1)})
			h.op(130, 140, Op{Kind: RawPut, Value: "r2", TS: ts(135, 2)})
			h.op(210, 220, Op{Kind: Get, Found: true, OutValue: "r1", Version: 40})
		}, false},
		{"strong value wins over acknowledged raw write", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(110, 120, Op{Kind: RawPut, Value: "r1", TS: ts(115, 1)})
			h.op(210, 220, Op{Kind: Get, Found: true, OutValue: "a", Version: 40})
		}, false},
		{"raw delete is loaded", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(110, 120, Op{Kind: RawDelete, TS: ts(115, 1)})
			h.op(210, 220, Op{Kind: Get, Found: false})
		}, true},
		{"raw write acknowledged while strong", func(h *hist) {
			h.op(20, 30, Op{Kind: RawPut, Value: "r1", TS: ts(25, 1)})
		}, false},
		{"old version after the switch", func(h *hist) {
			h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
			h.op(210, 220, Op{Kind: Cas, Value: "b", Expected: 10, Success: true, Version: 50})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hist{}
			tc.ops(h)
			res := checkHist(t, ns, h, nil)
			if got := len(res.Violations) == 0; got != tc.ok {
				t.Fatalf("ok = %v, want %v: %v", got, tc.ok, res.Violations)
			}
		})
	}
	// Ending eventual: the final value read counts.
	h := &hist{}
	h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
	open := Namespace{Mode: Flip, Initial: "strong", Windows: []Window{{Start: 100}}}
	if res := checkHist(t, open, h, map[string]map[string]Cand{"ns": {"k": {true, "a"}}}); len(res.Violations) > 0 {
		t.Fatalf("strong value kept after the switch: %v", res.Violations)
	}
	if res := checkHist(t, open, h, map[string]map[string]Cand{"ns": {"k": {}}}); len(res.Violations) == 0 {
		t.Fatal("strong value lost by the switch to eventual is not caught")
	}
}

// A failed check writes porcupine's visualization.
func TestCheckVisualizes(t *testing.T) {
	h := &hist{}
	h.op(0, 10, Op{Kind: Cas, Value: "a", Success: true, Version: 10})
	h.op(20, 30, Op{Kind: Get, Found: false})
	dir := t.TempDir()
	res := Check(Input{Namespaces: []Namespace{{Name: "ns", Mode: Strong, Keys: []string{"k"}}}, Ops: h.ops,
		VisualizeDir: dir, Name: "unit"})
	if len(res.Violations) != 1 || len(res.Visualized) != 1 {
		t.Fatalf("violations %v, visualized %v", res.Violations, res.Visualized)
	}
	b, err := os.ReadFile(res.Visualized[0])
	if err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualization %s: %v", res.Visualized[0], err)
	}
	if !strings.Contains(res.Violations[0], res.Visualized[0]) {
		t.Fatalf("the report does not say where the visualization is: %s", res.Violations[0])
	}
}
