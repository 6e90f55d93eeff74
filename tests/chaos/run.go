package chaos

// One run: workload, nemesis and switches for a while; then heal, quiesce,
// read the final state and check.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/storetest"
)

// switchTimeout bounds each request for a mode switch, finalTimeout each
// read of the final state.
const (
	switchTimeout = 3 * time.Second
	finalTimeout  = 2 * time.Second
)

// RunConfig describes a run.
type RunConfig struct {
	// Name prefixes visualization files (for example "local-seed-42").
	Name    string
	Seed    uint64
	Cluster Cluster
	Faults  []Fault
	// Heal ends every fault: links healed, every store running (and
	// resumed), serving.
	Heal func(ctx context.Context) error
	// Problems, if set, reports what the cluster saw go wrong by itself
	// (a store whose persistence failed).
	Problems func() []string

	Namespaces []Namespace
	Duration   time.Duration
	Clients    int
	OpTimeout  time.Duration
	Think      time.Duration
	// MaxOpDelay: see Input.
	MaxOpDelay time.Duration
	// Faults come every FaultGap and last FaultHold (bounds).
	FaultGap, FaultHold [2]time.Duration
	// A switching namespace switches every SwitchGap (bounds).
	SwitchGap [2]time.Duration

	VisualizeDir string
	Logf         func(string, ...any)
}

// RunResult is what a run did and found.
type RunResult struct {
	Ops int // client operations made
	// Outcomes counts, per namespace, operations answered, failed (no
	// effect) and unknown (may have happened).
	Outcomes     map[string][3]int
	Checked      int // operations the checker checked
	Faults       map[string]int
	Switches     int
	Events       []Event
	Violations   []string
	Inconclusive []string
	Visualized   []string
}

// FaultCount is the number of faults injected, switches included.
func (r RunResult) FaultCount() int {
	n := r.Switches
	for _, c := range r.Faults {
		n += c
	}
	return n
}

// Run runs the workload against the cluster under faults, then checks.
func Run(ctx context.Context, cfg RunConfig) RunResult {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	h := NewHistory()
	res := RunResult{Faults: map[string]int{}}
	wl := &Workload{H: h, C: cfg.Cluster, Namespaces: cfg.Namespaces, Clients: cfg.Clients, Seed: cfg.Seed,
		OpTimeout: cfg.OpTimeout, Think: cfg.Think}
	nem := &nemesis{h: h, faults: cfg.Faults, rng: rand.New(rand.NewPCG(cfg.Seed, 1)),
		minGap: cfg.FaultGap[0], maxGap: cfg.FaultGap[1], minHold: cfg.FaultHold[0], maxHold: cfg.FaultHold[1], logf: logf}
	// The switches and the final reads go through clients of their own.
	admin, err := newClient(cfg.Cluster, switchTimeout)
	if err != nil {
		res.Violations = append(res.Violations, fmt.Sprintf("client: %v", err))
		return res
	}
	defer func() { _ = admin.Close() }()
	reader, err := newCaller(cfg.Cluster, true, finalTimeout)
	if err != nil {
		res.Violations = append(res.Violations, fmt.Sprintf("client: %v", err))
		return res
	}
	defer reader.close()
	var sws []*switcher
	for k, ns := range cfg.Namespaces {
		if ns.Mode == Flip {
			sws = append(sws, &switcher{h: h, c: cfg.Cluster, cli: admin, ns: ns.Name, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(10+k))),
				minGap: cfg.SwitchGap[0], maxGap: cfg.SwitchGap[1], logf: logf, current: ns.Initial})
		}
	}

	// The namespaces have their configured modes before anything happens.
	for _, ns := range cfg.Namespaces {
		want := map[Mode]string{Strong: "strong", Eventual: "eventual", Flip: ns.Initial}[ns.Mode]
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := waitMode(wctx, cfg.Cluster, ns.Name, want); err != nil {
			res.Violations = append(res.Violations, fmt.Sprintf("configured mode at start: %v", err))
		}
		cancel()
	}

	wlCtx, stopWorkload := context.WithCancel(ctx)
	nemCtx, stopNemesis := context.WithCancel(ctx)
	swCtx, stopSwitches := context.WithCancel(ctx)
	// Ending a fault or finishing a switch must not hang the run.
	finishCtx, cancelFinish := context.WithTimeout(ctx, cfg.Duration+2*time.Minute)
	defer cancelFinish()
	var wlWG, bgWG sync.WaitGroup
	var wlErr error
	wlWG.Add(1)
	go func() { defer wlWG.Done(); wlErr = wl.Run(wlCtx) }()
	if len(cfg.Faults) > 0 {
		bgWG.Add(1)
		go func() { defer bgWG.Done(); nem.run(nemCtx, finishCtx) }()
	}
	var swWG sync.WaitGroup
	for _, sw := range sws {
		swWG.Add(1)
		go func() { defer swWG.Done(); sw.run(swCtx, finishCtx) }()
	}

	sleepCtx(ctx, cfg.Duration)
	stopNemesis()
	bgWG.Wait()
	healCtx, cancelHeal := context.WithTimeout(ctx, time.Minute)
	if err := cfg.Heal(healCtx); err != nil {
		res.Violations = append(res.Violations, fmt.Sprintf("the cluster does not serve again after healing: %v", err))
	}
	cancelHeal()
	healed := h.Now()
	stopSwitches()
	swWG.Wait()
	for _, sw := range sws {
		res.Switches += sw.switches
		if sw.err != nil {
			res.Violations = append(res.Violations, sw.err.Error())
		}
	}
	// A healthy cluster must serve: let the workload run on it a little.
	sleepCtx(ctx, 3*time.Second)
	stopWorkload()
	wlWG.Wait()
	if wlErr != nil {
		res.Violations = append(res.Violations, fmt.Sprintf("workload: %v", wlErr))
	}

	for _, ev := range nem.Events() {
		res.Faults[ev.Name]++
	}
	res.Events = nem.Events()
	ops := h.Ops()
	res.Ops = len(ops)
	res.Outcomes = map[string][3]int{}
	for _, op := range ops {
		o := res.Outcomes[op.NS]
		o[op.Outcome]++
		res.Outcomes[op.NS] = o
	}
	res.Violations = append(res.Violations, liveness(cfg.Namespaces, ops, healed)...)

	// The final state, once nothing moves.
	final := map[string]map[string]Cand{}
	finalMode := map[string]string{}
	for _, ns := range cfg.Namespaces {
		mode := map[Mode]string{Strong: "strong", Eventual: "eventual"}[ns.Mode]
		for _, sw := range sws {
			if sw.ns == ns.Name {
				mode = sw.current
			}
		}
		finalMode[ns.Name] = mode
	}
	qctx, cancelQ := context.WithTimeout(ctx, time.Minute)
	defer cancelQ()
	for _, ns := range cfg.Namespaces {
		if err := waitMode(qctx, cfg.Cluster, ns.Name, finalMode[ns.Name]); err != nil {
			res.Violations = append(res.Violations, err.Error())
			continue
		}
		vals, err := converged(qctx, cfg.Cluster, ns.Name)
		if err != nil {
			res.Violations = append(res.Violations, err.Error())
			continue
		}
		if finalMode[ns.Name] == "eventual" {
			final[ns.Name] = map[string]Cand{}
			for _, k := range ns.Keys {
				v, ok := vals[k]
				final[ns.Name][k] = Cand{Exists: ok, Value: v}
			}
			continue
		}
		for _, k := range ns.Keys {
			op, err := finalGet(qctx, h, reader, cfg.Clients, ns.Name, k)
			if err != nil {
				res.Violations = append(res.Violations, err.Error())
				continue
			}
			ops = append(ops, op)
		}
	}
	if cfg.Problems != nil {
		res.Violations = append(res.Violations, cfg.Problems()...)
	}

	nss := slices.Clone(cfg.Namespaces)
	for i := range nss {
		for _, sw := range sws {
			if sw.ns == nss[i].Name {
				nss[i].Windows = sw.windows
			}
		}
	}
	checked := Check(Input{Namespaces: nss, Ops: ops, Final: final, MaxOpDelay: cfg.MaxOpDelay,
		Timeout: 2 * time.Minute, VisualizeDir: cfg.VisualizeDir, Name: cfg.Name})
	res.Checked = checked.Checked
	res.Violations = append(res.Violations, checked.Violations...)
	res.Inconclusive = checked.Inconclusive
	res.Visualized = checked.Visualized
	return res
}

// liveness: once healed, every namespace serves again.
func liveness(nss []Namespace, ops []*Op, healed int64) []string {
	ok := map[string]bool{}
	for _, op := range ops {
		if op.Call >= healed && op.Outcome == OK {
			ok[op.NS] = true
		}
	}
	var out []string
	for _, ns := range nss {
		if !ok[ns.Name] {
			out = append(out, fmt.Sprintf("%s: no operation succeeded in the 3s after the cluster healed", ns.Name))
		}
	}
	return out
}

// converged waits until every store holds the same data for ns (read
// from its own replica with RawScan) and returns it.
func converged(ctx context.Context, c Cluster, ns string) (map[string]string, error) {
	var last map[string]string
	err := storetest.Poll(ctx, func() error {
		var first map[string]string
		firstStore := -1
		for i := range c.N() {
			if !c.Running(i) {
				continue // a store the test stopped for good
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := kvrpc.NewKvRawClient(c.Conn(i)).RawScan(cctx, &kvrpc.RawScanRequest{Namespace: ns, Limit: 10000})
			cancel()
			if err != nil {
				return fmt.Errorf("store %d: %w", i+1, err)
			}
			got := map[string]string{}
			for _, kv := range resp.GetKvs() {
				got[kv.GetKey()] = kv.GetValue()
			}
			if firstStore < 0 {
				first, firstStore = got, i
				continue
			}
			if !maps.Equal(first, got) {
				return fmt.Errorf("store %d holds %v, store %d holds %v", firstStore+1, first, i+1, got)
			}
		}
		last = first
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: replicas do not converge: %w", ns, err)
	}
	return last, nil
}

// finalGet reads a key linearizably once the cluster is healthy, and
// records the read.
func finalGet(ctx context.Context, h *History, k *caller, id int, ns, key string) (*Op, error) {
	var op *Op
	err := storetest.Poll(ctx, func() error {
		o := &Op{Client: id, NS: ns, Key: key, Kind: Get}
		return k.do(ctx, h, o, finalTimeout, func(ctx context.Context, cli *client.Client) error {
			res, err := cli.Get(ctx, ns, key)
			if err == nil {
				o.Found, o.OutValue, o.Version = res.Found, res.Value, res.Version
				op = o
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s/%s: no linearizable read after healing: %w", ns, key, err)
	}
	return op, nil
}
