package store

// The store's cluster: which cluster it belongs to (its id, learned once
// and persisted), and in which mode its data dir was created.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
)

// clusterIdentity is this store's cluster id: read from m/cluster at Open,
// else learned once (the bootstrap, a join, the first registration with
// PD) and persisted, synced, before anyone uses it. 0: not known yet.
type clusterIdentity struct {
	db  *pebble.DB
	log *zap.Logger

	mu sync.Mutex // serialises Learn
	id atomic.Uint64
}

func loadClusterIdentity(db *pebble.DB, log *zap.Logger) (*clusterIdentity, error) {
	c := &clusterIdentity{db: db, log: log}
	b, ok, err := kvread.Get(db, keys.Cluster())
	if err != nil {
		return nil, err
	}
	if ok {
		id, err := clusterid.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("data dir's cluster id: %w", err)
		}
		c.id.Store(id)
	}
	return c, nil
}

// ID is the cluster id, 0 if this store does not know it yet.
func (c *clusterIdentity) ID() uint64 { return c.id.Load() }

// Learn makes id this store's cluster id, persisted before it returns. It
// is an error if the store already belongs to another cluster.
func (c *clusterIdentity) Learn(id uint64) error {
	if id == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cur := c.id.Load(); cur {
	case id:
		return nil
	case 0:
	default:
		return clusterid.Mismatch(fmt.Sprintf("this store belongs to cluster %s, not to cluster %s",
			clusterid.String(cur), clusterid.String(id)), cur, id)
	}
	if err := c.db.Set(keys.Cluster(), clusterid.Encode(id), pebble.Sync); err != nil {
		return fmt.Errorf("persist the cluster id: %w", err)
	}
	c.id.Store(id)
	c.log.Info("this store belongs to cluster " + clusterid.String(id))
	return nil
}

// checkMode makes sure the data dir was created in this start's mode
// (static, or following a PD), and records the mode in a new one. A data
// dir from before m/mode existed tells its mode by what it holds.
func (s *Store) checkMode() error {
	want := keys.ModeStatic
	if len(s.cfg.PD) > 0 {
		want = keys.ModePD
	}
	b, ok, err := kvread.Get(s.db, keys.Mode())
	if err != nil {
		return err
	}
	have := string(b)
	if !ok {
		if have, err = inferMode(s.db); err != nil {
			return err
		}
	}
	switch {
	case have == "" || (have == want && !ok):
		return s.db.Set(keys.Mode(), []byte(want), pebble.Sync)
	case have == want:
		return nil
	case have == keys.ModeStatic:
		return fmt.Errorf("data dir %s was created by a static-mode store (no --pd): it cannot follow a placement driver; use another --data-dir",
			s.cfg.DataDir)
	case have == keys.ModePD:
		return fmt.Errorf("data dir %s was created by a store that followed a placement driver (--pd): it cannot run in static mode; start it with --pd, or use another --data-dir",
			s.cfg.DataDir)
	}
	return fmt.Errorf("data dir %s: unknown mode %q", s.cfg.DataDir, have)
}

// inferMode tells the mode of a data dir without m/mode: static if it
// holds the meta group, PD mode if it holds anything from PD, else none.
func inferMode(db *pebble.DB) (string, error) {
	for _, probe := range []struct {
		prefix []byte
		mode   string
	}{
		{keys.RaftPrefix(keys.MetaGroupID), keys.ModeStatic},
		{keys.StatePrefix(keys.MetaGroupID), keys.ModeStatic},
		{keys.PDRevision(), keys.ModePD},
		{keys.PDTablePrefix(), keys.ModePD},
		{keys.PDStorePrefix(), keys.ModePD},
	} {
		found := false
		if err := kvread.ScanPrefix(db, probe.prefix, func(_, _ []byte) error {
			found = true
			return errStopScan
		}); err != nil && !errors.Is(err, errStopScan) {
			return "", err
		}
		if found {
			return probe.mode, nil
		}
	}
	return "", nil
}

var errStopScan = errors.New("stop")
