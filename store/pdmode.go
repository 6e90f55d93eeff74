package store

// PD mode: the placement driver is the authority for the mode table and
// the store list. The store registers, follows the table through a watch
// (persisting every row and the revision before it reports them applied),
// heartbeats what it has applied, and keeps serving with its last table
// when every PD member is down.

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/keys"
)

// pdAuthority decides the table through PD.
type pdAuthority struct {
	s   *Store
	cli *pdclient.Client

	mu       sync.RWMutex
	stores   []*storepb.StoreInfo
	revision uint64 // table revision applied and persisted
}

func newPDAuthority(s *Store) (*pdAuthority, error) {
	cli, err := pdclient.New(joinEndpoints(s.cfg.PD), pdclient.WithAttemptTimeout(2*time.Second), pdclient.WithMaxBackoff(time.Second))
	if err != nil {
		return nil, err
	}
	a := &pdAuthority{s: s, cli: cli}
	if err := a.load(); err != nil {
		_ = cli.Close()
		return nil, err
	}
	return a, nil
}

func joinEndpoints(eps []string) string {
	out := ""
	for i, e := range eps {
		if i > 0 {
			out += ","
		}
		out += e
	}
	return out
}

func (a *pdAuthority) close() { _ = a.cli.Close() }

// load reads the table, its revision and the store list this store last
// persisted, so that it serves even if PD is down when it starts.
func (a *pdAuthority) load() error {
	db := a.s.db
	if b, ok, err := getValue(db, keys.PDRevision()); err != nil {
		return err
	} else if ok {
		a.revision = decodeUint64(b)
	}
	var stores []*storepb.StoreInfo
	if err := scanPrefix(db, keys.PDStorePrefix(), func(_, v []byte) error {
		info := &storepb.StoreInfo{}
		if err := proto.Unmarshal(v, info); err != nil {
			return err
		}
		stores = append(stores, info)
		return nil
	}); err != nil {
		return err
	}
	a.stores = stores
	return scanPrefix(db, keys.PDTablePrefix(), func(_, v []byte) error {
		rec := &storepb.NamespaceRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return err
		}
		a.s.table.Apply(rec)
		return nil
	})
}

func (a *pdAuthority) Stores() []*storepb.StoreInfo {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.stores
}

func (a *pdAuthority) appliedRevision() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.revision
}

// setStores keeps PD's store list, persisted so that a restart without PD
// still knows its peers.
func (a *pdAuthority) setStores(stores []*storepb.StoreInfo) {
	if len(stores) == 0 {
		return
	}
	stores = slices.Clone(stores)
	slices.SortFunc(stores, func(x, y *storepb.StoreInfo) int { return int(x.GetId()) - int(y.GetId()) })
	a.mu.Lock()
	same := slices.EqualFunc(a.stores, stores, func(x, y *storepb.StoreInfo) bool { return proto.Equal(x, y) })
	if !same {
		a.stores = stores
	}
	a.mu.Unlock()
	if same {
		return
	}
	b := a.s.db.NewBatch()
	defer b.Close()
	for _, st := range stores {
		v, err := proto.Marshal(st)
		if err == nil {
			err = b.Set(keys.PDStore(st.GetId()), v, nil)
		}
		if err != nil {
			a.s.log.Error("persist store list", zap.Error(err))
			return
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		a.s.log.Error("persist store list", zap.Error(err))
	}
}

func (a *pdAuthority) Ensure(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	st, err := a.cli.GetNamespace(ctx, ns, true)
	if err != nil {
		return nil, err
	}
	return st.GetRecord(), nil
}

func (a *pdAuthority) SetMode(ctx context.Context, ns, mode string, force bool) (*storepb.NamespaceRecord, bool, error) {
	resp, err := a.cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: mode, Force: force})
	if err != nil {
		return nil, false, err
	}
	return resp.GetRecord(), resp.GetChanged(), nil
}

// applyWatch persists a watch response (rows, then the revision, in one
// synced batch) and then applies its rows, newer versions only.
func (a *pdAuthority) applyWatch(resp *pdpb.WatchNamespacesResponse) error {
	b := a.s.db.NewBatch()
	defer b.Close()
	for _, rec := range resp.GetRecords() {
		if cur, ok := a.s.table.Get(rec.GetName()); ok && cur.GetVersion() >= rec.GetVersion() {
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
	rev := max(resp.GetRevision(), a.appliedRevision())
	if err := b.Set(keys.PDRevision(), encodeUint64(rev), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, rec := range resp.GetRecords() {
		a.s.table.Apply(rec)
	}
	a.mu.Lock()
	a.revision = rev
	a.mu.Unlock()
	return nil
}

// startPD starts following PD. The store serves at once with the table it
// persisted; registration, the watch and heartbeats retry in the
// background until PD answers.
func (s *Store) startPD() error {
	a := s.auth.(*pdAuthority)
	s.health.SetServingStatus("", healthServing)
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.pdHeartbeatLoop(a) }()
	go func() { defer s.wg.Done(); s.pdWatchLoop(a) }()
	go func() { defer s.wg.Done(); s.pdSeedLoop(a) }()
	return nil
}

func (s *Store) pdWatchLoop(a *pdAuthority) {
	for s.ctx.Err() == nil {
		err := a.cli.WatchNamespaces(s.ctx, a.appliedRevision(), a.applyWatch)
		if err != nil && s.ctx.Err() == nil {
			// A persistence error: log, wait, and follow again from what
			// is durable.
			s.log.Error("applying the mode table from PD", zap.Error(err))
			select {
			case <-s.ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// pdHeartbeatLoop registers the store, then reports every second what it
// has applied; PD answers with the store list.
func (s *Store) pdHeartbeatLoop(a *pdAuthority) {
	registered := false
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
		if !registered {
			stores, err := a.cli.RegisterStore(ctx, &storepb.StoreInfo{Id: s.cfg.StoreID, Addr: s.cfg.AdvertiseAddr})
			if err == nil {
				registered = true
				a.setStores(stores)
				s.log.Info("registered with PD", zap.Int("stores", len(stores)))
			} else {
				s.log.Debug("register with PD", zap.Error(err))
			}
		}
		if registered {
			resp, err := a.cli.StoreHeartbeat(ctx, s.heartbeat(a))
			if err == nil {
				a.setStores(resp.GetStores())
			}
		}
		cancel()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.table.Changed():
			// Report a newly applied row or switch step at once: rollouts
			// are timed by it.
		case <-s.stateChanged:
		}
	}
}

func (s *Store) heartbeat(a *pdAuthority) *pdpb.StoreHeartbeatRequest {
	req := &pdpb.StoreHeartbeatRequest{StoreId: s.cfg.StoreID, Addr: s.cfg.AdvertiseAddr, AppliedRevision: a.appliedRevision()}
	for _, rec := range s.table.List() {
		req.Namespaces = append(req.Namespaces, &pdpb.NamespaceApplied{
			Namespace: rec.GetName(), Version: rec.GetVersion(), State: s.namespaceState(rec),
		})
		if gid := rec.GetGroupId(); gid != 0 {
			st, ok := s.raft.Status(gid)
			g := s.group(gid)
			if !ok || g == nil {
				continue
			}
			req.Groups = append(req.Groups, &pdpb.GroupStatus{
				GroupId: gid, Namespace: rec.GetName(), Leader: st.Leader, Term: st.Term,
				Commit: st.Commit, Applied: st.Applied, State: g.State(),
			})
		}
	}
	return req
}

// pdSeedLoop sets --namespace-mode rows that PD does not have yet, and
// makes sure the default namespace exists.
func (s *Store) pdSeedLoop(a *pdAuthority) {
	pending := map[string]string{}
	for ns, mode := range s.cfg.NamespaceModes {
		pending[ns] = mode
	}
	for {
		for ns, mode := range pending {
			ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
			_, err := a.cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: mode, OnlyIfAbsent: true})
			cancel()
			if err == nil {
				delete(pending, ns)
			}
		}
		_, haveDefault := s.table.Get(api.DefaultNamespace)
		if !haveDefault {
			ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
			_, err := a.cli.GetNamespace(ctx, api.DefaultNamespace, true)
			cancel()
			haveDefault = err == nil
		}
		if len(pending) == 0 && haveDefault {
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
