// Package report carries a store's heartbeat report to PD as changes: the
// groups and namespaces whose status changed since the last report PD
// acknowledged, and those no longer reported. With 100,000 namespaces of
// which a handful are active, PD reads a handful of entries per heartbeat,
// not 100,000. The store holds a Sender, PD a Receiver per store.
package report

import (
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// Index is one whole report by key, as PD holds it. Its entries are never
// modified, only replaced.
type Index struct {
	Namespaces map[string]*pdpb.NamespaceApplied
	Groups     map[uint64]*pdpb.GroupStatus
	// seq is the report_seq of the heartbeat that carried it.
	seq uint64
}

// NamespaceEntry is what a store reports of a namespace, as a plain value:
// comparing it with what PD has costs no allocation.
type NamespaceEntry struct {
	Version           uint64
	State             string
	Filled, Releasing bool
}

// GroupEntry is what a store reports of a group. Its slices and state are
// the caller's published values, never modified after (they are kept, not
// copied).
type GroupEntry struct {
	Namespace                     string
	Leader, Term, Commit, Applied uint64
	State                         *storepb.GroupState
	Voters, Learners              []uint64
}

// SweepEvery is how often (in heartbeats, and no sooner than
// SweepInterval) a store visits every entry of its report even though PD
// has the rest: in between, it visits only the entries it noted as changed
// (Builder.All). A change a store failed to note reaches PD within this
// many heartbeats or that interval, whichever is longer. Tests that check
// that every change is noted set it out of reach before they start a
// store.
//
// Both bound it: a store sends a heartbeat as soon as a row changes, many a
// second while namespaces are created, and a sweep of 100,000 namespaces
// every 60 of those would cost more than the creations.
var (
	SweepEvery    = 60
	SweepInterval = time.Minute
)

// Sender is the store's side: what PD last acknowledged of its report.
// A heartbeat's report costs a map lookup and a comparison per entry
// visited, and an allocation per entry that changed.
type Sender struct {
	session, seq uint64
	// full: the next report is whole (nothing acknowledged in this
	// session yet, or a heartbeat's fate is unknown).
	full bool
	// sinceSweep counts the Builds since one visited every entry, at
	// lastSweep.
	sinceSweep int
	lastSweep  time.Time
	gen        uint64 // of the report being built
	ns         map[string]*sent[NamespaceEntry]
	gs         map[uint64]*sent[GroupEntry]
	// What the pending heartbeat sent: made acknowledged by Acknowledge.
	sentNS []*sent[NamespaceEntry]
	sentGS []*sent[GroupEntry]
	goneNS []string
	goneGS []uint64
}

// sent is one entry's state on the store's side.
type sent[E any] struct {
	acked, sent E
	hasAcked    bool
	seen        uint64 // the Build that last reported it
}

// NewSender starts a session.
func NewSender() *Sender {
	// A session id is never 0: 0 marks full reports of stores that do not
	// send changes.
	return &Sender{session: rand.Uint64() | 1, full: true, ns: map[string]*sent[NamespaceEntry]{}, gs: map[uint64]*sent[GroupEntry]{}}
}

// Builder takes one heartbeat's entries.
type Builder struct {
	s   *Sender
	req *pdpb.StoreHeartbeatRequest
	all bool
}

// Build fills req with the report fill gives, entry by entry: all of it if
// the report must be whole, else what PD has not acknowledged. Every Build
// is followed by Acknowledge with the heartbeat's outcome.
//
// fill gives every entry if the Builder says All; otherwise it gives at
// least the entries that may have changed since the previous Build (of
// any outcome), and names those of them that are no more with NoNamespace
// and NoGroup.
func (s *Sender) Build(req *pdpb.StoreHeartbeatRequest, fill func(*Builder)) {
	s.seq++
	s.gen++
	req.ReportSession, req.ReportSeq, req.FullReport = s.session, s.seq, s.full
	if !s.full {
		req.ReportBase = s.seq - 1
	}
	s.sentNS, s.sentGS, s.goneNS, s.goneGS = s.sentNS[:0], s.sentGS[:0], s.goneNS[:0], s.goneGS[:0]
	now := time.Now()
	b := &Builder{s: s, req: req, all: s.full || (s.sinceSweep+1 >= SweepEvery && now.Sub(s.lastSweep) >= SweepInterval)}
	if b.all {
		s.sinceSweep, s.lastSweep = 0, now
	} else {
		s.sinceSweep++
	}
	fill(b)
	if b.all {
		for name, e := range s.ns {
			if e.seen != s.gen {
				s.goneNS = append(s.goneNS, name)
			}
		}
		for id, e := range s.gs {
			if e.seen != s.gen {
				s.goneGS = append(s.goneGS, id)
			}
		}
	}
	slices.Sort(s.goneNS)
	slices.Sort(s.goneGS)
	if !s.full {
		req.GoneNamespaces, req.GoneGroups = slices.Clone(s.goneNS), slices.Clone(s.goneGS)
	}
}

// All tells whether this Build needs every entry (a whole report, or a
// sweep), rather than those that may have changed since the last Build.
func (b *Builder) All() bool { return b.all }

// NoNamespace says that a namespace that may have been reported before is
// not reported now. Needed only when the Build is not All.
func (b *Builder) NoNamespace(name string) {
	if _, ok := b.s.ns[name]; ok && !b.all {
		b.s.goneNS = append(b.s.goneNS, name)
	}
}

// NoGroup says that a group that may have been reported before is not
// reported now. Needed only when the Build is not All.
func (b *Builder) NoGroup(id uint64) {
	if _, ok := b.s.gs[id]; ok && !b.all {
		b.s.goneGS = append(b.s.goneGS, id)
	}
}

// Namespace reports a namespace (once per Build).
func (b *Builder) Namespace(name string, e NamespaceEntry) {
	if note(b.s, b.s.ns, name, e, func(x, y *NamespaceEntry) bool { return *x == *y }, &b.s.sentNS) {
		b.req.Namespaces = append(b.req.Namespaces, &pdpb.NamespaceApplied{
			Namespace: name, Version: e.Version, State: e.State, Filled: e.Filled, Releasing: e.Releasing,
		})
	}
}

// Group reports a group (once per Build).
func (b *Builder) Group(id uint64, e GroupEntry) {
	if note(b.s, b.s.gs, id, e, sameGroupEntry, &b.s.sentGS) {
		b.req.Groups = append(b.req.Groups, &pdpb.GroupStatus{
			GroupId: id, Namespace: e.Namespace, Leader: e.Leader, Term: e.Term, Commit: e.Commit, Applied: e.Applied,
			State: e.State, Voters: e.Voters, Learners: e.Learners,
		})
	}
}

// note marks the entry under key seen by this Build and tells whether it
// is to be sent (the report is whole, or PD does not have it as it is),
// keeping it in pending if so.
func note[K comparable, E any](s *Sender, m map[K]*sent[E], key K, e E, same func(a, b *E) bool, pending *[]*sent[E]) bool {
	st := m[key]
	if st == nil {
		st = &sent[E]{}
		m[key] = st
	}
	st.seen = s.gen
	if !s.full && st.hasAcked && same(&st.acked, &e) {
		return false
	}
	st.sent = e
	*pending = append(*pending, st)
	return true
}

// Acknowledge records the outcome of the last Build's heartbeat: applied
// by PD, or not (or not known), in which case the next report is whole.
func (s *Sender) Acknowledge(applied bool) {
	if !applied {
		s.full = true
		for _, st := range s.ns {
			st.hasAcked = false
		}
		for _, st := range s.gs {
			st.hasAcked = false
		}
		return
	}
	s.full = false
	for _, st := range s.sentNS {
		st.acked, st.hasAcked = st.sent, true
	}
	for _, st := range s.sentGS {
		st.acked, st.hasAcked = st.sent, true
	}
	for _, name := range s.goneNS {
		delete(s.ns, name)
	}
	for _, id := range s.goneGS {
		delete(s.gs, id)
	}
}

func sameGroupEntry(a, b *GroupEntry) bool {
	return a.Namespace == b.Namespace && a.Leader == b.Leader && a.Term == b.Term && a.Commit == b.Commit &&
		a.Applied == b.Applied && slices.Equal(a.Voters, b.Voters) && slices.Equal(a.Learners, b.Learners) &&
		sameGroupState(a.State, b.State)
}

func sameGroupState(a, b *storepb.GroupState) bool {
	if a == b {
		return true
	}
	if (a == nil) != (b == nil) {
		return false
	}
	return a.GetActiveEpoch() == b.GetActiveEpoch() && a.GetFencedEpoch() == b.GetFencedEpoch() &&
		a.GetLoadingEpoch() == b.GetLoadingEpoch() && sameTimestamp(a.GetMaxLoadedTs(), b.GetMaxLoadedTs()) &&
		sameTimestamp(a.GetFenceTs(), b.GetFenceTs()) && a.GetLoadId() == b.GetLoadId() &&
		a.GetRecordsLoaded() == b.GetRecordsLoaded() && a.GetConvertedEpoch() == b.GetConvertedEpoch()
}

func sameTimestamp(a, b *storepb.Timestamp) bool {
	return a.GetWallTime() == b.GetWallTime() && a.GetLogical() == b.GetLogical() && a.GetStoreId() == b.GetStoreId()
}

// Receiver is PD's side: one store's report, as its heartbeats built it.
type Receiver struct {
	session uint64
	// AppliedRevision is the table revision the store last reported.
	AppliedRevision uint64
	// Index is nil-mapped until a report is applied.
	Index
}

// Apply applies a heartbeat's report and tells whether it could: changes
// need the session's earlier report to apply to. A heartbeat that an
// already applied one of its session overtook is ignored, and counts as
// applied (the store has had its answer). Apply keeps copies, not req's
// own entries.
func (r *Receiver) Apply(req *pdpb.StoreHeartbeatRequest) bool {
	session, seq := req.GetReportSession(), req.GetReportSeq()
	full := session == 0 || req.GetFullReport()
	switch {
	case session != 0 && session == r.session && seq <= r.Index.seq:
		return true
	case !full && (session != r.session || req.GetReportBase() != r.Index.seq || r.Namespaces == nil):
		return false
	}
	if full {
		r.Namespaces = make(map[string]*pdpb.NamespaceApplied, len(req.GetNamespaces()))
		r.Groups = make(map[uint64]*pdpb.GroupStatus, len(req.GetGroups()))
	}
	for _, name := range req.GetGoneNamespaces() {
		delete(r.Namespaces, name)
	}
	for _, id := range req.GetGoneGroups() {
		delete(r.Groups, id)
	}
	for _, n := range req.GetNamespaces() {
		r.Namespaces[n.GetNamespace()] = proto.Clone(n).(*pdpb.NamespaceApplied)
	}
	for _, g := range req.GetGroups() {
		r.Groups[g.GetGroupId()] = proto.Clone(g).(*pdpb.GroupStatus)
	}
	r.session, r.Index.seq, r.AppliedRevision = session, seq, req.GetAppliedRevision()
	return true
}
