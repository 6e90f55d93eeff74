// The driver: it runs where the table is decided (the meta group's leader
// in static mode, the placement driver's leader) and brings every
// namespace's group to its row, one idempotent step at a time (the phases
// are in doc.go).

package modeswitch

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/namespace"
)

// Cluster is what the driver needs to know and reach.
type Cluster interface {
	// Namespaces returns the table as decided.
	Namespaces() []*storepb.NamespaceRecord
	// Stores returns every store of the cluster.
	Stores() []*storepb.StoreInfo
	// Client returns a store's internal client.
	Client(store uint64) (storepb.StoreInternalClient, error)
	// KnownState returns a group's state as last seen without asking the
	// group (a local replica, or heartbeats), if there is one. States only
	// move forward, so a known state that matches the row needs no work.
	KnownState(group uint64) (*storepb.GroupState, bool)
}

// Holders is a Cluster that places namespaces on some stores only (PD):
// an eventual -> strong switch fences and merges the stores that may hold
// a namespace's records, not every store.
type Holders interface {
	Holders(rec *storepb.NamespaceRecord) []*storepb.StoreInfo
}

// holders lists the stores whose records a switch of rec to strong must
// merge.
func (d *Driver) holders(rec *storepb.NamespaceRecord) []*storepb.StoreInfo {
	if h, ok := d.c.(Holders); ok {
		return h.Holders(rec)
	}
	return d.c.Stores()
}

// Driver reconciles groups with the table.
type Driver struct {
	c        Cluster
	log      *zap.Logger
	interval time.Duration
	kick     chan struct{}

	mu      sync.Mutex
	waiting map[string]string // namespace -> why its switch waits, as last logged
}

// New returns a driver; interval is how often it checks the table when
// nothing kicks it.
func New(c Cluster, log *zap.Logger, interval time.Duration) *Driver {
	if interval == 0 {
		interval = 250 * time.Millisecond
	}
	return &Driver{c: c, log: log, interval: interval, kick: make(chan struct{}, 1), waiting: make(map[string]string)}
}

// Kick makes the driver look at the table now.
func (d *Driver) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Changes is a Cluster that can tell which rows changed: a round then
// looks at those and at the namespaces not settled at the last round, not
// at every row (a round over 100,000 rows each quarter second, and one per
// namespace created, was most of an idle store's work).
type Changes interface {
	// Changes returns the rows changed since the last call; ok is false
	// when it cannot tell (too many changed), and the round reads the
	// whole table.
	Changes() (recs []*storepb.NamespaceRecord, ok bool)
}

// Run reconciles until ctx ends.
func (d *Driver) Run(ctx context.Context) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	// settledAt is the row version each namespace was last found settled
	// at: with 100,000 namespaces, a round over the whole table looks only
	// at those whose row changed since (a settled group stays so until its
	// row changes).
	settledAt := map[string]uint64{}
	feed, _ := d.c.(Changes)
	// pending: the namespaces not settled at the last round.
	var pending map[string]*storepb.NamespaceRecord
	full := true // the first round reads the whole table
	for {
		var recs, changed []*storepb.NamespaceRecord
		var ok bool
		if feed != nil {
			changed, ok = feed.Changes() // taken in a full round too: the whole table covers them
		}
		if ok && !full {
			recs = newest(pending, changed)
		} else {
			recs = d.c.Namespaces()
			if len(settledAt) > len(recs) {
				names := make(map[string]bool, len(recs))
				for _, rec := range recs {
					names[rec.GetName()] = true
				}
				maps.DeleteFunc(settledAt, func(name string, _ uint64) bool { return !names[name] })
			}
		}
		full = false
		next := map[string]*storepb.NamespaceRecord{}
		for _, rec := range recs {
			if ctx.Err() != nil {
				return
			}
			if v, ok := settledAt[rec.GetName()]; ok && v == rec.GetVersion() {
				continue
			}
			if d.settled(rec) {
				settledAt[rec.GetName()] = rec.GetVersion()
				d.setWaiting(rec.GetName(), nil)
				continue
			}
			err := d.Reconcile(ctx, rec)
			d.setWaiting(rec.GetName(), err)
			next[rec.GetName()] = rec
		}
		pending = next
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// newest merges rows by namespace, keeping each one's newest version.
func newest(pending map[string]*storepb.NamespaceRecord, changed []*storepb.NamespaceRecord) []*storepb.NamespaceRecord {
	byName := maps.Clone(pending)
	if byName == nil {
		byName = map[string]*storepb.NamespaceRecord{}
	}
	for _, rec := range changed {
		if cur, ok := byName[rec.GetName()]; !ok || cur.GetVersion() < rec.GetVersion() {
			byName[rec.GetName()] = rec
		}
	}
	return slices.Collect(maps.Values(byName))
}

func (d *Driver) setWaiting(ns string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev := d.waiting[ns]
	if err == nil {
		delete(d.waiting, ns)
		return
	}
	d.waiting[ns] = err.Error()
	if prev != err.Error() {
		d.log.Warn("mode switch waits", zap.String("namespace", ns), zap.Error(err))
	}
}

// settled tells, without asking any group, that a namespace's group
// matches its row (or that it has none to bring to it).
func (d *Driver) settled(rec *storepb.NamespaceRecord) bool {
	if rec.GetGroupId() == 0 {
		return true
	}
	if namespace.ModeOf(rec) == namespace.Eventual && len(rec.GetGroupPeers()) == 0 {
		return true // its group never formed: no store holds anything to fence
	}
	st, ok := d.c.KnownState(rec.GetGroupId())
	return ok && Done(rec, st)
}

// Reconcile takes one namespace as far towards its row's mode as it can
// now. It returns nil when the group matches the row.
func (d *Driver) Reconcile(ctx context.Context, rec *storepb.NamespaceRecord) error {
	if d.settled(rec) {
		return nil
	}
	st, err := d.groupState(ctx, rec.GetGroupId())
	if err != nil {
		return fmt.Errorf("read group %d: %w", rec.GetGroupId(), err)
	}
	if Done(rec, st) {
		return nil
	}
	if namespace.ModeOf(rec) == namespace.Eventual {
		d.log.Info("fencing strong namespace", zap.String("namespace", rec.GetName()), zap.Uint64("epoch", rec.GetEpoch()))
		return d.propose(ctx, rec.GetGroupId(), &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{
			Fence: &storepb.Fence{Epoch: rec.GetEpoch()},
		}})
	}
	if namespace.GroupActive(st) {
		// Switched away and back before the fence: nothing to merge.
		return d.propose(ctx, rec.GetGroupId(), &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Activate{
			Activate: &storepb.Activate{Epoch: rec.GetEpoch()},
		}})
	}
	return d.toStrong(ctx, rec)
}

// toStrong carries out eventual -> strong: wait for every store's fence,
// merge their records, load, activate.
func (d *Driver) toStrong(ctx context.Context, rec *storepb.NamespaceRecord) error {
	ns := rec.GetName()
	var fenced []uint64
	for _, st := range d.holders(rec) {
		ok, err := d.storeFenced(ctx, st.GetId(), rec)
		switch {
		case err != nil && rec.GetForce():
			d.log.Warn("forced switch goes ahead without a store; writes only it holds are lost",
				zap.String("namespace", ns), zap.Uint64("store", st.GetId()), zap.Error(err))
			continue
		case err != nil:
			return fmt.Errorf("switch of %q to strong waits for store %d (%s): it may hold writes no other store has; "+
				"to go ahead without it, update the mode again with force (its unreplicated writes are lost): %w",
				ns, st.GetId(), st.GetAddr(), err)
		case !ok:
			return fmt.Errorf("switch of %q to strong waits for store %d to stop raw writes", ns, st.GetId())
		}
		fenced = append(fenced, st.GetId())
	}
	merged := make(map[string]*storepb.LWWRecord)
	for _, id := range fenced {
		if err := d.dump(ctx, id, rec, merged); err != nil {
			if rec.GetForce() {
				d.log.Warn("forced switch skips a store it cannot dump", zap.Uint64("store", id), zap.Error(err))
				continue
			}
			return fmt.Errorf("switch of %q to strong: read store %d: %w", ns, id, err)
		}
	}
	recs := make([]*storepb.LWWRecord, 0, len(merged))
	for _, r := range merged {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return string(recs[i].GetKey()) < string(recs[j].GetKey()) })
	loadID := randomID()
	d.log.Info("loading merged state", zap.String("namespace", ns), zap.Uint64("epoch", rec.GetEpoch()),
		zap.Int("records", len(recs)), zap.Int("stores", len(fenced)))
	g := rec.GetGroupId()
	if err := d.propose(ctx, g, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBegin{
		LoadBegin: &storepb.LoadBegin{Epoch: rec.GetEpoch(), LoadId: loadID},
	}}); err != nil {
		return err
	}
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && n < 1024 && size < 1<<20 {
			size += len(recs[n].GetKey()) + len(recs[n].GetValue()) + 32
			n++
		}
		if err := d.propose(ctx, g, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBatch{
			LoadBatch: &storepb.LoadBatch{Epoch: rec.GetEpoch(), LoadId: loadID, Records: recs[:n]},
		}}); err != nil {
			return err
		}
		recs = recs[n:]
	}
	if err := d.propose(ctx, g, &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Activate{
		Activate: &storepb.Activate{Epoch: rec.GetEpoch(), LoadId: loadID, RecordsLoaded: uint64(len(merged))},
	}}); err != nil {
		return err
	}
	st, err := d.groupState(ctx, g)
	if err != nil {
		return err
	}
	if st.GetActiveEpoch() < rec.GetEpoch() {
		return fmt.Errorf("switch of %q to strong: activation did not take (another load started?)", ns)
	}
	d.log.Info("namespace is strong", zap.String("namespace", ns), zap.Uint64("epoch", rec.GetEpoch()))
	return nil
}

func (d *Driver) storeFenced(ctx context.Context, id uint64, rec *storepb.NamespaceRecord) (bool, error) {
	c, err := d.c.Client(id)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.SwitchStatus(cctx, &storepb.SwitchStatusRequest{Namespace: rec.GetName()})
	if err != nil {
		return false, err
	}
	return Fenced(resp.GetRecord(), rec), nil
}

func (d *Driver) dump(ctx context.Context, id uint64, rec *storepb.NamespaceRecord, merged map[string]*storepb.LWWRecord) error {
	c, err := d.c.Client(id)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stream, err := c.Dump(cctx, &storepb.DumpRequest{Namespace: rec.GetName(), Version: rec.GetVersion()})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range resp.GetRecords() {
			k := string(r.GetKey())
			if cur := merged[k]; cur == nil || newer(r, cur) {
				merged[k] = r
			}
		}
	}
}

// anyStore calls fn with each store's client in turn, each call bounded
// by timeout, until one succeeds; it returns the last error otherwise.
func (d *Driver) anyStore(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, c storepb.StoreInternalClient) error) error {
	var last error = errors.New("no stores")
	for _, st := range d.c.Stores() {
		c, err := d.c.Client(st.GetId())
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err = fn(cctx, c)
		cancel()
		if err == nil {
			return nil
		}
		last = err
	}
	return last
}

// groupState reads a group's state linearizably through any store.
func (d *Driver) groupState(ctx context.Context, group uint64) (*storepb.GroupState, error) {
	var st *storepb.GroupState
	err := d.anyStore(ctx, 3*time.Second, func(ctx context.Context, c storepb.StoreInternalClient) error {
		resp, err := c.GroupStatus(ctx, &storepb.GroupStatusRequest{GroupId: group})
		st = resp.GetState()
		return err
	})
	return st, err
}

// propose sends a switch step to the group through any store.
func (d *Driver) propose(ctx context.Context, group uint64, cmd *storepb.GroupCommand) error {
	err := d.anyStore(ctx, 5*time.Second, func(ctx context.Context, c storepb.StoreInternalClient) error {
		_, err := c.GroupPropose(ctx, &storepb.GroupProposeRequest{GroupId: group, Command: proto.Clone(cmd).(*storepb.GroupCommand)})
		return err
	})
	if err != nil {
		return fmt.Errorf("propose to group %d: %w", group, err)
	}
	return nil
}

func randomID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// newer is the merge rule of eventual namespaces (hlc.CompareWrites), the
// one every store applies: the merge keeps what anti-entropy would.
func newer(a, b *storepb.LWWRecord) bool {
	return hlc.CompareWrites(hlc.FromProto(a.GetTs()), a.GetTombstone(), a.GetValue(),
		hlc.FromProto(b.GetTs()), b.GetTombstone(), b.GetValue()) > 0
}
