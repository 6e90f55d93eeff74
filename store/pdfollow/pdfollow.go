// Package pdfollow is the authority of a PD-mode store: the placement
// driver decides the namespace table and the store list, and the store
// follows it. It registers, follows the table through a watch (persisting
// every row and the revision, synced, before it applies them, so what it
// reports applied survives a crash), heartbeats what it has applied, and
// keeps serving with its last table when every PD member is down.
package pdfollow

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/namespace"
)

// Config is what a PD follower needs from its store.
type Config struct {
	StoreID       uint64
	AdvertiseAddr string
	// PD lists the placement driver's endpoints.
	PD []string
	// Credentials dial PD: TLS with the store's certificate, or plaintext.
	Credentials credentials.TransportCredentials
	// NamespaceModes are set in PD when it does not have them yet.
	NamespaceModes map[string]string
	DB             *pebble.DB
	Table          *modetable.Table
	Logger         *zap.Logger
	// Report fills a heartbeat with what the store has applied: each
	// namespace's state and each group's Raft and switch state.
	Report func(req *pdpb.StoreHeartbeatRequest)
	// Changed is signalled when the store's state changed (a switch step
	// applied): the next heartbeat goes at once.
	Changed <-chan struct{}
}

// Follower follows PD.
type Follower struct {
	cfg Config
	log *zap.Logger
	cli *pdclient.Client

	mu       sync.RWMutex
	stores   []*storepb.StoreInfo
	revision uint64 // table revision applied and persisted
}

// New loads the table, its revision and the store list this store last
// persisted, so that it serves even if PD is down when it starts. A state
// that cannot be read is an error.
func New(cfg Config) (*Follower, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cli, err := pdclient.New(strings.Join(cfg.PD, ","), pdclient.WithAttemptTimeout(2*time.Second), pdclient.WithMaxBackoff(time.Second),
		pdclient.WithCredentials(cfg.Credentials))
	if err != nil {
		return nil, err
	}
	f := &Follower{cfg: cfg, log: cfg.Logger, cli: cli}
	if err := f.load(); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("pdfollow: %w", err)
	}
	return f, nil
}

// Close releases the PD client.
func (f *Follower) Close() { _ = f.cli.Close() }

func (f *Follower) load() error {
	db := f.cfg.DB
	if b, ok, err := kvread.Get(db, keys.PDRevision()); err != nil {
		return err
	} else if ok {
		if len(b) != 8 {
			return fmt.Errorf("table revision of %d bytes", len(b))
		}
		f.revision = binary.BigEndian.Uint64(b)
	}
	var stores []*storepb.StoreInfo
	if err := kvread.ScanPrefix(db, keys.PDStorePrefix(), func(_, v []byte) error {
		info := &storepb.StoreInfo{}
		if err := proto.Unmarshal(v, info); err != nil {
			return fmt.Errorf("decode store: %w", err)
		}
		stores = append(stores, info)
		return nil
	}); err != nil {
		return err
	}
	f.stores = stores
	return kvread.ScanPrefix(db, keys.PDTablePrefix(), func(_, v []byte) error {
		rec := &storepb.NamespaceRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("decode namespace row: %w", err)
		}
		f.cfg.Table.Apply(rec)
		return nil
	})
}

// Stores lists every store of the cluster, as PD last said.
func (f *Follower) Stores() []*storepb.StoreInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.stores
}

// CaughtUp is always true: rows are persisted before they are applied, so
// the table a store restarts with is all it ever applied.
func (f *Follower) CaughtUp() bool { return true }

// AppliedRevision is the table revision applied and persisted.
func (f *Follower) AppliedRevision() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.revision
}

// setStores keeps PD's store list, persisted so that a restart without PD
// still knows its peers.
func (f *Follower) setStores(stores []*storepb.StoreInfo) error {
	if len(stores) == 0 {
		return nil
	}
	stores = slices.Clone(stores)
	slices.SortFunc(stores, func(x, y *storepb.StoreInfo) int { return int(x.GetId()) - int(y.GetId()) })
	f.mu.RLock()
	same := slices.EqualFunc(f.stores, stores, func(x, y *storepb.StoreInfo) bool { return proto.Equal(x, y) })
	f.mu.RUnlock()
	if same {
		return nil
	}
	b := f.cfg.DB.NewBatch()
	defer b.Close()
	for _, st := range stores {
		v, err := proto.Marshal(st)
		if err != nil {
			return err
		}
		if err := b.Set(keys.PDStore(st.GetId()), v, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	f.mu.Lock()
	f.stores = stores
	f.mu.Unlock()
	return nil
}

// Ensure returns a namespace's row, creating it in PD with the default
// mode if PD does not have it.
func (f *Follower) Ensure(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	st, err := f.cli.GetNamespace(ctx, ns, true)
	if err != nil {
		return nil, err
	}
	return st.GetRecord(), nil
}

// SetMode forwards a mode change to PD.
func (f *Follower) SetMode(ctx context.Context, ns, mode string, force bool) (*storepb.NamespaceRecord, bool, error) {
	resp, err := f.cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: mode, Force: force})
	if err != nil {
		return nil, false, err
	}
	return resp.GetRecord(), resp.GetChanged(), nil
}

var _ modetable.Authority = (*Follower)(nil)

// ApplyWatch persists a watch response (rows, then the revision, in one
// synced batch) and then applies its rows, newer versions only.
func (f *Follower) ApplyWatch(resp *pdpb.WatchNamespacesResponse) error {
	b := f.cfg.DB.NewBatch()
	defer b.Close()
	for _, rec := range resp.GetRecords() {
		if cur, ok := f.cfg.Table.Get(rec.GetName()); ok && cur.GetVersion() >= rec.GetVersion() {
			continue
		}
		v, err := proto.Marshal(rec)
		if err != nil {
			return err
		}
		if err := b.Set(keys.PDTableRow(rec.GetName()), v, nil); err != nil {
			return err
		}
	}
	rev := max(resp.GetRevision(), f.AppliedRevision())
	if err := b.Set(keys.PDRevision(), binary.BigEndian.AppendUint64(nil, rev), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, rec := range resp.GetRecords() {
		f.cfg.Table.Apply(rec)
	}
	f.mu.Lock()
	f.revision = rev
	f.mu.Unlock()
	return nil
}

// Start follows PD until ctx ends (wg counts the work). The store serves at
// once with the table it persisted; registration, the watch and heartbeats
// retry in the background until PD answers. fatal is called when what PD
// sent cannot be persisted: the store stops.
func (f *Follower) Start(ctx context.Context, wg *sync.WaitGroup, fatal func(error)) {
	wg.Add(3)
	go func() { defer wg.Done(); f.heartbeatLoop(ctx, fatal) }()
	go func() { defer wg.Done(); f.watchLoop(ctx, fatal) }()
	go func() { defer wg.Done(); f.seedLoop(ctx) }()
}

func (f *Follower) watchLoop(ctx context.Context, fatal func(error)) {
	var persistErr error
	apply := func(resp *pdpb.WatchNamespacesResponse) error {
		if err := f.ApplyWatch(resp); err != nil {
			persistErr = err
			return err
		}
		return nil
	}
	for ctx.Err() == nil {
		err := f.cli.WatchNamespaces(ctx, f.AppliedRevision(), apply)
		if persistErr != nil {
			fatal(fmt.Errorf("persist the mode table from PD: %w", persistErr))
			return
		}
		if err != nil && ctx.Err() == nil {
			f.log.Debug("following PD's table", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// heartbeatLoop registers the store, then reports every second what it
// has applied; PD answers with the store list.
func (f *Follower) heartbeatLoop(ctx context.Context, fatal func(error)) {
	registered := false
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var stores []*storepb.StoreInfo
		if !registered {
			st, err := f.cli.RegisterStore(cctx, &storepb.StoreInfo{Id: f.cfg.StoreID, Addr: f.cfg.AdvertiseAddr})
			if err == nil {
				registered, stores = true, st
				f.log.Info("registered with PD", zap.Int("stores", len(st)))
			} else {
				f.log.Debug("register with PD", zap.Error(err))
			}
		}
		if registered {
			if resp, err := f.cli.StoreHeartbeat(cctx, f.heartbeat()); err == nil {
				stores = resp.GetStores()
			}
		}
		cancel()
		if err := f.setStores(stores); err != nil {
			fatal(fmt.Errorf("persist the store list from PD: %w", err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.cfg.Table.Changed():
			// Report a newly applied row or switch step at once: rollouts
			// are timed by it.
		case <-f.cfg.Changed:
		}
	}
}

func (f *Follower) heartbeat() *pdpb.StoreHeartbeatRequest {
	req := &pdpb.StoreHeartbeatRequest{StoreId: f.cfg.StoreID, Addr: f.cfg.AdvertiseAddr, AppliedRevision: f.AppliedRevision()}
	if f.cfg.Report != nil {
		f.cfg.Report(req)
	}
	return req
}

// seedLoop sets --namespace-mode rows that PD does not have yet, and
// makes sure the default namespace exists.
func (f *Follower) seedLoop(ctx context.Context) {
	pending := map[string]string{}
	for ns, mode := range f.cfg.NamespaceModes {
		pending[ns] = mode
	}
	for {
		for ns, mode := range pending {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := f.cli.SetNamespaceMode(cctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: mode, OnlyIfAbsent: true})
			cancel()
			if err == nil {
				delete(pending, ns)
			}
		}
		_, haveDefault := f.cfg.Table.Get(namespace.Default)
		if !haveDefault {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := f.cli.GetNamespace(cctx, namespace.Default, true)
			cancel()
			haveDefault = err == nil
		}
		if len(pending) == 0 && haveDefault {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
