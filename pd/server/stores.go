package server

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// storeTracker is the leader's memory of the stores: their registered
// addresses (a copy of /rdb/stores/, reloaded from etcd when a member becomes
// leader) and what their last heartbeat said. Heartbeats are never written to
// etcd: a new leader learns them again within one heartbeat interval.
type storeTracker struct {
	// downAfter: a store silent this long is disconnected (no longer up).
	downAfter time.Duration
	// maxDownTime: a store silent this long is down, and its replicas are
	// re-created elsewhere.
	maxDownTime time.Duration
	// arrived gets a token when a store registers for the first time, so
	// that the group formation loop looks again at once.
	arrived chan struct{}

	mu     sync.Mutex
	stores map[uint64]*trackedStore
	// lastArrival is when a store id this leader did not know registered,
	// or when this member became leader (it then has yet to hear from the
	// stores that are starting): group formation waits for it to settle.
	lastArrival time.Time
}

type trackedStore struct {
	info *storepb.StoreInfo
	// lastHeartbeat is zero until the store heartbeats this leader.
	lastHeartbeat time.Time
	// upUntil keeps a store that a new leader loaded from etcd "up" until it
	// had time to heartbeat: a new leader must not believe every store down
	// (and a change applied by all of none of them).
	upUntil time.Time
	// seen is the last sign of life: a heartbeat, a registration, or this
	// member becoming leader (a new leader counts a store's down time from
	// its own start).
	seen time.Time
	// report is what the store last reported, indexed.
	report report.Receiver
}

func newStoreTracker(downAfter, maxDownTime time.Duration) *storeTracker {
	return &storeTracker{downAfter: downAfter, maxDownTime: maxDownTime, stores: map[uint64]*trackedStore{}, arrived: make(chan struct{}, 1)}
}

// Store states, as pdctl shows them.
const (
	StoreUp           = "up"
	StoreDisconnected = "disconnected"
	StoreDown         = "down"
	StoreRemoving     = "removing"
	StoreRemoved      = "removed"
)

// state is a store's state at now. Removing and removed come from its row;
// up, disconnected and down from its heartbeats.
func (t *storeTracker) state(st *trackedStore, now time.Time) string {
	switch st.info.GetState() {
	case StoreRemoved:
		return StoreRemoved
	case StoreRemoving:
		return StoreRemoving
	}
	switch {
	case t.up(st, now):
		return StoreUp
	case now.Sub(st.seen) >= t.maxDownTime:
		return StoreDown
	default:
		return StoreDisconnected
	}
}

// up: the store heartbeat within downAfter (or a new leader still gives it
// time to).
func (t *storeTracker) up(st *trackedStore, now time.Time) bool {
	return now.Before(st.upUntil) || (!st.lastHeartbeat.IsZero() && now.Sub(st.lastHeartbeat) < t.downAfter)
}

// reset replaces everything with the stores registered in etcd; each counts
// as up, with nothing applied, until it has had downAfter to heartbeat. It is
// called when this member becomes leader, which counts as an arrival.
func (t *storeTracker) reset(infos []*storepb.StoreInfo, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastArrival = now
	t.stores = make(map[uint64]*trackedStore, len(infos))
	for _, info := range infos {
		t.stores[info.GetId()] = &trackedStore{info: info, upUntil: now.Add(t.downAfter), seen: now}
	}
}

// info returns a registered store's address record.
func (t *storeTracker) info(id uint64) (*storepb.StoreInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.stores[id]
	if !ok {
		return nil, false
	}
	return st.info, true
}

// register records a (re-)registration; it counts as a sign of life.
func (t *storeTracker) register(info *storepb.StoreInfo, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.stores[info.GetId()]
	if !ok {
		st = &trackedStore{}
		t.stores[info.GetId()] = st
		t.lastArrival = now
		select {
		case t.arrived <- struct{}{}:
		default:
		}
	}
	st.info = info
	st.lastHeartbeat = now
	st.seen = now
}

// arrivals is signalled when a new store registers.
func (t *storeTracker) arrivals() <-chan struct{} { return t.arrived }

// formationPeers is the group formation rule: it returns the voters a strong
// namespace's group formed now gets, and false when no group may be formed
// now. A group is formed only from stores that have registered with or
// heartbeat this leader within downAfter: a store a new leader merely loaded
// from etcd may be down, and a group whose voters are down never elects a
// leader. And only once no store has arrived for settle, so that stores
// starting together all become voters rather than the first one alone
// (which would leave the group's quorum with whichever store came first).
func (t *storeTracker) formationPeers(now time.Time, settle time.Duration) ([]uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastArrival) < settle {
		return nil, false
	}
	var peers []uint64
	for id, st := range t.stores {
		if st.info.GetState() == "" && !st.lastHeartbeat.IsZero() && now.Sub(st.lastHeartbeat) < t.downAfter {
			peers = append(peers, id)
		}
	}
	if len(peers) == 0 {
		return nil, false
	}
	slices.Sort(peers)
	return peers, true
}

// heartbeat records what a registered store reports. It returns false when
// the heartbeat's changes could not be applied, and the store must send its
// full report (its liveness counts all the same).
func (t *storeTracker) heartbeat(req *pdpb.StoreHeartbeatRequest, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.stores[req.GetStoreId()]
	if !ok {
		return true
	}
	st.lastHeartbeat = now
	st.seen = now
	return st.report.Apply(req)
}

// infos returns every registered store, by id.
func (t *storeTracker) infos() []*storepb.StoreInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*storepb.StoreInfo, 0, len(t.stores))
	for _, st := range t.stores {
		out = append(out, st.info)
	}
	slices.SortFunc(out, func(a, b *storepb.StoreInfo) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

// statuses returns every registered store's status at now, by id, with the
// groups and namespaces each reports (by id and by name).
func (t *storeTracker) statuses(now time.Time) []*pdpb.StoreStatus {
	return t.list(now, true)
}

// states is statuses without the reports: what placement needs of every
// store, at a cost that does not grow with the namespaces.
func (t *storeTracker) states(now time.Time) []*pdpb.StoreStatus {
	return t.list(now, false)
}

func (t *storeTracker) list(now time.Time, reports bool) []*pdpb.StoreStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*pdpb.StoreStatus, 0, len(t.stores))
	for _, st := range t.stores {
		s := &pdpb.StoreStatus{
			Id:    st.info.GetId(),
			Addr:  st.info.GetAddr(),
			State: t.state(st, now),
		}
		// Up is liveness: a store being removed still applies the table.
		s.Up = s.State != StoreRemoved && t.up(st, now)
		if !st.lastHeartbeat.IsZero() {
			s.LastHeartbeatUnixNano = st.lastHeartbeat.UnixNano()
		}
		s.AppliedRevision = st.report.AppliedRevision
		if reports {
			s.Groups = slices.SortedFunc(maps.Values(st.report.Groups), func(a, b *pdpb.GroupStatus) int {
				return cmp.Compare(a.GetGroupId(), b.GetGroupId())
			})
			s.Namespaces = slices.SortedFunc(maps.Values(st.report.Namespaces), func(a, b *pdpb.NamespaceApplied) int {
				return cmp.Compare(a.GetNamespace(), b.GetNamespace())
			})
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *pdpb.StoreStatus) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

// rollout says how far rec has rolled out over the up stores: a store has
// applied rec when the table revision it has applied reaches rec.version,
// and rec is switching while a store has not, or reports it switching.
func (t *storeTracker) rollout(rec *storepb.NamespaceRecord, now time.Time) *pdpb.NamespaceStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := &pdpb.NamespaceStatus{Record: rec, State: StateActive}
	for _, st := range t.stores {
		if st.info.GetState() == StoreRemoved || !t.up(st, now) {
			continue
		}
		out.UpStores++
		applied := st.report.AppliedRevision >= rec.GetVersion()
		if applied {
			out.AppliedStores++
		}
		if n := st.report.Namespaces[rec.GetName()]; !applied || (n != nil && n.GetState() == StateSwitching) {
			out.State = StateSwitching
		}
	}
	return out
}

// groupViews collects the leaders' reports of every group.
func (t *storeTracker) groupViews(now time.Time) map[uint64]*groupView {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[uint64]*groupView{}
	for _, st := range t.sortedLocked() {
		up := st.info.GetState() != StoreRemoved && t.up(st, now)
		for _, g := range st.report.Groups {
			v := out[g.GetGroupId()]
			if v == nil {
				v = &groupView{}
				out[g.GetGroupId()] = v
			}
			v.add(st.info.GetId(), up, g)
		}
	}
	return out
}

// groupView collects the leaders' reports of one group (nil if no store
// reports it).
func (t *storeTracker) groupView(id uint64, now time.Time) *groupView {
	t.mu.Lock()
	defer t.mu.Unlock()
	var v *groupView
	for _, st := range t.sortedLocked() {
		g := st.report.Groups[id]
		if g == nil {
			continue
		}
		if v == nil {
			v = &groupView{}
		}
		v.add(st.info.GetId(), st.info.GetState() != StoreRemoved && t.up(st, now), g)
	}
	return v
}

// sortedLocked is the tracked stores by id.
func (t *storeTracker) sortedLocked() []*trackedStore {
	out := slices.Collect(maps.Values(t.stores))
	slices.SortFunc(out, func(a, b *trackedStore) int { return cmp.Compare(a.info.GetId(), b.info.GetId()) })
	return out
}

// filled lists the replicas of rec still filling that report they have
// filled it.
func (t *storeTracker) filled(rec *storepb.NamespaceRecord) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []uint64
	for _, id := range rec.GetFilling() {
		st := t.stores[id]
		if st == nil {
			continue
		}
		if n := st.report.Namespaces[rec.GetName()]; n.GetFilled() && n.GetVersion() >= rec.GetVersion() {
			out = append(out, id)
		}
	}
	return out
}

// holding tells whether a store reports a replica, or records it has yet to
// hand over.
func (t *storeTracker) holding(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stores[id]
	if st == nil {
		return false
	}
	if len(st.report.Groups) > 0 {
		return true
	}
	for _, n := range st.report.Namespaces {
		if n.GetReleasing() {
			return true
		}
	}
	return false
}

// StoreReport returns what PD holds of a store's report (its entries are
// shared: not to be modified), and whether it holds one. On a member that
// is not the leader it may be stale or missing.
func (s *Server) StoreReport(id uint64) (report.Index, bool) {
	t := s.stores
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stores[id]
	if st == nil || st.report.Namespaces == nil {
		return report.Index{}, false
	}
	return report.Index{Namespaces: maps.Clone(st.report.Namespaces), Groups: maps.Clone(st.report.Groups)}, true
}

// groupReports returns what each store last reported of a group, by store.
func (t *storeTracker) groupReports(id uint64) map[uint64]*pdpb.GroupStatus {
	return reportsOf(t, func(r *report.Receiver) map[uint64]*pdpb.GroupStatus { return r.Groups }, id)
}

// namespaceReports returns what each store last reported of a namespace,
// by store.
func (t *storeTracker) namespaceReports(name string) map[uint64]*pdpb.NamespaceApplied {
	return reportsOf(t, func(r *report.Receiver) map[string]*pdpb.NamespaceApplied { return r.Namespaces }, name)
}

// reportsOf returns each store's entry under key of the report map pick
// chooses, by store.
func reportsOf[K comparable, V comparable](t *storeTracker, pick func(*report.Receiver) map[K]V, key K) map[uint64]V {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[uint64]V{}
	var none V
	for sid, st := range t.stores {
		if e := pick(&st.report)[key]; e != none {
			out[sid] = e
		}
	}
	return out
}
