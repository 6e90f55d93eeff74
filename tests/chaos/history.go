// Package chaos is rdb's fault-injection suite: a workload of concurrent
// clients (rdb's Go client, store/client, with its retries and failover)
// records every operation it makes while a nemesis crashes, restarts,
// pauses and cuts off stores and switches namespaces between modes; a
// checker then proves that the strong namespaces were linearizable
// (porcupine, per key) and that the eventual ones converged without losing
// an acknowledged write.
//
// Every random choice of a run comes from one seed, which is logged, so a
// failing run can be replayed with -seed (the timing of a replay differs,
// the choices do not).
//
// The suite drives any cluster that implements Cluster: tests/chaos runs
// stores in-process with a crashable file system and a transport whose
// links drop, delay, duplicate and partition messages; tests/ runs the
// real rdb-server binaries and kills and pauses them with signals.
package chaos

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rdb-project/rdb/store/client"
)

// Kind is what an operation did.
type Kind int

// Operation kinds. Transition is not a client call: it stands for one
// eventual period of a namespace that switches modes (see Window).
const (
	Get Kind = iota
	Cas
	Delete
	RawPut
	RawDelete
	RawGet
	Transition
)

func (k Kind) String() string {
	return [...]string{"Get", "CAS", "Delete", "RawPut", "RawDelete", "RawGet", "Transition"}[k]
}

// Outcome tells what is known of an operation's effect.
type Outcome int

const (
	// OK: the call returned an answer.
	OK Outcome = iota
	// Failed: the call returned an error that says it had no effect
	// (wrong mode, switch in progress, no leader before proposing).
	Failed
	// Unknown: the call timed out or failed in a way that does not say; a
	// write may have happened, at any time after its call.
	Unknown
)

// TS is an HLC timestamp as RawPut and RawDelete return it.
type TS struct {
	Wall    int64
	Logical uint32
	Store   uint64
}

func tsOf(t client.Timestamp) TS {
	return TS{Wall: t.WallTime, Logical: t.Logical, Store: t.StoreID}
}

// Less orders timestamps as the LWW engine does: wall, logical, store.
func (a TS) Less(b TS) bool {
	if a.Wall != b.Wall {
		return a.Wall < b.Wall
	}
	if a.Logical != b.Logical {
		return a.Logical < b.Logical
	}
	return a.Store < b.Store
}

func (a TS) String() string { return fmt.Sprintf("%d.%d@%d", a.Wall, a.Logical, a.Store) }

// Op is one recorded operation: its call, its answer and when each
// happened (nanoseconds since the run started).
type Op struct {
	Client int
	// ToLeader: the client routes strong calls to the namespace's leader
	// once a store names it (otherwise the store it calls forwards them).
	ToLeader bool
	// Store is the index of the store that answered: the one the last
	// attempt was sent to (or, for an error, the one the client names);
	// -1 if none is known.
	Store int
	// Sends is how many attempts the client sent (it resends only what
	// had no effect).
	Sends int

	NS   string
	Key  string
	Kind Kind

	// Input.
	Expected uint64 // CAS and Delete
	Value    string // CAS and RawPut: the value written, unique in the run

	// Output.
	Outcome  Outcome
	Success  bool   // CAS, Delete
	Found    bool   // Get, Delete, RawGet
	Version  uint64 // Get; CAS (new version, or current on a mismatch); Delete on a mismatch
	OutValue string // Get, RawGet; CAS and Delete on a mismatch
	TS       TS     // RawPut, RawDelete when OK
	Err      string

	Call, Return int64

	// Transition only.
	Cands    []Cand // values the key may hold after the period
	Keep     bool   // ... or the value it held before it
	Observed *Cand  // the value read after the run, if the period is the last
}

// Cand is a value a key may hold: absent, or a value.
type Cand struct {
	Exists bool
	Value  string
}

func (c Cand) String() string {
	if !c.Exists {
		return "absent"
	}
	return fmt.Sprintf("%q", c.Value)
}

// IsWrite tells whether the operation can change the state.
func (o *Op) IsWrite() bool {
	return o.Kind == Cas || o.Kind == Delete || o.Kind == RawPut || o.Kind == RawDelete
}

func (o *Op) String() string {
	var out string
	switch o.Outcome {
	case Failed:
		out = "failed: " + o.Err
	case Unknown:
		out = "unknown: " + o.Err
	}
	in := ""
	switch o.Kind {
	case Cas:
		in = fmt.Sprintf("(%s, expect v%d, %q)", o.Key, o.Expected, o.Value)
		if out == "" {
			out = fmt.Sprintf("success=%v v%d %q", o.Success, o.Version, o.OutValue)
		}
	case Delete:
		in = fmt.Sprintf("(%s, expect v%d)", o.Key, o.Expected)
		if out == "" {
			out = fmt.Sprintf("success=%v found=%v v%d %q", o.Success, o.Found, o.Version, o.OutValue)
		}
	case Get, RawGet:
		in = fmt.Sprintf("(%s)", o.Key)
		if out == "" {
			out = fmt.Sprintf("found=%v v%d %q", o.Found, o.Version, o.OutValue)
		}
	case RawPut:
		in = fmt.Sprintf("(%s, %q)", o.Key, o.Value)
		if out == "" {
			out = "ts " + o.TS.String()
		}
	case RawDelete:
		in = fmt.Sprintf("(%s)", o.Key)
		if out == "" {
			out = "ts " + o.TS.String()
		}
	case Transition:
		in = fmt.Sprintf("(%s, keep=%v, %v)", o.Key, o.Keep, o.Cands)
		out = "-"
		if o.Observed != nil {
			out = "observed " + o.Observed.String()
		}
	}
	return fmt.Sprintf("%s %s%s -> %s", o.who(), o.Kind, in, out)
}

// who names the client and the store of an operation: "c3/leader@s2" (a
// client that routes strong calls to the leader, answered by store 2),
// "c4/any@s?" (a client that leaves forwarding to the stores; no store
// known), with the attempts sent if the client sent more than one.
func (o *Op) who() string {
	if o.Kind == Transition {
		return fmt.Sprintf("c%d", o.Client)
	}
	route, at := "any", "s?"
	if o.ToLeader {
		route = "leader"
	}
	if o.Store >= 0 {
		at = fmt.Sprintf("s%d", o.Store+1)
	}
	s := fmt.Sprintf("c%d/%s@%s", o.Client, route, at)
	if o.Sends > 1 {
		s += fmt.Sprintf("(%d sends)", o.Sends)
	}
	return s
}

// History records operations from many goroutines.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []*Op
}

// NewHistory starts a history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records a finished operation.
func (h *History) Add(op *Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations recorded so far, by call time.
func (h *History) Ops() []*Op {
	h.mu.Lock()
	out := slices.Clone(h.ops)
	h.mu.Unlock()
	slices.SortStableFunc(out, func(a, b *Op) int {
		switch {
		case a.Call < b.Call:
			return -1
		case a.Call > b.Call:
			return 1
		}
		return 0
	})
	return out
}
