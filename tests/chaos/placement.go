package chaos

// The suite with placement: a PD and five PD-mode stores in-process, each
// namespace on three of them, and faults that move replicas, take a store
// down long enough for its replicas to be re-created elsewhere, and remove
// a store for good, on top of the crashes and partitions of LocalFaults.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
)

// placedStores is how many stores a placement run has.
const placedStores = 5

// placedDownTime is the PD's --max-store-down-time in a placement run.
const placedDownTime = 3 * time.Second

// RunPlaced starts a PD and five PD-mode stores and runs the suite on them
// with the placement faults.
func RunPlaced(ctx context.Context, cfg LocalConfig) (RunResult, error) {
	nss := LocalNamespaces(cfg.Seed)
	modes := map[string]string{}
	for _, ns := range nss {
		modes[ns.Name] = map[Mode]string{Strong: "strong", Eventual: "eventual", Flip: ns.Initial}[ns.Mode]
	}
	pd := pdtest.NewCluster(cfg.T, 1,
		pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }),
		func(_ int, c *server.Config) {
			c.ReplicationFactor = 3
			c.StoreDownAfter = time.Second
			c.MaxStoreDownTime = placedDownTime
			c.ScheduleInterval = 200 * time.Millisecond
			c.FormSettle = 300 * time.Millisecond
			c.MaxConcurrentMoves = 4
		})
	cli := pd.Client()
	defer func() { _ = cli.Close() }()
	var pmu sync.Mutex
	var problems []string
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := NewLocalCluster(startCtx, cfg.T, LocalOptions{
		N: placedStores, Seed: cfg.Seed, NamespaceModes: modes, CompactThreshold: compactThreshold,
		Logger: cfg.Logger, Logf: cfg.Logf, PD: strings.Split(pd.Endpoints(), ","),
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
	faults := append(LocalFaults(c), PlacementFaults(c, cli, nss)...)
	if cfg.Faults != nil {
		faults = cfg.Faults(c)
	}
	heal := func(ctx context.Context) error {
		if err := c.Heal(ctx); err != nil {
			return err
		}
		// Every namespace back on as many live replicas as it should have.
		return waitSettled(ctx, cli, c)
	}
	rc := inProcessRun(cfg, nss)
	rc.Name, rc.Cluster, rc.Faults, rc.Heal = fmt.Sprintf("placed-seed-%d", cfg.Seed), c, faults, heal
	rc.Problems = func() []string { pmu.Lock(); defer pmu.Unlock(); return slices.Clone(problems) }
	return Run(ctx, rc), nil

}

// waitSettled waits until no namespace is moving or under-replicated.
func waitSettled(ctx context.Context, cli *pdclient.Client, c *LocalCluster) error {
	return pollUntil(ctx, func() error {
		st, err := cli.GetClusterStatus(ctx)
		if err != nil {
			return err
		}
		if n := len(st.GetMoving()) + len(st.GetUnderReplicated()); n > 0 {
			var what []string
			for _, ns := range append(st.GetMoving(), st.GetUnderReplicated()...) {
				r := ns.GetRecord()
				desc := fmt.Sprintf("%s %s replicas %v filling %v leader %d", r.GetName(), r.GetMode(),
					r.GetReplicas(), r.GetFilling(), ns.GetLeader())
				for i := range c.N() {
					if s := c.Store(i); s != nil {
						if g, ok := s.GroupStatus(r.GetName()); ok {
							desc += fmt.Sprintf(" [store %d: leader %d voters %v learners %v applied %d]", i+1, g.Leader, g.Voters, g.Learners, g.Applied)
						}
					}
				}
				what = append(what, desc)
			}
			return fmt.Errorf("%d namespaces moving, %d under-replicated: %s", len(st.GetMoving()), len(st.GetUnderReplicated()), strings.Join(what, "; "))
		}
		return nil
	})
}

func pollUntil(ctx context.Context, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PlacementFaults moves replicas (a namespace's replica count goes to five
// and back), takes a store down past the PD's down time (its replicas are
// re-created elsewhere, and it comes back to a cluster that moved on), and
// removes one store for good (it keeps running and answering by
// forwarding).
func PlacementFaults(c *LocalCluster, cli *pdclient.Client, nss []Namespace) []Fault {
	var mu sync.Mutex
	removed := map[int]bool{}
	return []Fault{
		{Name: "move-replicas", Weight: 3, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			ns := nss[rng.IntN(len(nss))].Name
			if _, err := cli.SetNamespaceReplicas(ctx, ns, 5); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				_, err := cli.SetNamespaceReplicas(ctx, ns, 3)
				return err
			}, nil
		}},
		{Name: "down-store", Weight: 1, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			run := c.running()
			if len(run) < placedStores {
				return nil, errors.New("a store is already down")
			}
			i := run[rng.IntN(len(run))]
			c.Crash(i, unsynced(rng))
			downAt := time.Now()
			return func(ctx context.Context) error {
				// Past the down time: its replicas are replaced before it
				// comes back.
				select {
				case <-ctx.Done():
				case <-time.After(time.Until(downAt.Add(placedDownTime + 2*time.Second))):
				}
				return c.Start(ctx, i)
			}, nil
		}},
		{Name: "remove-store", Weight: 1, Inject: func(ctx context.Context, rng *rand.Rand) (func(context.Context) error, error) {
			mu.Lock()
			defer mu.Unlock()
			if len(removed) > 0 {
				return nil, errors.New("a store was removed already")
			}
			i := rng.IntN(placedStores)
			if _, err := cli.RemoveStore(ctx, uint64(i+1)); err != nil {
				return nil, err
			}
			removed[i] = true
			return nil, nil
		}},
	}
}
