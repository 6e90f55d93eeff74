package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Summary adds up runs for make chaos.
type Summary struct {
	Runs, Ops, Checked, Faults, Violations, Inconclusive int
	ByFault                                              map[string]int
	Failed                                               []uint64 // seeds with violations
}

// Add counts a run.
func (s *Summary) Add(seed uint64, r RunResult) {
	if s.ByFault == nil {
		s.ByFault = map[string]int{}
	}
	s.Runs++
	s.Ops += r.Ops
	s.Checked += r.Checked
	s.Faults += r.FaultCount()
	s.Violations += len(r.Violations)
	s.Inconclusive += len(r.Inconclusive)
	for k, v := range r.Faults {
		s.ByFault[k] += v
	}
	s.ByFault["mode-switch"] += r.Switches
	if len(r.Violations) > 0 {
		s.Failed = append(s.Failed, seed)
	}
}

// Print prints the summary on stdout.
func (s *Summary) Print(what string) {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos summary (%s): runs %d, operations %d, operations checked %d, faults injected %d, violations %d",
		what, s.Runs, s.Ops, s.Checked, s.Faults, s.Violations)
	if s.Inconclusive > 0 {
		fmt.Fprintf(&b, ", inconclusive checks %d", s.Inconclusive)
	}
	if len(s.Failed) > 0 {
		fmt.Fprintf(&b, ", failing seeds %v", s.Failed)
	}
	b.WriteString("\n  faults:")
	for _, k := range slices.Sorted(maps.Keys(s.ByFault)) {
		fmt.Fprintf(&b, " %s=%d", k, s.ByFault[k])
	}
	fmt.Println(b.String())
}
