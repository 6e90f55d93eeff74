package chaos

// Checking a recorded run.
//
// Strong operations are checked with porcupine against keyModel, one
// partition per key. An operation whose answer was lost may have happened
// at any time after its call: it returns at the end of the history.
//
// Eventual namespaces are checked once the cluster has healed and
// quiesced: every store holds the same records (the run checks that), and
// for every key the final value is the acknowledged write with the
// greatest timestamp, or a write whose answer was lost; if no write was
// acknowledged, the key is as it was, or a lost-answer write.
//
// A namespace that switches modes gets both: its eventual periods become
// Transition operations in its porcupine history, whose candidates are
// worked out the same way from the raw writes of the period.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Mode of a namespace over a run.
type Mode int

const (
	Strong   Mode = iota // strong throughout
	Eventual             // eventual throughout
	Flip                 // switches between the two
)

// Namespace describes a namespace of the workload.
type Namespace struct {
	Name string
	Mode Mode
	// Keys the workload uses.
	Keys []string
	// Flip: the mode it starts in, and the periods during which it was (or
	// could be) eventual, in order.
	Initial string
	Windows []Window
}

// Window is an eventual period of a switching namespace: from the call
// that asked for eventual (0 if it started eventual) until every store was
// seen serving it as strong again (End 0: still eventual at the end).
type Window struct {
	Start, End int64
}

// Input is what Check needs besides the operations.
type Input struct {
	Namespaces []Namespace
	Ops        []*Op
	// Final holds, for each namespace that ended eventual, the value of
	// every key once all stores agreed.
	Final map[string]map[string]Cand
	// MaxOpDelay bounds how long after its call a write whose answer was
	// lost can still take effect on a store (request timeout plus the
	// longest pause the nemesis inflicts).
	MaxOpDelay time.Duration
	// Timeout bounds porcupine per namespace.
	Timeout time.Duration
	// VisualizeDir, if set, is where a failed check writes porcupine's
	// visualization; Name prefixes the file.
	VisualizeDir string
	Name         string
}

// Result is the outcome of Check.
type Result struct {
	Checked      int      // operations checked
	Violations   []string // what is wrong
	Inconclusive []string // checks that timed out
	Visualized   []string // files written for failed checks
}

// Check checks a run's history.
func Check(in Input) Result {
	var res Result
	end := int64(0)
	for _, op := range in.Ops {
		end = max(end, op.Call, op.Return)
	}
	for _, ns := range in.Namespaces {
		for _, w := range ns.Windows {
			end = max(end, w.Start, w.End)
		}
	}
	end++
	for _, ns := range in.Namespaces {
		var ops []*Op
		for _, op := range in.Ops {
			if op.NS == ns.Name {
				ops = append(ops, op)
			}
		}
		checkRawReads(&res, ns, ops)
		switch ns.Mode {
		case Eventual:
			checkEventual(&res, in, ns, ops)
		default:
			checkStrong(&res, in, ns, ops, end)
		}
	}
	return res
}

// checkRawReads: eventual reads promise little, but what they return was
// written by someone (a write that may have failed counts, one that
// certainly did not happen does not).
func checkRawReads(res *Result, ns Namespace, ops []*Op) {
	written := map[string]bool{}
	for _, op := range ops {
		if (op.Kind == Cas || op.Kind == RawPut) && op.Outcome != Failed {
			written[op.NS+"/"+op.Key+"="+op.Value] = true
		}
	}
	for _, op := range ops {
		if op.Kind != RawGet || op.Outcome != OK || !op.Found {
			continue
		}
		res.Checked++
		if !written[op.NS+"/"+op.Key+"="+op.OutValue] {
			res.Violations = append(res.Violations, fmt.Sprintf("%s: raw read returned a value never written to its key: %v", ns.Name, op))
		}
	}
}

// windowsOf assigns a raw write to the eventual periods it may have taken
// effect in. An acknowledged write was accepted between its call and its
// answer; one whose answer was lost, up to MaxOpDelay after its call.
func windowsOf(op *Op, ws []Window, end int64, maxDelay time.Duration) []int {
	from, to := op.Call, op.Return
	if op.Outcome == Unknown {
		to = op.Call + int64(maxDelay)
	}
	var out []int
	for i, w := range ws {
		wend := w.End
		if wend == 0 {
			wend = end
		}
		if w.Start <= to && wend >= from {
			out = append(out, i)
		}
	}
	return out
}

// period is what the raw writes of one eventual period say about a key.
type period struct {
	newest *Op   // the acknowledged write with the greatest timestamp
	maybe  []*Op // writes that may have won: lost answers, or acknowledged in a period we cannot tell
}

func candOf(op *Op) Cand {
	if op.Kind == RawDelete {
		return Cand{}
	}
	return Cand{Exists: true, Value: op.Value}
}

func (p *period) cands() []Cand {
	var out []Cand
	if p.newest != nil {
		out = append(out, candOf(p.newest))
	}
	for _, op := range p.maybe {
		if c := candOf(op); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// periods sorts the raw writes of a namespace by key and period. It
// reports acknowledged raw writes that no eventual period explains.
func periods(res *Result, ns Namespace, ops []*Op, ws []Window, end int64, maxDelay time.Duration) map[string][]*period {
	out := map[string][]*period{}
	for _, k := range ns.Keys {
		out[k] = make([]*period, len(ws))
		for i := range ws {
			out[k][i] = &period{}
		}
	}
	for _, op := range ops {
		if (op.Kind != RawPut && op.Kind != RawDelete) || op.Outcome == Failed {
			continue
		}
		res.Checked++
		in := windowsOf(op, ws, end, maxDelay)
		ps := out[op.Key]
		if ps == nil {
			res.Violations = append(res.Violations, fmt.Sprintf("%s: write to a key outside the workload: %v", ns.Name, op))
			continue
		}
		switch {
		case len(in) == 0 && op.Outcome == OK:
			res.Violations = append(res.Violations, fmt.Sprintf(
				"%s: raw write acknowledged while the namespace was strong (no eventual period overlaps [%v, %v]): %v",
				ns.Name, time.Duration(op.Call), time.Duration(op.Return), op))
		case len(in) == 1 && op.Outcome == OK:
			p := ps[in[0]]
			if p.newest == nil || p.newest.TS.Less(op.TS) {
				p.newest = op
			}
		default:
			for _, i := range in {
				ps[i].maybe = append(ps[i].maybe, op)
			}
		}
	}
	return out
}

func checkEventual(res *Result, in Input, ns Namespace, ops []*Op) {
	end := int64(0)
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	ws := []Window{{Start: 0}}
	ps := periods(res, ns, ops, ws, end+1, in.MaxOpDelay)
	final := in.Final[ns.Name]
	if final == nil {
		res.Violations = append(res.Violations, fmt.Sprintf("%s: no final state was read", ns.Name))
		return
	}
	for _, k := range ns.Keys {
		p := ps[k][0]
		got := final[k]
		res.Checked++
		cands := p.cands()
		if p.newest == nil {
			cands = append(cands, Cand{}) // never acknowledged: may still be absent
		}
		if slices.Contains(cands, got) {
			continue
		}
		if p.newest != nil {
			res.Violations = append(res.Violations, fmt.Sprintf(
				"%s/%s: final value is %v, but the acknowledged write with the greatest timestamp is %v (%d writes with lost answers could also have won)",
				ns.Name, k, got, p.newest, len(p.maybe)))
		} else {
			res.Violations = append(res.Violations, fmt.Sprintf("%s/%s: final value %v was never written", ns.Name, k, got))
		}
	}
}

func checkStrong(res *Result, in Input, ns Namespace, ops []*Op, end int64) {
	var hist []porcupine.Operation
	add := func(op *Op) {
		ret := op.Return
		if op.Outcome == Unknown {
			ret = end
		}
		hist = append(hist, porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: op.Call, Return: ret})
		res.Checked++
	}
	for _, op := range ops {
		switch {
		case op.Kind == Get && op.Outcome == OK:
			add(op)
		case (op.Kind == Cas || op.Kind == Delete) && op.Outcome != Failed:
			add(op)
		}
	}
	if ns.Mode == Flip {
		ps := periods(res, ns, ops, ns.Windows, end, in.MaxOpDelay)
		final := in.Final[ns.Name]
		maxClient := 0
		for _, op := range ops {
			maxClient = max(maxClient, op.Client)
		}
		for _, k := range ns.Keys {
			for i, w := range ns.Windows {
				p := ps[k][i]
				t := &Op{Client: maxClient + 1, NS: ns.Name, Key: k, Kind: Transition, Call: w.Start, Return: w.End,
					Cands: p.cands(), Keep: p.newest == nil}
				if w.End == 0 {
					t.Return = end
					if final == nil {
						res.Violations = append(res.Violations, fmt.Sprintf("%s: ended eventual but no final state was read", ns.Name))
						return
					}
					obs := final[k]
					t.Observed = &obs
				}
				add(t)
			}
		}
	}
	if len(hist) == 0 {
		return
	}
	model := keyModel.ToModel()
	timeout := in.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	result, info := porcupine.CheckOperationsVerbose(model, hist, timeout)
	switch result {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		res.Inconclusive = append(res.Inconclusive, fmt.Sprintf("%s: linearizability check of %d operations timed out after %v", ns.Name, len(hist), timeout))
		return
	}
	msg := fmt.Sprintf("%s: history is not linearizable", ns.Name)
	if k := firstBadKey(model, hist); k != "" {
		msg += "; first key that fails: " + k
	}
	if in.VisualizeDir != "" {
		if err := os.MkdirAll(in.VisualizeDir, 0o755); err == nil {
			path := filepath.Join(in.VisualizeDir, fmt.Sprintf("%s-%s.html", in.Name, ns.Name))
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				res.Visualized = append(res.Visualized, path)
				msg += "; visualization: " + path
			} else {
				msg += "; visualization failed: " + err.Error()
			}
		}
	}
	res.Violations = append(res.Violations, msg)
}

// firstBadKey names a key whose own history is not linearizable.
func firstBadKey(model porcupine.Model, hist []porcupine.Operation) string {
	single := model
	single.Partition = nil
	for _, part := range model.Partition(hist) {
		if porcupine.CheckOperationsTimeout(single, part, 10*time.Second) == porcupine.Illegal {
			return fmt.Sprintf("%s (%d operations)", part[0].Input.(*Op).Key, len(part))
		}
	}
	return ""
}
