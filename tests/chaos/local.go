package chaos

// The faults of an in-process cluster, and a run on one.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rdb-project/rdb/store/storetest"
)

// LocalConfig configures a run on an in-process cluster.
type LocalConfig struct {
	// T owns the cluster: its stores stop when the test ends.
	T        testing.TB
	Seed     uint64
	Duration time.Duration
	// UnsafeFollowerReads breaks the stores on purpose (test-only tag).
	UnsafeFollowerReads bool
	// Faults overrides the fault mix (nil: LocalFaults).
	Faults       func(c *LocalCluster) []Fault
	VisualizeDir string
	Logger       *zap.Logger
	Logf         func(string, ...any)
}

func (c *LocalCluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// compactThreshold is small so that a store that falls behind catches up
// by snapshot, and restarts hit snapshot transfers.
const compactThreshold = 64

// LocalNamespaces is the workload's namespaces: one strong, one eventual,
// one that switches (starting in a mode chosen by the seed).
func LocalNamespaces(seed uint64) []Namespace {
	keys := func(p string) []string { return []string{p + "a", p + "b", p + "c", p + "d"} }
	initial := []string{"strong", "eventual"}[seed%2]
	return []Namespace{
		{Name: "cas", Mode: Strong, Keys: keys("k")},
		{Name: "lww", Mode: Eventual, Keys: keys("e")},
		{Name: "flip", Mode: Flip, Keys: keys("f"), Initial: initial},
	}
}

// RunLocal starts an in-process cluster and runs the suite on it.
func RunLocal(ctx context.Context, cfg LocalConfig) (RunResult, error) {
	nss := LocalNamespaces(cfg.Seed)
	modes := map[string]string{}
	for _, ns := range nss {
		switch ns.Mode {
		case Strong:
			modes[ns.Name] = "strong"
		case Eventual:
			modes[ns.Name] = "eventual"
		case Flip:
			modes[ns.Name] = ns.Initial
		}
	}
	var pmu sync.Mutex
	var problems []string
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := NewLocalCluster(startCtx, cfg.T, LocalOptions{
		N: 3, Seed: cfg.Seed, NamespaceModes: modes, CompactThreshold: compactThreshold,
		UnsafeFollowerReads: cfg.UnsafeFollowerReads, Logger: cfg.Logger, Logf: cfg.Logf,
		OnFatal: func(i int, err error) {
			pmu.Lock()
			defer pmu.Unlock()
			problems = append(problems, fmt.Sprintf("store %d: persistence failed: %v", i+1, err))
		},
	})
	if err != nil {
		return RunResult{}, err
	}
	defer c.Close()
	faults := LocalFaults(c)
	if cfg.Faults != nil {
		faults = cfg.Faults(c)
	}
	rc := inProcessRun(cfg, nss)
	rc.Name, rc.Cluster, rc.Faults, rc.Heal = fmt.Sprintf("local-seed-%d", cfg.Seed), c, faults, c.Heal
	rc.Problems = func() []string { pmu.Lock(); defer pmu.Unlock(); return slices.Clone(problems) }
	res := Run(ctx, rc)
	return res, nil
}

// inProcessRun is the RunConfig of a run on in-process stores, but for
// what names, faults and heals the cluster.
func inProcessRun(cfg LocalConfig, nss []Namespace) RunConfig {
	return RunConfig{
		Seed:       cfg.Seed,
		Namespaces: nss,
		Duration:   cfg.Duration,
		Clients:    6,
		OpTimeout:  2 * time.Second,
		Think:      10 * time.Millisecond,
		MaxOpDelay: 3 * time.Second,
		FaultGap:   [2]time.Duration{200 * time.Millisecond, 1500 * time.Millisecond},
		FaultHold:  [2]time.Duration{300 * time.Millisecond, 3 * time.Second},
		SwitchGap:  [2]time.Duration{time.Second, 4 * time.Second},

		VisualizeDir: cfg.VisualizeDir,
		Logf:         cfg.Logf,
	}
}

// Heal heals every link and starts every stopped store.
func (c *LocalCluster) Heal(ctx context.Context) error {
	c.Links.Heal()
	var errs []error
	for i := range c.N() {
		if err := c.Start(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.WaitServing(ctx)
}

// leader returns the store that leads group (a namespace, or "" for the
// meta group), if one does.
func (c *LocalCluster) leader(ns string) (int, bool) {
	for i := range c.N() {
		s := c.Store(i)
		if s == nil {
			continue
		}
		if ns == "" {
			if st, ok := s.MetaStatus(); ok && st.IsLeader {
				return i, true
			}
			continue
		}
		if st, ok := s.GroupStatus(ns); ok && st.IsLeader {
			return i, true
		}
	}
	return 0, false
}

// someGroup picks a Raft group: a strong namespace's or the meta group.
func someGroup(rng *rand.Rand) string {
	return []string{"cas", "flip", ""}[rng.IntN(3)]
}

func groupName(ns string) string {
	if ns == "" {
		return "meta"
	}
	return ns
}

func (c *LocalCluster) running() []int {
	var out []int
	for i := range c.N() {
		if c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

// unsynced is how much of what a crashed store had not synced survives:
// nothing (power loss), some, or all (a process crash).
func unsynced(rng *rand.Rand) int { return []int{0, 0, 30, 100}[rng.IntN(4)] }

func (c *LocalCluster) restartAll(ctx context.Context) error {
	var errs []error
	for i := range c.N() {
		errs = append(errs, c.Start(ctx, i))
	}
	return errors.Join(errs...)
}

func (c *LocalCluster) cutBoth(a, b int, f LinkFault) {
	c.Links.Set(uint64(a+1), uint64(b+1), f)
	c.Links.Set(uint64(b+1), uint64(a+1), f)
}

func (c *LocalCluster) healLinks(context.Context) error { c.Links.Heal(); return nil }

// LocalFaults is the fault mix of an in-process cluster.
func LocalFaults(c *LocalCluster) []Fault {
	crash := func(pick func(rng *rand.Rand) (int, error)) func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
		return func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			i, err := pick(rng)
			if err != nil {
				return nil, err
			}
			c.Crash(i, unsynced(rng))
			return func(ctx context.Context) error { return c.Start(ctx, i) }, nil
		}
	}
	leaderOf := func(rng *rand.Rand) (int, error) {
		ns := someGroup(rng)
		if i, ok := c.leader(ns); ok {
			return i, nil
		}
		return 0, fmt.Errorf("%s group has no leader", groupName(ns))
	}
	followerOf := func(rng *rand.Rand) (int, error) {
		ns := someGroup(rng)
		l, ok := c.leader(ns)
		var fs []int
		for _, i := range c.running() {
			if !ok || i != l {
				fs = append(fs, i)
			}
		}
		if len(fs) == 0 {
			return 0, errors.New("no follower runs")
		}
		return fs[rng.IntN(len(fs))], nil
	}
	isolate := func(pick func(rng *rand.Rand) (int, error)) func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
		return func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			i, err := pick(rng)
			if err != nil {
				return nil, err
			}
			for j := range c.N() {
				if j != i {
					c.cutBoth(i, j, LinkFault{Cut: true})
				}
			}
			return c.healLinks, nil
		}
	}
	return []Fault{
		{Name: "crash-leader", Weight: 4, Inject: crash(leaderOf)},
		{Name: "crash-follower", Weight: 3, Inject: crash(followerOf)},
		{Name: "crash-all", Weight: 1, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			for i := range c.N() {
				c.Crash(i, unsynced(rng))
			}
			return c.restartAll, nil
		}},
		{Name: "isolate-leader", Weight: 3, Inject: isolate(leaderOf)},
		{Name: "isolate-follower", Weight: 2, Inject: isolate(followerOf)},
		{Name: "leader-mute", Weight: 2, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			// The leader hears everyone but nobody hears it.
			l, err := leaderOf(rng)
			if err != nil {
				return nil, err
			}
			for j := range c.N() {
				if j != l {
					c.Links.Set(uint64(l+1), uint64(j+1), LinkFault{Cut: true})
				}
			}
			return c.healLinks, nil
		}},
		{Name: "bridge", Weight: 2, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			// Two stores cannot talk; the third talks to both.
			a := rng.IntN(c.N())
			b := (a + 1 + rng.IntN(c.N()-1)) % c.N()
			c.cutBoth(a, b, LinkFault{Cut: true})
			return c.healLinks, nil
		}},
		{Name: "lossy-links", Weight: 3, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			for a := range c.N() {
				for b := range c.N() {
					if a != b {
						c.Links.Set(uint64(a+1), uint64(b+1), LinkFault{
							Loss:  0.1 + 0.4*rng.Float64(),
							Dup:   0.2 * rng.Float64(),
							Delay: time.Duration(rng.IntN(30)) * time.Millisecond,
						})
					}
				}
			}
			return c.healLinks, nil
		}},
		{Name: "slow-store", Weight: 2, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			i := rng.IntN(c.N())
			d := time.Duration(50+rng.IntN(250)) * time.Millisecond
			for j := range c.N() {
				if j != i {
					c.cutBoth(i, j, LinkFault{Delay: d})
				}
			}
			return c.healLinks, nil
		}},
		{Name: "restart-in-snapshot", Weight: 3, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			// A follower falls behind by more than the compaction
			// threshold, comes back (the leader sends a snapshot) and
			// crashes again while it is catching up.
			f, err := followerOf(rng)
			if err != nil {
				return nil, err
			}
			ns := []string{"cas", "flip"}[rng.IntN(2)]
			var from uint64
			if l, ok := c.leader(ns); ok {
				st, _ := c.Store(l).GroupStatus(ns)
				from = st.Commit
			}
			c.Crash(f, unsynced(rng))
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = storetest.Poll(wctx, func() error {
				l, ok := c.leader(ns)
				if !ok {
					return errors.New("no leader")
				}
				if st, _ := c.Store(l).GroupStatus(ns); st.Commit < from+3*compactThreshold {
					return errors.New("not far enough ahead")
				}
				return nil
			})
			cancel()
			// Slow the leader's link to it so that the snapshot is still in
			// flight for a while.
			if l, ok := c.leader(ns); ok {
				c.Links.Set(uint64(l+1), uint64(f+1), LinkFault{Delay: time.Duration(100+rng.IntN(300)) * time.Millisecond})
			}
			if err := c.Start(ctx, f); err != nil {
				return nil, err
			}
			sleepCtx(ctx, time.Duration(rng.IntN(1000))*time.Millisecond)
			if s := c.Store(f); s != nil {
				st, _ := s.GroupStatus(ns)
				c.logf("store %d crashes again after installing %d snapshots of %s (applied %d)", f+1, st.SnapshotsApplied, ns, st.Applied)
			}
			c.Crash(f, unsynced(rng))
			c.Links.Heal()
			return func(ctx context.Context) error { return c.Start(ctx, f) }, nil
		}},
	}
}

// Describe reports what each running store knows of ns and of the meta
// group: a switch that does not complete is explained by it.
func (c *LocalCluster) Describe(ns string) string {
	var b strings.Builder
	for i := range c.N() {
		s := c.Store(i)
		if s == nil {
			fmt.Fprintf(&b, "\n    store %d: down", i+1)
			continue
		}
		meta, _ := s.MetaStatus()
		fmt.Fprintf(&b, "\n    store %d: meta %+v", i+1, meta)
		if row, ok := s.NamespaceRow(ns); ok {
			fmt.Fprintf(&b, "\n      %s row: %v", ns, row)
		}
		if st, ok := s.GroupStatus(ns); ok {
			fmt.Fprintf(&b, "\n      %s group: %+v", ns, st)
		}
	}
	return b.String()
}
