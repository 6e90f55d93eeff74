package store

// What a PD-mode store reports in its heartbeats: how far it has carried
// out each row, and each of its groups' Raft and switch state.
//
// A heartbeat visits only the namespaces and groups noted as changed since
// the last one (reportChanges), unless PD needs the whole report or a sweep
// is due (report.SweepEvery): with 100,000 namespaces of which a handful
// are active, a heartbeat costs a handful of entries, not 100,000.

import (
	"slices"
	"sync"

	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/namespace"
)

// reportChanges are the namespaces and groups whose reported state may
// have changed since the last heartbeat was built: rows applied, Raft
// statuses published, switch states saved, replicas filled or released.
type reportChanges struct {
	// on: the store reports to PD (set before the store starts). A
	// static-mode store sends no reports, and notes nothing.
	on     bool
	mu     sync.Mutex
	names  map[string]struct{}
	groups map[uint64]struct{}
}

func (c *reportChanges) noteName(name string) {
	if !c.on {
		return
	}
	c.mu.Lock()
	if c.names == nil {
		c.names = make(map[string]struct{})
	}
	c.names[name] = struct{}{}
	c.mu.Unlock()
}

func (c *reportChanges) noteGroup(id uint64) {
	if id == 0 || !c.on {
		return
	}
	c.mu.Lock()
	if c.groups == nil {
		c.groups = make(map[uint64]struct{})
	}
	c.groups[id] = struct{}{}
	c.mu.Unlock()
}

// take returns what was noted and starts over.
func (c *reportChanges) take() (names map[string]struct{}, groups map[uint64]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names, groups = c.names, c.groups
	c.names, c.groups = nil, nil
	return names, groups
}

// noteRowChange notes a row applied: its namespace, and its group before
// and after.
func (s *Store) noteRowChange(old, cur *storepb.NamespaceRecord) {
	s.changes.noteName(cur.GetName())
	s.changes.noteGroup(old.GetGroupId())
	s.changes.noteGroup(cur.GetGroupId())
}

func (s *Store) report(b *report.Builder) {
	// Taken before anything is read: a change noted after this is either
	// seen now or reported in the next heartbeat.
	names, groups := s.changes.take()
	if b.All() {
		for _, rec := range s.table.Rows() {
			s.reportRow(b, rec)
		}
		return
	}
	for gid := range groups {
		name, ok := s.table.NamespaceOfGroup(gid)
		if !ok {
			b.NoGroup(gid) // its row names another group, or is gone
			continue
		}
		if names == nil {
			names = make(map[string]struct{})
		}
		names[name] = struct{}{}
	}
	for name := range names {
		rec, ok := s.table.Get(name)
		if !ok {
			b.NoNamespace(name)
			continue
		}
		s.reportRow(b, rec)
	}
}

// reportRow reports a row's namespace and group as this store has them;
// either, when not reported, is named as such (for a Build that is not
// All).
func (s *Store) reportRow(b *report.Builder, rec *storepb.NamespaceRecord) {
	name, gid := rec.GetName(), rec.GetGroupId()
	if !s.holds(rec) {
		if s.releasing(rec) {
			b.Namespace(name, report.NamespaceEntry{Version: rec.GetVersion(), State: string(namespace.Active), Releasing: true})
		} else {
			b.NoNamespace(name) // another store's to report
		}
		if gid == 0 {
			return
		}
		if s.raft.HasGroup(gid) {
			// A replica left here until replica collection destroys it:
			// reported bare (no leader, no members), so that PD does not
			// count this store empty before it is.
			b.Group(gid, report.GroupEntry{Namespace: name})
		} else {
			b.NoGroup(gid)
		}
		return
	}
	b.Namespace(name, report.NamespaceEntry{
		Version: rec.GetVersion(), State: string(s.namespaceState(rec)),
		Filled: slices.Contains(rec.GetFilling(), s.cfg.StoreID) && s.filled(name),
	})
	if gid == 0 {
		return
	}
	st, ok := s.raft.Status(gid)
	gs := s.groups.State(gid)
	if !ok || gs == nil {
		b.NoGroup(gid)
		return
	}
	b.Group(gid, report.GroupEntry{
		Namespace: name, Leader: st.Leader, Term: st.Term, Commit: st.Commit, Applied: st.Applied,
		State: gs, Voters: st.Voters, Learners: st.Learners,
	})
}
