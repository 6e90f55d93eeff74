package store

// What a PD-mode store reports in its heartbeats: how far it has carried
// out each row, and each of its groups' Raft and switch state.

import (
	"slices"

	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/store/namespace"
)

func (s *Store) report(b *report.Builder) {
	for _, rec := range s.table.Rows() {
		name := rec.GetName()
		if !s.holds(rec) {
			if s.releasing(rec) {
				b.Namespace(name, report.NamespaceEntry{Version: rec.GetVersion(), State: string(namespace.Active), Releasing: true})
			}
			if gid := rec.GetGroupId(); gid != 0 && s.raft.HasGroup(gid) {
				// A replica left here until replica collection destroys it:
				// reported bare (no leader, no members), so that PD does
				// not count this store empty before it is.
				b.Group(gid, report.GroupEntry{Namespace: name})
			}
			continue // another store's to report
		}
		b.Namespace(name, report.NamespaceEntry{
			Version: rec.GetVersion(), State: string(s.namespaceState(rec)),
			Filled: slices.Contains(rec.GetFilling(), s.cfg.StoreID) && s.filled(name),
		})
		gid := rec.GetGroupId()
		if gid == 0 {
			continue
		}
		st, ok := s.raft.Status(gid)
		gs := s.groups.State(gid)
		if !ok || gs == nil {
			continue
		}
		b.Group(gid, report.GroupEntry{
			Namespace: name, Leader: st.Leader, Term: st.Term, Commit: st.Commit, Applied: st.Applied,
			State: gs, Voters: st.Voters, Learners: st.Learners,
		})
	}
}
