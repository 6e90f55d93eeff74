package pdtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// FakeStore plays a store's part towards PD, through pdclient: it
// registers, follows the mode table with a watch, and heartbeats the table
// revision it has received every 100ms. It applies nothing.
type FakeStore struct {
	ID   uint64
	Addr string

	cli    *pdclient.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   sync.Once

	mu        sync.Mutex
	received  uint64 // table revision received from the watch
	frozen    bool   // report frozenAt instead of received
	frozenAt  uint64
	table     map[string]*storepb.NamespaceRecord
	switching map[string]bool
	reloads   int
}

// StartFakeStore registers store id with the PD at endpoints and starts
// following it; it stops when the test ends.
func StartFakeStore(t testing.TB, endpoints string, id uint64) *FakeStore {
	t.Helper()
	cli, err := pdclient.New(endpoints, pdclient.WithAttemptTimeout(time.Second))
	if err != nil {
		t.Fatalf("fake store %d: %v", id, err)
	}
	f := &FakeStore{
		ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", 20000+id), cli: cli,
		table: map[string]*storepb.NamespaceRecord{}, switching: map[string]bool{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	defer rcancel()
	if _, err := cli.RegisterStore(rctx, &storepb.StoreInfo{Id: id, Addr: f.Addr}); err != nil {
		cancel()
		cli.Close()
		t.Fatalf("fake store %d: register: %v", id, err)
	}
	f.wg.Go(func() { _ = cli.WatchNamespaces(ctx, 0, f.apply) })
	f.wg.Go(func() { f.heartbeatLoop(ctx) })
	t.Cleanup(f.Stop)
	return f
}

func (f *FakeStore) apply(resp *pdpb.WatchNamespacesResponse) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if resp.GetReload() {
		f.table = map[string]*storepb.NamespaceRecord{}
		f.reloads++
	}
	for _, rec := range resp.GetRecords() {
		if cur, ok := f.table[rec.GetName()]; ok && cur.GetVersion() >= rec.GetVersion() {
			continue // never go back to an older version
		}
		f.table[rec.GetName()] = proto.Clone(rec).(*storepb.NamespaceRecord)
	}
	f.received = max(f.received, resp.GetRevision())
	return nil
}

func (f *FakeStore) heartbeatLoop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = f.cli.StoreHeartbeat(hctx, f.heartbeat())
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (f *FakeStore) heartbeat() *pdpb.StoreHeartbeatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	req := &pdpb.StoreHeartbeatRequest{StoreId: f.ID, Addr: f.Addr, AppliedRevision: f.appliedLocked()}
	for name, rec := range f.table {
		state := "active"
		if f.switching[name] {
			state = "switching"
		}
		req.Namespaces = append(req.Namespaces, &pdpb.NamespaceApplied{Namespace: name, Version: rec.GetVersion(), State: state})
	}
	return req
}

func (f *FakeStore) appliedLocked() uint64 {
	if f.frozen {
		return f.frozenAt
	}
	return f.received
}

// Applied is the table revision the store reports.
func (f *FakeStore) Applied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.appliedLocked()
}

// Record returns the store's copy of a namespace's record.
func (f *FakeStore) Record(name string) (*storepb.NamespaceRecord, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.table[name]
	return rec, ok
}

// Reloads counts the whole-table responses received.
func (f *FakeStore) Reloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// Freeze makes the store keep reporting the revision it has now (a store
// that lags); Unfreeze ends that.
func (f *FakeStore) Freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen, f.frozenAt = true, f.received
}

// Unfreeze lets the reported revision follow the table again.
func (f *FakeStore) Unfreeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = false
}

// SetSwitching makes the store report namespace ns as switching (or not).
func (f *FakeStore) SetSwitching(ns string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.switching[ns] = on
}

// Stop stops the store: it no longer heartbeats, so PD sees it go down.
func (f *FakeStore) Stop() {
	f.stop.Do(func() {
		f.cancel()
		f.wg.Wait()
		f.cli.Close()
	})
}

// WaitApplied waits until the store reports at least revision rev.
func (f *FakeStore) WaitApplied(t testing.TB, rev uint64) {
	t.Helper()
	Eventually(t, 10*time.Second, func() error {
		if got := f.Applied(); got < rev {
			return fmt.Errorf("store %d applied %d, want %d", f.ID, got, rev)
		}
		return nil
	})
}
