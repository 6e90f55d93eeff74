package chaos

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

var (
	seedFlag     = flag.Uint64("seed", 0, "replay this seed (0: the fixed seed of the short run, or random seeds with -chaos.duration)")
	durationFlag = flag.Duration("chaos.duration", 0, "run seed after seed for this long in all (make chaos); 0: one short run")
	runFlag      = flag.Duration("chaos.run", 15*time.Second, "how long each run injects faults")
	outFlag      = flag.String("chaos.out", filepath.Join(os.TempDir(), "rdb-chaos"), "where failed checks write porcupine's visualization")
	verboseFlag  = flag.Bool("chaos.verbose", false, "log every store through the test log")
	faultsFlag   = flag.String("chaos.faults", "", "comma-separated fault names (or name prefixes) to inject, instead of the whole mix")
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// shortSeed is the seed of the run `make test` makes.
const shortSeed = 1

// localShare and placedShare are the parts of -chaos.duration this
// package's two suites take; the multi-process suite in tests/ takes the
// rest.
const (
	localShare  = 0.5
	placedShare = 0.25
)

func logger(t *testing.T) *zap.Logger {
	if *verboseFlag || os.Getenv("RDB_TEST_VERBOSE") != "" {
		return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	return nil
}

// TestChaos runs the suite on an in-process cluster: one short run with a
// fixed seed, or (with -chaos.duration) seed after seed, then a summary.
func TestChaos(t *testing.T) {
	if *durationFlag == 0 {
		seed := uint64(shortSeed)
		if *seedFlag != 0 {
			seed = *seedFlag
		}
		runLocal(t, seed, *runFlag, false)
		return
	}
	deadline := time.Now().Add(time.Duration(float64(*durationFlag) * localShare))
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	var sum Summary
	for time.Now().Add(*runFlag).Before(deadline) || sum.Runs == 0 {
		res := runLocal(t, seed, *runFlag, false)
		sum.Add(seed, res)
		seed++
	}
	sum.Print("in-process")
}

// TestChaosPlacement runs the suite on a PD and five PD-mode stores, each
// namespace on three, with the placement faults (replica moves, a store
// down long enough to be replaced, a store removed) on top of the others.
func TestChaosPlacement(t *testing.T) {
	run := func(seed uint64) RunResult {
		t.Logf("seed %d (replay: go test ./tests/chaos/ -run '^TestChaosPlacement$' -seed %d)", seed, seed)
		ctx, cancel := context.WithTimeout(context.Background(), *runFlag+5*time.Minute)
		defer cancel()
		res, err := RunPlaced(ctx, LocalConfig{T: t, Seed: seed, Duration: *runFlag,
			VisualizeDir: *outFlag, Logger: logger(t), Logf: t.Logf})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		report(t, seed, res)
		return res
	}
	if *durationFlag == 0 {
		seed := uint64(shortSeed)
		if *seedFlag != 0 {
			seed = *seedFlag
		}
		run(seed)
		return
	}
	deadline := time.Now().Add(time.Duration(float64(*durationFlag) * placedShare))
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	var sum Summary
	for time.Now().Add(*runFlag).Before(deadline) || sum.Runs == 0 {
		sum.Add(seed, run(seed))
		seed++
	}
	sum.Print("placement")
}

func runLocal(t *testing.T, seed uint64, d time.Duration, unsafe bool) RunResult {
	t.Helper()
	t.Logf("seed %d (replay: go test ./tests/chaos/ -run '^TestChaos$' -seed %d)", seed, seed)
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()
	res, err := RunLocal(ctx, LocalConfig{T: t, Seed: seed, Duration: d, UnsafeFollowerReads: unsafe,
		Faults: onlyFaults(*faultsFlag), VisualizeDir: *outFlag, Logger: logger(t), Logf: t.Logf})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	report(t, seed, res)
	return res
}

// onlyFaults keeps the faults whose names start with one of the
// comma-separated prefixes (all of them if there are none).
func onlyFaults(prefixes string) func(c *LocalCluster) []Fault {
	if prefixes == "" {
		return nil
	}
	return func(c *LocalCluster) []Fault {
		var out []Fault
		for _, f := range LocalFaults(c) {
			for _, p := range strings.Split(prefixes, ",") {
				if p != "" && strings.HasPrefix(f.Name, p) {
					out = append(out, f)
					break
				}
			}
		}
		return out
	}
}

func report(t *testing.T, seed uint64, res RunResult) {
	t.Helper()
	t.Logf("seed %d: %d operations, %d checked, faults %v, %d mode switches", seed, res.Ops, res.Checked, res.Faults, res.Switches)
	for ns, o := range res.Outcomes {
		t.Logf("seed %d: %s: %d answered, %d failed, %d unknown", seed, ns, o[OK], o[Failed], o[Unknown])
	}
	for _, s := range res.Inconclusive {
		t.Logf("seed %d: inconclusive: %s", seed, s)
	}
	for _, v := range res.Violations {
		t.Errorf("seed %d: VIOLATION: %s", seed, v)
	}
}
