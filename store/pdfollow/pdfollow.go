// Package pdfollow is the authority of a PD-mode store: the placement
// driver decides the namespace table and the store list, and the store
// follows it. It registers, follows the table through a watch (persisting
// every row and the revision, synced, before it applies them, so what it
// reports applied survives a crash), heartbeats what it has applied, and
// keeps serving with its last table when every PD member is down.
//
// It follows only the PD of its own cluster. Every call names the store's
// cluster id (package clusterid); the first registration makes PD's id the
// store's. A PD of another cluster (or a wiped one, which is a new cluster)
// is refused for good: the follower stops registering, heartbeating and
// watching, keeps serving its persisted table, and says why in an Error
// log every 30s. A PD whose revision is behind what the store applied (a PD
// restored from an older backup) is not followed either: the follower
// logs it, applies nothing, and tries again slowly, with the whole table,
// which must agree with what the store applied.
package pdfollow

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
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
	Report func(b *report.Builder)
	// Changed is signalled when the store's state changed (a switch step
	// applied): the next heartbeat goes at once.
	Changed <-chan struct{}
	// ClusterID is the store's cluster id (0: not known yet): every call
	// to PD names it.
	ClusterID func() uint64
	// TransferLeader hands the leadership of a group this store leads to
	// another voter, as PD asks in heartbeat responses (leader balance).
	TransferLeader func(group, to uint64)
	// LearnClusterID persists PD's cluster id as the store's (on its first
	// registration); an error if the store belongs to another cluster.
	LearnClusterID func(id uint64) error
}

// How often a refusal of PD is said again, and how soon a PD that is
// behind is tried again.
var (
	refusalReportInterval = 30 * time.Second
	// maxReportSpacing bounds the wait after a costly report (a sweep of
	// 100,000 namespaces on a busy store takes a good part of a second).
	maxReportSpacing = 500 * time.Millisecond
	behindRetry      = 10 * time.Second
)

// Follower follows PD.
type Follower struct {
	cfg Config
	log *zap.Logger
	cli *pdclient.Client

	mu       sync.RWMutex
	stores   []*storepb.StoreInfo
	revision uint64 // table revision applied and persisted
	// refused is set, for good, when PD belongs to another cluster (whose
	// id is refusedBy); stopPD then ends every call to PD.
	refused   error
	refusedBy uint64
	stopPD    context.CancelFunc

	// synced: a watch response brought the table to PD's since start.
	synced atomic.Bool
	// leaseFrom is when the last heartbeat PD answered was sent (unix
	// nanoseconds); maxDown is PD's --max-store-down-time it said.
	leaseFrom, maxDown atomic.Int64
	// reportCost is how long the last heartbeat took to build (heartbeat
	// loop only).
	reportCost time.Duration
}

// New loads the table, its revision and the store list this store last
// persisted, so that it serves even if PD is down when it starts. A state
// that cannot be read is an error.
func New(cfg Config) (*Follower, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.ClusterID == nil {
		cfg.ClusterID = func() uint64 { return 0 }
	}
	if cfg.LearnClusterID == nil {
		cfg.LearnClusterID = func(uint64) error { return nil }
	}
	cli, err := pdclient.New(strings.Join(cfg.PD, ","), pdclient.WithAttemptTimeout(2*time.Second), pdclient.WithMaxBackoff(time.Second),
		pdclient.WithCredentials(cfg.Credentials), pdclient.WithClusterID(cfg.ClusterID))
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

// StoreAddr returns the address of a store PD lists.
func (f *Follower) StoreAddr(id uint64) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, st := range f.stores {
		if st.GetId() == id {
			return st.GetAddr(), true
		}
	}
	return "", false
}

// CaughtUp gates raw writes. Rows are persisted before they are applied,
// so the table a store restarts with is all it ever applied, but PD may
// have moved on while the store was down: PD replaces the replicas of a
// store that is down and switches namespaces without it. So a store takes
// raw writes only once its watch has brought its table up to PD's since it
// started, and only while its last answered heartbeat was sent less than
// half of PD's --max-store-down-time ago (before PD could call it down).
func (f *Follower) CaughtUp() bool {
	if !f.synced.Load() {
		return false
	}
	maxDown := time.Duration(f.maxDown.Load())
	if maxDown <= 0 {
		return true
	}
	return time.Since(time.Unix(0, f.leaseFrom.Load())) < maxDown/2
}

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

// Ensure returns a namespace's row, creating it in PD if PD does not have
// it: in the mode --namespace-mode gives it, else the default.
func (f *Follower) Ensure(ctx context.Context, ns string) (*storepb.NamespaceRecord, error) {
	if err := f.refusal(); err != nil {
		return nil, err
	}
	if mode, ok := f.cfg.NamespaceModes[ns]; ok {
		// Created in its --namespace-mode, not the default, even before
		// seedLoop sets it: created strong and switched a moment later, it
		// would answer its first caller with the wrong mode mid-switch.
		resp, err := f.cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: mode, OnlyIfAbsent: true})
		if err != nil {
			return nil, err
		}
		return resp.GetRecord(), nil
	}
	st, err := f.cli.GetNamespace(ctx, ns, true)
	if err != nil {
		return nil, err
	}
	return st.GetRecord(), nil
}

// SetMode forwards a mode change to PD.
func (f *Follower) SetMode(ctx context.Context, ns, mode string, force bool) (*storepb.NamespaceRecord, bool, error) {
	if err := f.refusal(); err != nil {
		return nil, false, err
	}
	resp, err := f.cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: mode, Force: force})
	if err != nil {
		return nil, false, err
	}
	return resp.GetRecord(), resp.GetChanged(), nil
}

var _ modetable.Authority = (*Follower)(nil)

// ApplyWatch persists watch responses, in the order PD sent them (rows,
// then the revision, in one synced batch), and then applies their rows,
// newer versions only. Responses that arrived together share one sync:
// namespaces created at 1,000 a second are 1,000 revisions a second.
func (f *Follower) ApplyWatch(resps ...*pdpb.WatchNamespacesResponse) error {
	b := f.cfg.DB.NewBatch()
	defer b.Close()
	newest := map[string]*storepb.NamespaceRecord{}
	rev := f.AppliedRevision()
	for _, resp := range resps {
		for _, rec := range resp.GetRecords() {
			if cur, ok := newest[rec.GetName()]; ok && cur.GetVersion() >= rec.GetVersion() {
				continue
			}
			if cur, ok := f.cfg.Table.Get(rec.GetName()); ok && cur.GetVersion() >= rec.GetVersion() {
				continue
			}
			newest[rec.GetName()] = rec
		}
		rev = max(rev, resp.GetRevision())
	}
	for name, rec := range newest {
		v, err := proto.Marshal(rec)
		if err != nil {
			return err
		}
		if err := b.Set(keys.PDTableRow(name), v, nil); err != nil {
			return err
		}
	}
	if err := b.Set(keys.PDRevision(), binary.BigEndian.AppendUint64(nil, rev), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, resp := range resps {
		for _, rec := range resp.GetRecords() {
			f.cfg.Table.Apply(rec)
		}
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
	// pctx bounds every call to PD: it ends if PD is refused.
	pctx, stopPD := context.WithCancel(ctx)
	f.mu.Lock()
	f.stopPD = stopPD
	f.mu.Unlock()
	wg.Add(3)
	go func() { defer wg.Done(); f.heartbeatLoop(ctx, pctx, fatal) }()
	go func() { defer wg.Done(); f.watchLoop(pctx, fatal) }()
	go func() { defer wg.Done(); f.seedLoop(pctx) }()
}

// refuse stops following PD, for good: it belongs to cluster pdCluster,
// not to this store's.
func (f *Follower) refuse(err error, pdCluster uint64) {
	f.mu.Lock()
	if f.refused == nil {
		f.refused, f.refusedBy = err, pdCluster
	}
	stop := f.stopPD
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Refused is why this store does not follow PD (nil: it does).
func (f *Follower) Refused() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.refused
}

// refusal is the error of a call the store would forward to a PD it
// refuses (nil: it follows PD).
func (f *Follower) refusal() error {
	err := f.Refused()
	if err == nil {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "this store does not follow the PD at %s: %s",
		strings.Join(f.cli.Endpoints(), ","), status.Convert(err).Message())
}

// reportRefusal says every 30s why this store does not follow PD, until
// ctx ends.
func (f *Follower) reportRefusal(ctx context.Context) {
	t := time.NewTicker(refusalReportInterval)
	defer t.Stop()
	for {
		f.mu.RLock()
		err, pdCluster := f.refused, f.refusedBy
		f.mu.RUnlock()
		f.log.Error("PD belongs to another cluster: this store does not follow it (it keeps serving with the table it has); "+
			"start it with the --pd endpoints of its own cluster, or use another --data-dir",
			zap.String("store_cluster_id", clusterid.String(f.cfg.ClusterID())), zap.String("pd_cluster_id", clusterid.String(pdCluster)),
			zap.Strings("pd", f.cli.Endpoints()), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkCluster makes PD's cluster id (0: a PD that does not say) this
// store's if it has none yet; a PD of another cluster is refused.
func (f *Follower) checkCluster(pdCluster uint64, fatal func(error)) bool {
	if pdCluster == 0 {
		return true
	}
	own := f.cfg.ClusterID()
	err := f.cfg.LearnClusterID(pdCluster)
	switch {
	case err == nil:
		return true
	case own != 0 && own != pdCluster:
		f.refuse(clusterid.Mismatch(fmt.Sprintf("this PD belongs to cluster %s; this store to cluster %s",
			clusterid.String(pdCluster), clusterid.String(own)), pdCluster, own), pdCluster)
	case clusterid.IsMismatch(err):
		f.refuse(err, pdCluster)
	default:
		fatal(fmt.Errorf("persist the cluster id from PD: %w", err))
	}
	return false
}

// refusedByPD refuses PD if err is PD's refusal of this store's cluster.
func (f *Follower) refusedByPD(err error) bool {
	if !clusterid.IsMismatch(err) {
		return false
	}
	pdCluster, _ := clusterid.MismatchIDs(err)
	f.refuse(err, pdCluster)
	return true
}

func (f *Follower) watchLoop(ctx context.Context, fatal func(error)) {
	var persistErr, refusal error
	// whole: the last watch found PD behind this store; the next one asks
	// for the whole table, which must agree with what this store applied.
	whole := false
	var lastReport time.Time
	lastBehind := false
	// apply checks and applies responses that arrived together; a reload
	// is applied alone (it is checked against the table before it).
	apply := func(batch []*pdpb.WatchNamespacesResponse) error {
		var ok []*pdpb.WatchNamespacesResponse
		flush := func() error {
			if len(ok) == 0 {
				return nil
			}
			if err := f.ApplyWatch(ok...); err != nil {
				persistErr = err
				return err
			}
			f.synced.Store(true)
			ok = ok[:0]
			return nil
		}
		for _, resp := range batch {
			if resp.GetReload() {
				if err := flush(); err != nil {
					return err
				}
			}
			skip, err := f.checkWatch(resp)
			if err != nil {
				if ferr := flush(); ferr != nil {
					return ferr
				}
				refusal = err
				return err
			}
			if skip {
				continue
			}
			ok = append(ok, resp)
			if resp.GetReload() {
				if err := flush(); err != nil {
					return err
				}
				whole = false
			}
		}
		return flush()
	}
	for ctx.Err() == nil {
		refusal = nil
		after := f.AppliedRevision()
		if whole {
			after = 0
		}
		err := f.watchBatched(ctx, after, apply)
		if persistErr != nil {
			fatal(fmt.Errorf("persist the mode table from PD: %w", persistErr))
			return
		}
		if refusal == nil && clusterid.IsPDBehind(err) {
			refusal = err
		}
		wait := time.Second
		switch {
		case ctx.Err() != nil:
			return
		case f.refusedByPD(err):
			return
		case refusal != nil:
			whole, wait = true, behindRetry
			// Said at most every 30s, and when the reason changes.
			if behind := clusterid.IsPDBehind(refusal); behind != lastBehind || time.Since(lastReport) >= refusalReportInterval {
				lastReport, lastBehind = time.Now(), behind
				f.log.Error("PD's table does not continue the one this store applied: PD is not followed (this store keeps serving with its table); "+
					"restore PD's latest data, or point the store at the right PD",
					zap.Uint64("applied_revision", f.AppliedRevision()), zap.Strings("pd", f.cli.Endpoints()), zap.Error(refusal))
			}
		case err != nil:
			f.log.Debug("following PD's table", zap.Error(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// watchBatched follows PD's table from after, as WatchNamespaces does, and
// hands apply the responses that arrived while the last ones were being
// applied, together (at most maxWatchBatch). An error of apply ends the
// watch and is returned.
func (f *Follower) watchBatched(ctx context.Context, after uint64, apply func([]*pdpb.WatchNamespacesResponse) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv := make(chan *pdpb.WatchNamespacesResponse, maxWatchBatch)
	done := make(chan error, 1)
	go func() {
		done <- f.cli.WatchNamespaces(wctx, after, func(resp *pdpb.WatchNamespacesResponse) error {
			select {
			case recv <- resp:
				return nil
			case <-wctx.Done():
				return wctx.Err()
			}
		})
	}()
	var watchErr error
	watching := true
	for {
		var batch []*pdpb.WatchNamespacesResponse
		if watching {
			select {
			case resp := <-recv:
				batch = append(batch, resp)
			case watchErr = <-done:
				watching = false
			}
		}
	drain:
		for len(batch) < maxWatchBatch {
			select {
			case resp := <-recv:
				batch = append(batch, resp)
			default:
				break drain
			}
		}
		if len(batch) == 0 {
			return watchErr // the watch ended and everything it sent is applied
		}
		if err := apply(batch); err != nil {
			cancel()
			if watching {
				<-done
			}
			return err
		}
	}
}

// maxWatchBatch bounds the watch responses applied with one sync.
const maxWatchBatch = 256

// checkWatch checks that a watch response does not take the table back:
// its revision is not behind what this store applied (a progress report
// behind it, from a member that lags, is skipped), and a whole table
// holds, of every row it has not changed since, the version this store
// applied.
func (f *Follower) checkWatch(resp *pdpb.WatchNamespacesResponse) (skip bool, err error) {
	applied, rev := f.AppliedRevision(), resp.GetRevision()
	if rev < applied {
		if !resp.GetReload() && len(resp.GetRecords()) == 0 {
			return true, nil
		}
		return false, clusterid.PDBehind(applied, rev)
	}
	if !resp.GetReload() {
		return false, nil
	}
	for _, rec := range resp.GetRecords() {
		if rec.GetVersion() > applied {
			continue
		}
		if cur, ok := f.cfg.Table.Get(rec.GetName()); !ok || cur.GetVersion() != rec.GetVersion() {
			return false, status.Errorf(codes.FailedPrecondition,
				"PD's table at revision %d has namespace %q at version %d, which this store (at revision %d) has at version %d (0: not at all): "+
					"PD's history is not the one this store followed (restored from another backup?); it will not be followed",
				rev, rec.GetName(), rec.GetVersion(), applied, cur.GetVersion())
		}
	}
	return false, nil
}

// heartbeatLoop registers the store, then reports every second what it
// has applied; PD answers with the store list. Once PD is refused it only
// says so, every 30s, until ctx ends.
func (f *Follower) heartbeatLoop(ctx, pctx context.Context, fatal func(error)) {
	registered := false
	rep := report.NewSender()
	var lastRefusalLog time.Time
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for f.Refused() == nil {
		cctx, cancel := context.WithTimeout(pctx, 3*time.Second)
		var stores []*storepb.StoreInfo
		ok := true
		if !registered {
			resp, err := f.cli.Register(cctx, &storepb.StoreInfo{Id: f.cfg.StoreID, Addr: f.cfg.AdvertiseAddr})
			switch {
			case err == nil:
				if ok = f.checkCluster(resp.GetClusterId(), fatal); ok {
					registered, stores = true, resp.GetStores()
					f.log.Info("registered with PD", zap.Int("stores", len(stores)))
				}
			case f.refusedByPD(err):
				ok = false
			default:
				f.log.Debug("register with PD", zap.Error(err))
			}
		}
		if registered && ok {
			sent := time.Now()
			resp, err := f.cli.StoreHeartbeat(cctx, f.heartbeat(rep))
			rep.Acknowledge(err == nil && !resp.GetFullReportWanted())
			switch {
			case err == nil:
				if ok = f.checkCluster(resp.GetClusterId(), fatal); ok {
					stores = resp.GetStores()
					f.leaseFrom.Store(sent.UnixNano())
					f.maxDown.Store(int64(time.Duration(resp.GetMaxStoreDownTimeMs()) * time.Millisecond))
					for _, t := range resp.GetTransferLeaders() {
						if f.cfg.TransferLeader != nil {
							f.cfg.TransferLeader(t.GetGroupId(), t.GetToStore())
						}
					}
				}
			case f.refusedByPD(err):
				ok = false
			case status.Code(err) == codes.FailedPrecondition && time.Since(lastRefusalLog) > refusalReportInterval:
				// A removed store, for one: PD says why.
				lastRefusalLog = time.Now()
				f.log.Error("PD refuses this store's heartbeat", zap.Error(err))
			}
		}
		cancel()
		if !ok {
			break
		}
		if err := f.setStores(stores); err != nil {
			fatal(fmt.Errorf("persist the store list from PD: %w", err))
			return
		}
		select {
		case <-pctx.Done():
		case <-t.C:
		case <-f.cfg.Table.Changed():
			// Report a newly applied row or switch step at once: rollouts
			// are timed by it. A report looks at what changed, but now and
			// then at every namespace (a sweep, or a whole report to a new
			// PD leader): reports are spaced so that they take at most a
			// tenth of a core, but never by more than maxReportSpacing:
			// PD counts a store that is silent for a few seconds out of
			// the new groups it forms.
			sleepCtx(pctx, min(10*f.reportCost, maxReportSpacing))
		case <-f.cfg.Changed:
			sleepCtx(pctx, min(10*f.reportCost, maxReportSpacing))
		}
		if ctx.Err() != nil {
			return
		}
	}
	if f.Refused() != nil {
		f.reportRefusal(ctx)
	}
}

// heartbeat builds the next heartbeat: the store's report as rep says PD
// needs it (whole, or what changed).
func (f *Follower) heartbeat(rep *report.Sender) *pdpb.StoreHeartbeatRequest {
	start := time.Now()
	req := &pdpb.StoreHeartbeatRequest{StoreId: f.cfg.StoreID, Addr: f.cfg.AdvertiseAddr, AppliedRevision: f.AppliedRevision()}
	rep.Build(req, func(b *report.Builder) {
		if f.cfg.Report != nil {
			f.cfg.Report(b)
		}
	})
	f.reportCost = time.Since(start)
	return req
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
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
