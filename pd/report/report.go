// Package report carries a store's heartbeat report to PD as changes: the
// groups and namespaces whose status changed since the last report PD
// acknowledged, and those no longer reported. With 100,000 namespaces of
// which a handful are active, PD reads a handful of entries per heartbeat,
// not 100,000. The store holds a Sender, PD a Receiver per store.
package report

import (
	"math/rand/v2"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// Index is one whole report by key. Its entries are never modified, only
// replaced.
type Index struct {
	Namespaces map[string]*pdpb.NamespaceApplied
	Groups     map[uint64]*pdpb.GroupStatus
	// seq is the report_seq of the heartbeat that carried it.
	seq uint64
}

// Sender is the store's side: what PD last acknowledged of its report.
type Sender struct {
	session, seq uint64
	// acked is the last report PD applied; nil until then, or after a heartbeat whose fate is unknown: the
	// next report is then full.
	acked *Index
}

// NewSender starts a session.
func NewSender() *Sender {
	// A session id is never 0: 0 marks full reports of stores that do not
	// send changes.
	return &Sender{session: rand.Uint64() | 1}
}

// Fill sets req's report from full, the store's whole report: all of it if
// PD has acknowledged nothing of this session, else what changed. It
// returns full by key, to pass to Acknowledge with req's outcome.
func (r *Sender) Fill(req, full *pdpb.StoreHeartbeatRequest) *Index {
	r.seq++
	req.ReportSession, req.ReportSeq = r.session, r.seq
	idx := &Index{seq: r.seq,
		Namespaces: make(map[string]*pdpb.NamespaceApplied, len(full.GetNamespaces())),
		Groups:     make(map[uint64]*pdpb.GroupStatus, len(full.GetGroups())),
	}
	for _, n := range full.GetNamespaces() {
		idx.Namespaces[n.GetNamespace()] = n
	}
	for _, g := range full.GetGroups() {
		idx.Groups[g.GetGroupId()] = g
	}
	if r.acked == nil {
		req.FullReport = true
		req.Namespaces, req.Groups = full.GetNamespaces(), full.GetGroups()
		return idx
	}
	req.ReportBase = r.acked.seq
	for _, n := range full.GetNamespaces() {
		if old := r.acked.Namespaces[n.GetNamespace()]; old == nil || !sameNamespace(old, n) {
			req.Namespaces = append(req.Namespaces, n)
		}
	}
	for _, g := range full.GetGroups() {
		if old := r.acked.Groups[g.GetGroupId()]; old == nil || !sameGroup(old, g) {
			req.Groups = append(req.Groups, g)
		}
	}
	for name := range r.acked.Namespaces {
		if idx.Namespaces[name] == nil {
			req.GoneNamespaces = append(req.GoneNamespaces, name)
		}
	}
	for id := range r.acked.Groups {
		if idx.Groups[id] == nil {
			req.GoneGroups = append(req.GoneGroups, id)
		}
	}
	slices.Sort(req.GoneNamespaces)
	slices.Sort(req.GoneGroups)
	return idx
}

// Acknowledge records the outcome of the heartbeat that sent idx: applied
// by PD, or not (or not known), in which case the next report is full.
func (r *Sender) Acknowledge(idx *Index, applied bool) {
	if applied {
		r.acked = idx
	} else {
		r.acked = nil
	}
}

func sameNamespace(a, b *pdpb.NamespaceApplied) bool {
	return a.GetNamespace() == b.GetNamespace() && a.GetVersion() == b.GetVersion() && a.GetState() == b.GetState() &&
		a.GetFilled() == b.GetFilled() && a.GetReleasing() == b.GetReleasing()
}

func sameGroup(a, b *pdpb.GroupStatus) bool {
	return a.GetGroupId() == b.GetGroupId() && a.GetNamespace() == b.GetNamespace() && a.GetLeader() == b.GetLeader() &&
		a.GetTerm() == b.GetTerm() && a.GetCommit() == b.GetCommit() && a.GetApplied() == b.GetApplied() &&
		slices.Equal(a.GetVoters(), b.GetVoters()) && slices.Equal(a.GetLearners(), b.GetLearners()) &&
		sameGroupState(a.GetState(), b.GetState())
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
