package store_test

// What a store does when the state it applies Raft entries to cannot be
// read: it stops (persistence and decode errors are fatal) instead of
// counting the entry applied and diverging from its peers, and a state that
// cannot be loaded fails Open.

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/storetest"
)

// fatalLog records the persistence failures a store reports.
type fatalLog struct {
	mu   sync.Mutex
	errs []error
}

func (f *fatalLog) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *fatalLog) first() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) == 0 {
		return nil
	}
	return f.errs[0]
}

// overwrite stops store i, sets key to value in its DB, and leaves it
// stopped.
func overwrite(t *testing.T, c *storetest.Cluster, i int, dir string, key, value []byte) {
	t.Helper()
	c.Stop(i)
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatalf("open store %d's DB: %v", i+1, err)
	}
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestApplyErrorStopsTheStore: a CAS whose key's stored value cannot be
// decoded must stop the store (OnFatal) and must not count as applied; the
// store never answers it with a result.
func TestApplyErrorStopsTheStore(t *testing.T) {
	fatal := &fatalLog{}
	var dir string
	c := storetest.NewCluster(t, 1, storetest.Options{Configure: func(i int, cfg *store.Config) {
		dir = cfg.DataDir
		cfg.OnFatal = fatal.add
	}})
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Cas(0).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	row, _ := c.Store(0).NamespaceRow("default")
	group := row.GetGroupId()
	if group == 0 {
		t.Fatal("default has no group")
	}
	// A stored strong value is an 8-byte version then the value: 3 bytes
	// cannot be decoded.
	overwrite(t, c, 0, dir, keys.StrongKey(group, []byte("k")), []byte{1, 2, 3})
	c.Start(0)

	before, _ := c.Store(0).GroupStatus("default")
	cctx := ctxT(t, 3*time.Second)
	resp, err := c.Cas(0).CompareAndSwap(cctx, &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "w", ExpectedVersion: 9})
	if err == nil {
		t.Fatalf("CAS over an undecodable value answered %v: the store must stop, not answer", resp)
	}
	storetest.Eventually(t, 5*time.Second, func() error {
		if fatal.first() == nil {
			return errors.New("OnFatal not called")
		}
		return nil
	}, "the store stops on an apply error")
	if !strings.Contains(fatal.first().Error(), "group") {
		t.Errorf("fatal error %q does not say which group failed", fatal.first())
	}
	after, _ := c.Store(0).GroupStatus("default")
	// The entry that failed is not applied: at most the new leader's empty
	// entry was.
	if after.Applied > before.Commit+1 {
		t.Fatalf("applied index went from %d to %d past the failed entry (commit was %d)", before.Applied, after.Applied, before.Commit)
	}
}

// TestUnreadableStateFailsOpen: a namespace group's switch state or a meta
// row that cannot be decoded makes Open fail; the store does not start
// with an empty state in its place.
func TestUnreadableStateFailsOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(group uint64) []byte
	}{
		{"group state", keys.GroupState},
		{"meta row", func(uint64) []byte { return keys.MetaNamespace("default") }},
		{"meta store", func(uint64) []byte { return keys.MetaStore(1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg store.Config
			c := storetest.NewCluster(t, 1, storetest.Options{Configure: func(i int, c *store.Config) {
				c.OnFatal = func(err error) { t.Errorf("OnFatal: %v", err) }
				cfg = *c
			}})
			row, _ := c.Store(0).NamespaceRow("default")
			overwrite(t, c, 0, cfg.DataDir, tc.key(row.GetGroupId()), []byte{0xff, 0xff, 0xff})
			s, err := store.Open(cfg)
			if err == nil {
				s.Stop()
				t.Fatalf("Open with an undecodable %s succeeded", tc.name)
			}
			t.Logf("Open: %v", err)
		})
	}
}
