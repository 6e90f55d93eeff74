package chaos

// An in-process cluster for fault injection: the store tests' harness
// (storetest.Cluster) with every store on its own crashable in-memory file
// system and a transport whose every link can drop, delay, duplicate or
// cut messages. A crash keeps only what the store had synced (and, at
// random, some of what it had not), as a power loss would.

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// LocalOptions configure a LocalCluster.
type LocalOptions struct {
	N              int
	Seed           uint64
	NamespaceModes map[string]string
	// CompactThreshold is small so that stores that fall behind catch up
	// by snapshot.
	CompactThreshold uint64
	// UnsafeFollowerReads breaks the stores (see store.Config); it has an
	// effect only in builds with the rdb_unsafe_reads tag.
	UnsafeFollowerReads bool
	Logger              *zap.Logger
	Logf                func(string, ...any)
	// OnFatal receives persistence failures of the stores.
	OnFatal func(store int, err error)
	// PD endpoints: the stores run in PD mode (placement).
	PD []string
}

// LinkFault is what happens on one link (storetest.LinkFault).
type LinkFault = storetest.LinkFault

// LocalCluster is a cluster of in-process stores.
type LocalCluster struct {
	*storetest.Cluster
	opts LocalOptions
}

// NewLocalCluster starts opts.N stores: store 1 bootstraps, the others
// join through it. It returns once every store serves; the stores stop
// when the test ends (or at Close).
func NewLocalCluster(ctx context.Context, t testing.TB, opts LocalOptions) (*LocalCluster, error) {
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	c, err := storetest.Start(ctx, t, opts.N, storetest.Options{
		NamespaceModes:   opts.NamespaceModes,
		CompactThreshold: opts.CompactThreshold,
		CrashableFS:      true,
		Seed:             opts.Seed,
		PD:               opts.PD,
		Logger:           logger,
		Configure: func(i int, cfg *store.Config) {
			cfg.RequestTimeout = 5 * time.Second
			cfg.UnsafeFollowerReads = opts.UnsafeFollowerReads
			cfg.OnFatal = func(err error) {
				if opts.OnFatal != nil {
					opts.OnFatal(i, err)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}
	lc := &LocalCluster{Cluster: c, opts: opts}
	if err := c.WaitServing(ctx); err != nil {
		c.StopAll()
		return nil, err
	}
	return lc, nil
}

// Start starts store i unless it runs.
func (c *LocalCluster) Start(ctx context.Context, i int) error { return c.StartStore(ctx, i) }

// Close stops every store and closes the client connections.
func (c *LocalCluster) Close() { c.StopAll() }
