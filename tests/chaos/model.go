package chaos

// The sequential specification of one key of a strong namespace, for
// porcupine.
//
// A key is absent (version 0) or holds a value at a version; a version is
// the Raft index of the entry that wrote it, so every write gives the key a
// version greater than any it had. The model does not know indexes in
// advance: a write whose answer was lost leaves the version unknown (0
// with Exists), and the next answer that shows it teaches it. That makes
// the model nondeterministic, as are writes that may have happened:
// porcupine explores both branches.
//
// A Transition op is one eventual period of a namespace that switches
// modes: the key then holds one of the candidate values the period's raw
// writes allow (or the value it held, if no raw write was acknowledged), at
// a new version, above every version it had.

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// keyState is the state of one key. Comparable, so == is equality.
type keyState struct {
	Exists bool
	Value  string
	Ver    uint64 // 0 with Exists: not known yet
	Floor  uint64 // every later version is above this
}

func (s keyState) hi() uint64 { return max(s.Ver, s.Floor) }

func (s keyState) String() string {
	if !s.Exists {
		return fmt.Sprintf("absent (floor v%d)", s.Floor)
	}
	if s.Ver == 0 {
		return fmt.Sprintf("%q at v? (> v%d)", s.Value, s.Floor)
	}
	return fmt.Sprintf("%q at v%d", s.Value, s.Ver)
}

// matching returns the states in which a CAS or Delete expecting version e
// finds its version: the key's version is e (0: absent).
func matching(s keyState, e uint64) []keyState {
	switch {
	case !s.Exists:
		if e == 0 {
			return []keyState{s}
		}
	case s.Ver != 0:
		if s.Ver == e {
			return []keyState{s}
		}
	case e > s.Floor:
		m := s
		m.Ver = e
		return []keyState{m}
	}
	return nil
}

// mismatching returns the states in which an answer "mismatch, current
// version ver, current value val, found" is right; the version is learnt.
func mismatching(s keyState, e uint64, found bool, ver uint64, val string) []keyState {
	if !s.Exists {
		if e != 0 && !found && ver == 0 && val == "" {
			return []keyState{s}
		}
		return nil
	}
	if !found || val != s.Value || ver == e {
		return nil
	}
	if s.Ver != 0 {
		if ver == s.Ver {
			return []keyState{s}
		}
		return nil
	}
	if ver > s.Floor {
		m := s
		m.Ver = ver
		return []keyState{m}
	}
	return nil
}

func absentAfter(s keyState) keyState { return keyState{Floor: s.hi()} }

func step(s keyState, op *Op) []keyState {
	switch op.Kind {
	case Get:
		if !op.Found {
			if s.Exists {
				return nil
			}
			return []keyState{s}
		}
		if !s.Exists || s.Value != op.OutValue {
			return nil
		}
		if s.Ver != 0 {
			if op.Version != s.Ver {
				return nil
			}
			return []keyState{s}
		}
		if op.Version <= s.Floor {
			return nil
		}
		n := s
		n.Ver = op.Version
		return []keyState{n}

	case Cas:
		written := func(m keyState, ver uint64) keyState {
			return keyState{Exists: true, Value: op.Value, Ver: ver, Floor: m.hi()}
		}
		switch {
		case op.Outcome == Unknown:
			out := []keyState{s}
			for _, m := range matching(s, op.Expected) {
				out = append(out, written(m, 0))
			}
			return out
		case op.Success:
			var out []keyState
			for _, m := range matching(s, op.Expected) {
				if op.Version > m.hi() {
					out = append(out, written(m, op.Version))
				}
			}
			return out
		default:
			// A mismatch answers the current version, 0 when absent.
			return mismatching(s, op.Expected, op.Version != 0, op.Version, op.OutValue)
		}

	case Delete:
		deletable := func() []keyState {
			if op.Expected == 0 {
				return []keyState{s}
			}
			return matching(s, op.Expected)
		}
		switch {
		case op.Outcome == Unknown:
			out := []keyState{s}
			for range deletable() {
				out = append(out, absentAfter(s))
			}
			return out
		case op.Success:
			if op.Found != s.Exists || len(deletable()) == 0 {
				return nil
			}
			return []keyState{absentAfter(s)}
		default:
			if op.Expected == 0 {
				return nil // an unconditional delete cannot mismatch
			}
			return mismatching(s, op.Expected, op.Found, op.Version, op.OutValue)
		}

	case Transition:
		next := func(c Cand) keyState {
			if !c.Exists {
				return keyState{Floor: s.hi()}
			}
			return keyState{Exists: true, Value: c.Value, Floor: s.hi()}
		}
		var cands []Cand
		if op.Keep {
			cands = append(cands, Cand{Exists: s.Exists, Value: s.Value})
		}
		cands = append(cands, op.Cands...)
		var out []keyState
		for _, c := range cands {
			if op.Observed != nil && *op.Observed != c {
				continue
			}
			out = append(out, next(c))
		}
		return out
	}
	return nil
}

// keyModel is the porcupine model of a strong namespace, partitioned by
// key. Inputs and outputs are both the *Op.
var keyModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var order []string
		for _, o := range history {
			k := o.Input.(*Op).Key
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, k := range order {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{keyState{}} },
	Step: func(state, input, _ any) []any {
		next := step(state.(keyState), input.(*Op))
		out := make([]any, len(next))
		for i, s := range next {
			out[i] = s
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(keyState) == b.(keyState) },
	DescribeOperation: func(input, _ any) string {
		return input.(*Op).String()
	},
	DescribeState: func(state any) string { return state.(keyState).String() },
}
