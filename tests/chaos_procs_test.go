package tests

// The fault-injection suite (tests/chaos) against real rdb-server
// processes: stores are killed with SIGKILL and restarted, paused with
// SIGSTOP and resumed with SIGCONT, and namespaces switch modes, while the
// same workload runs and the same checker judges it.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/tests/chaos"
)

var (
	seedFlag     = flag.Uint64("seed", 0, "replay this seed (0: the fixed seed of the short run, or random seeds with -chaos.duration)")
	durationFlag = flag.Duration("chaos.duration", 0, "run seed after seed for this long in all (make chaos); 0: one short run")
	runFlag      = flag.Duration("chaos.run", 15*time.Second, "how long each run injects faults")
	outFlag      = flag.String("chaos.out", filepath.Join(os.TempDir(), "rdb-chaos"), "where failed checks write porcupine's visualization")
)

// procsShare is the part of -chaos.duration the process suite takes; the
// in-process suite in tests/chaos takes the rest.
const procsShare = 0.25

// procCompactThreshold is small so that restarted stores catch up by
// snapshot.
const procCompactThreshold = 64

// maxPause is the longest a store stays stopped by SIGSTOP.
const maxPause = 4 * time.Second

// procCluster is three rdb-server processes in static mode.
type procCluster struct {
	t     *testing.T
	bin   string
	procs []*proc
	addrs []string
	conns []*grpc.ClientConn
	modes map[string]string

	mu     sync.Mutex
	down   []bool // killed, not restarted yet
	paused []bool // stopped by SIGSTOP
}

func newProcCluster(t *testing.T, modes map[string]string) *procCluster {
	bin := binaries(t) + "/rdb-server"
	dir := t.TempDir()
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	c := &procCluster{t: t, bin: bin, modes: modes, addrs: addrs, down: make([]bool, 3), paused: make([]bool, 3)}
	for i := range 3 {
		args := []string{"--store-id", fmt.Sprint(i + 1), "--addr", addrs[i], "--data-dir", filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			"--raft-log-compact-threshold", fmt.Sprint(procCompactThreshold), "--anti-entropy-interval", "200ms", "--log-level", "warn"}
		if i > 0 {
			args = append(args, "--peer", "1="+addrs[0])
		}
		for ns, m := range modes {
			args = append(args, "--namespace-mode", ns+"="+m)
		}
		c.procs = append(c.procs, startProc(t, dir, bin, args...))
		c.conns = append(c.conns, dial(t, addrs[i]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.waitServing(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *procCluster) N() int                              { return len(c.procs) }
func (c *procCluster) Addr(i int) string                   { return c.addrs[i] }
func (c *procCluster) Conn(i int) grpc.ClientConnInterface { return c.conns[i] }
func (c *procCluster) modesClient(i int) raftpb.RaftServiceClient {
	return raftpb.NewRaftServiceClient(c.conns[i])
}

func (c *procCluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down[i]
}

// serving: running and not paused.
func (c *procCluster) serving(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down[i] && !c.paused[i]
}

// waitServing waits until every store answers for every namespace.
func (c *procCluster) waitServing(ctx context.Context) error {
	for i := range c.N() {
		err := storetest.Poll(ctx, func() error {
			for ns := range c.modes {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := c.modesClient(i).GetMode(cctx, &raftpb.GetModeRequest{Namespace: ns})
				cancel()
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store %d does not serve: %w", i+1, err)
		}
	}
	return nil
}

// close kills every store of the cluster.
func (c *procCluster) close() {
	for i := range c.N() {
		_ = c.resume(i)
		c.kill(i)
		_ = c.conns[i].Close()
	}
}

// kill sends SIGKILL to store i and waits for it to exit.
func (c *procCluster) kill(i int) {
	c.mu.Lock()
	c.down[i], c.paused[i] = true, false
	c.mu.Unlock()
	c.procs[i].kill(syscall.SIGKILL)
}

// start starts store i again with the same flags.
func (c *procCluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.down[i] {
		return nil
	}
	p := c.procs[i]
	cmd := exec.Command(c.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restart store %d: %w", i+1, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	c.down[i] = false
	return nil
}

func (c *procCluster) pause(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[i] {
		return fmt.Errorf("store %d is down", i+1)
	}
	c.paused[i] = true
	return c.procs[i].cmd.Process.Signal(syscall.SIGSTOP)
}

func (c *procCluster) resume(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused[i] {
		return nil
	}
	c.paused[i] = false
	return c.procs[i].cmd.Process.Signal(syscall.SIGCONT)
}

// heal resumes and restarts every store and waits until all serve.
func (c *procCluster) heal(ctx context.Context) error {
	var errs []error
	for i := range c.N() {
		errs = append(errs, c.resume(i), c.start(i))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.waitServing(ctx)
}

// leader asks the serving stores who leads ns's group.
func (c *procCluster) leader(ns string) (int, bool) {
	for i := range c.N() {
		if !c.serving(i) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := c.modesClient(i).GetMode(ctx, &raftpb.GetModeRequest{Namespace: ns})
		cancel()
		if err == nil && resp.GetLeader() != 0 {
			if l := int(resp.GetLeader()) - 1; c.serving(l) {
				return l, true
			}
		}
	}
	return 0, false
}

func (c *procCluster) faults() []chaos.Fault {
	groups := []string{"cas", "flip"}
	leaderOf := func(rng *rand.Rand) (int, error) {
		ns := groups[rng.IntN(len(groups))]
		if l, ok := c.leader(ns); ok {
			return l, nil
		}
		return 0, fmt.Errorf("%s has no leader", ns)
	}
	followerOf := func(rng *rand.Rand) (int, error) {
		ns := groups[rng.IntN(len(groups))]
		l, ok := c.leader(ns)
		var fs []int
		for i := range c.N() {
			if c.serving(i) && (!ok || i != l) {
				fs = append(fs, i)
			}
		}
		if len(fs) == 0 {
			return 0, errors.New("no follower serves")
		}
		return fs[rng.IntN(len(fs))], nil
	}
	kill := func(pick func(*rand.Rand) (int, error)) func(context.Context, *rand.Rand) (func(context.Context) error, error) {
		return func(_ context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			i, err := pick(rng)
			if err != nil {
				return nil, err
			}
			c.kill(i)
			return func(context.Context) error { return c.start(i) }, nil
		}
	}
	pause := func(pick func(*rand.Rand) (int, error)) func(context.Context, *rand.Rand) (func(context.Context) error, error) {
		return func(_ context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			i, err := pick(rng)
			if err != nil {
				return nil, err
			}
			if err := c.pause(i); err != nil {
				return nil, err
			}
			return func(context.Context) error { return c.resume(i) }, nil
		}
	}
	return []chaos.Fault{
		{Name: "sigkill-leader", Weight: 3, Inject: kill(leaderOf)},
		{Name: "sigkill-follower", Weight: 2, Inject: kill(followerOf)},
		{Name: "sigstop-leader", Weight: 3, Inject: pause(leaderOf)},
		{Name: "sigstop-follower", Weight: 2, Inject: pause(followerOf)},
		{Name: "sigkill-in-snapshot", Weight: 2, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			// A follower falls behind past the compaction threshold, comes
			// back, and is killed again while it catches up.
			f, err := followerOf(rng)
			if err != nil {
				return nil, err
			}
			c.kill(f)
			sleepFor(ctx, time.Duration(1500+rng.IntN(2000))*time.Millisecond)
			if err := c.start(f); err != nil {
				return nil, err
			}
			sleepFor(ctx, time.Duration(300+rng.IntN(1200))*time.Millisecond)
			c.kill(f)
			return func(context.Context) error { return c.start(f) }, nil
		}},
	}
}

func sleepFor(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func procRun(t *testing.T, seed uint64) chaos.RunResult {
	t.Helper()
	t.Logf("seed %d (replay: go test ./tests/ -run '^TestChaosProcesses$' -seed %d)", seed, seed)
	nss := chaos.LocalNamespaces(seed)
	modes := map[string]string{}
	for _, ns := range nss {
		modes[ns.Name] = map[chaos.Mode]string{chaos.Strong: "strong", chaos.Eventual: "eventual", chaos.Flip: ns.Initial}[ns.Mode]
	}
	c := newProcCluster(t, modes)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), *runFlag+5*time.Minute)
	defer cancel()
	res := chaos.Run(ctx, chaos.RunConfig{
		Name:       fmt.Sprintf("procs-seed-%d", seed),
		Seed:       seed,
		Cluster:    c,
		Faults:     c.faults(),
		Heal:       c.heal,
		Namespaces: nss,
		Duration:   *runFlag,
		Clients:    6,
		OpTimeout:  2 * time.Second,
		Think:      10 * time.Millisecond,
		// A request sent to a paused store is served when it resumes.
		MaxOpDelay: 2*time.Second + maxPause + 2*time.Second,
		FaultGap:   [2]time.Duration{500 * time.Millisecond, 2 * time.Second},
		FaultHold:  [2]time.Duration{500 * time.Millisecond, maxPause},
		SwitchGap:  [2]time.Duration{time.Second, 4 * time.Second},

		VisualizeDir: *outFlag,
		Logf:         t.Logf,
	})
	t.Logf("seed %d: %d operations, %d checked, faults %v, %d mode switches", seed, res.Ops, res.Checked, res.Faults, res.Switches)
	for ns, o := range res.Outcomes {
		t.Logf("seed %d: %s: %d answered, %d failed, %d unknown", seed, ns, o[chaos.OK], o[chaos.Failed], o[chaos.Unknown])
	}
	for _, s := range res.Inconclusive {
		t.Logf("seed %d: inconclusive: %s", seed, s)
	}
	for _, v := range res.Violations {
		t.Errorf("seed %d: VIOLATION: %s", seed, v)
	}
	return res
}

// TestChaosProcesses runs the fault-injection suite on rdb-server
// processes: one short run with a fixed seed, or (with -chaos.duration)
// seed after seed, then a summary.
func TestChaosProcesses(t *testing.T) {
	if *durationFlag == 0 {
		seed := uint64(1)
		if *seedFlag != 0 {
			seed = *seedFlag
		}
		procRun(t, seed)
		return
	}
	deadline := time.Now().Add(time.Duration(float64(*durationFlag) * procsShare))
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	var sum chaos.Summary
	for time.Now().Add(*runFlag).Before(deadline) || sum.Runs == 0 {
		sum.Add(seed, procRun(t, seed))
		seed++
	}
	sum.Print("processes")
}
