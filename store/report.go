package store

// What a PD-mode store reports in its heartbeats: how far it has carried
// out each row, and each of its groups' Raft and switch state.

import (
	"slices"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store/namespace"
)

func (s *Store) report(req *pdpb.StoreHeartbeatRequest) {
	for _, rec := range s.table.List() {
		if !s.holds(rec) {
			if s.releasing(rec) {
				req.Namespaces = append(req.Namespaces, &pdpb.NamespaceApplied{
					Namespace: rec.GetName(), Version: rec.GetVersion(), State: string(namespace.Active), Releasing: true,
				})
			}
			if gid := rec.GetGroupId(); gid != 0 && s.raft.HasGroup(gid) {
				// A replica left here until replica collection destroys it:
				// reported bare (no leader, no members), so that PD does
				// not count this store empty before it is.
				req.Groups = append(req.Groups, &pdpb.GroupStatus{GroupId: gid, Namespace: rec.GetName()})
			}
			continue // another store's to report
		}
		req.Namespaces = append(req.Namespaces, &pdpb.NamespaceApplied{
			Namespace: rec.GetName(), Version: rec.GetVersion(), State: string(s.namespaceState(rec)),
			Filled: slices.Contains(rec.GetFilling(), s.cfg.StoreID) && s.filled(rec.GetName()),
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
		req.Groups = append(req.Groups, &pdpb.GroupStatus{
			GroupId: gid, Namespace: rec.GetName(), Leader: st.Leader, Term: st.Term,
			Commit: st.Commit, Applied: st.Applied, State: gs,
			Voters: st.Voters, Learners: st.Learners,
		})
	}
}
