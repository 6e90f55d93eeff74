package chaos

// The nemesis injects one fault at a time, chosen at random by weight,
// holds it for a random while, then ends it. Mode switches run beside it
// (see switcher), so namespaces switch while stores crash and links fail.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/storetest"
)

// Fault is one kind of fault a cluster can inject.
type Fault struct {
	Name   string
	Weight int
	// Inject starts the fault and returns what ends it. A fault that is a
	// sequence of its own (crash, restart, crash again) may do it all in
	// Inject and return nil.
	Inject func(ctx context.Context, rng *rand.Rand) (end func(context.Context) error, err error)
}

// Event is a fault as it happened, for the report and the visualization.
type Event struct {
	Name       string
	Start, End int64
	Err        string
}

type nemesis struct {
	h      *History
	faults []Fault
	rng    *rand.Rand
	// Gap and Hold bound the pause between faults and how long each lasts.
	minGap, maxGap, minHold, maxHold time.Duration
	logf                             func(string, ...any)

	mu     sync.Mutex
	events []Event
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

func (n *nemesis) pick() Fault {
	total := 0
	for _, f := range n.faults {
		total += f.Weight
	}
	r := n.rng.IntN(total)
	for _, f := range n.faults {
		if r < f.Weight {
			return f
		}
		r -= f.Weight
	}
	return n.faults[len(n.faults)-1]
}

// run injects faults until ctx ends; the fault in progress is then ended
// with endCtx.
func (n *nemesis) run(ctx, endCtx context.Context) {
	for {
		sleepCtx(ctx, n.between(n.minGap, n.maxGap))
		if ctx.Err() != nil {
			return
		}
		f := n.pick()
		ev := Event{Name: f.Name, Start: n.h.Now()}
		end, err := f.Inject(ctx, n.rng)
		if err == nil && end != nil {
			sleepCtx(ctx, n.between(n.minHold, n.maxHold))
			err = end(endCtx)
		}
		ev.End = n.h.Now()
		if err != nil {
			ev.Err = err.Error()
			n.logf("fault %s: %v", f.Name, err)
		}
		n.mu.Lock()
		n.events = append(n.events, ev)
		n.mu.Unlock()
	}
}

func (n *nemesis) Events() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.events...)
}

// switcher switches a namespace back and forth while the workload runs,
// and records its eventual periods.
type switcher struct {
	h       *History
	c       Cluster
	cli     *client.Client // asks for the switches
	ns      string
	rng     *rand.Rand
	minGap  time.Duration
	maxGap  time.Duration
	logf    func(string, ...any)
	current string // the mode asked for last

	windows  []Window
	switches int
	err      error // a switch that never completed
}

// run switches until ctx ends; a switch in progress is finished within
// finishCtx.
func (s *switcher) run(ctx, finishCtx context.Context) {
	if s.current == "eventual" {
		s.windows = append(s.windows, Window{Start: 0})
	}
	for {
		sleepCtx(ctx, s.minGap+time.Duration(s.rng.Int64N(int64(s.maxGap-s.minGap))))
		if ctx.Err() != nil {
			return
		}
		target := "eventual"
		if s.current == "eventual" {
			target = "strong"
		}
		start := s.h.Now()
		if target == "eventual" {
			s.windows = append(s.windows, Window{Start: start})
		}
		s.current = target
		s.switches++
		if err := s.update(finishCtx, target); err != nil {
			s.err = err
			return
		}
		if err := s.waitActive(finishCtx, target); err != nil {
			s.err = err
			return
		}
		if target == "strong" {
			s.windows[len(s.windows)-1].End = s.h.Now()
		}
		s.logf("%s is %s on every store %v after the switch was asked", s.ns, target, time.Duration(s.h.Now()-start).Round(time.Millisecond))
	}
}

// update asks for the switch until a store accepts it. Asking again after
// an answer was lost is safe: a namespace that has the mode already is
// left as it is.
func (s *switcher) update(ctx context.Context, mode string) error {
	return storetest.Poll(ctx, func() error {
		cctx, cancel := context.WithTimeout(ctx, switchTimeout)
		defer cancel()
		_, err := s.cli.UpdateNamespaceMode(cctx, s.ns, mode, false)
		return err
	})
}

// waitActive waits until every store serves the namespace in mode.
func (s *switcher) waitActive(ctx context.Context, mode string) error {
	return waitMode(ctx, s.c, s.ns, mode)
}

// waitMode waits until every running store serves ns in mode, active.
// A store that is down is not asked: a switch does not wait for it (or,
// to strong, has already waited for its fence), and one that stays down
// may be gone for good. But at least one store must answer: with every
// store down (a crash of all of them), nothing says the switch completed,
// and stores that come back with the switch's row not applied yet still
// take raw writes, which the window must cover.
func waitMode(ctx context.Context, c Cluster, ns, mode string) error {
	err := storetest.Poll(ctx, func() error {
		asked := 0
		for i := range c.N() {
			if !c.Running(i) {
				continue // down for now, or stopped for good
			}
			asked++
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := raftpb.NewRaftServiceClient(c.Conn(i)).GetMode(cctx, &raftpb.GetModeRequest{Namespace: ns})
			cancel()
			if err != nil {
				return fmt.Errorf("store %d: %w", i+1, err)
			}
			if resp.GetMode() != mode || resp.GetState() != "active" {
				return fmt.Errorf("store %d: %s is %s (%s)", i+1, ns, resp.GetMode(), resp.GetState())
			}
		}
		if asked == 0 {
			return fmt.Errorf("no store is running")
		}
		return nil
	})
	if err != nil {
		if d, ok := c.(interface{ Describe(string) string }); ok {
			return fmt.Errorf("switch of %s to %s did not complete: %w%s", ns, mode, err, d.Describe(ns))
		}
		return fmt.Errorf("switch of %s to %s did not complete: %w", ns, mode, err)
	}
	return nil
}
