package pdctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/rdb-project/rdb/proto/pdpb"
)

// The JSON documents pdctl prints. They are pdctl's own, not protojson, so
// that numbers are JSON numbers and every field is present (jq-friendly).

type namespaceView struct {
	Name          string   `json:"name"`
	Mode          string   `json:"mode"`
	FromDefault   bool     `json:"from_default"`
	Version       uint64   `json:"version"`
	Epoch         uint64   `json:"epoch"`
	GroupID       uint64   `json:"group_id"`
	GroupPeers    []uint64 `json:"group_peers"`
	Force         bool     `json:"force"`
	State         string   `json:"state"`
	AppliedStores uint32   `json:"applied_stores"`
	UpStores      uint32   `json:"up_stores"`
	// Placement (PD): the stores that hold it, its strong group's leader
	// (0: unknown or none), its replication factor (0: PD's default).
	Replicas          []uint64 `json:"replicas"`
	Leader            uint64   `json:"leader"`
	ReplicationFactor uint32   `json:"replication_factor"`
	UnderReplicated   bool     `json:"under_replicated"`
	Moving            bool     `json:"moving"`
}

func viewNamespace(st *pdpb.NamespaceStatus) namespaceView {
	r := st.GetRecord()
	peers := r.GetGroupPeers()
	if peers == nil {
		peers = []uint64{}
	}
	return namespaceView{
		Name: r.GetName(), Mode: r.GetMode(), FromDefault: r.GetFromDefault(),
		Version: r.GetVersion(), Epoch: r.GetEpoch(), GroupID: r.GetGroupId(), GroupPeers: peers,
		Force: r.GetForce(), State: st.GetState(),
		AppliedStores: st.GetAppliedStores(), UpStores: st.GetUpStores(),
		Replicas: nonNilIDs(r.GetReplicas()), Leader: st.GetLeader(), ReplicationFactor: r.GetReplicationFactor(),
		UnderReplicated: st.GetUnderReplicated(), Moving: st.GetMoving(),
	}
}

func nonNilIDs(ids []uint64) []uint64 {
	if ids == nil {
		return []uint64{}
	}
	return ids
}

type storeView struct {
	ID              uint64 `json:"id"`
	Addr            string `json:"addr"`
	Up              bool   `json:"up"`
	State           string `json:"state"`
	LastHeartbeat   string `json:"last_heartbeat"` // RFC 3339, "" if none since the leader took over
	AppliedRevision uint64 `json:"applied_revision"`
	ReplicaCount    uint32 `json:"replica_count"`
	LeaderCount     uint32 `json:"leader_count"`
}

func viewStore(s *pdpb.StoreStatus) storeView {
	v := storeView{ID: s.GetId(), Addr: s.GetAddr(), Up: s.GetUp(), State: s.GetState(), AppliedRevision: s.GetAppliedRevision(),
		ReplicaCount: s.GetReplicaCount(), LeaderCount: s.GetLeaderCount()}
	if v.State == "" { // a PD that does not say
		v.State = "down"
		if v.Up {
			v.State = "up"
		}
	}
	if ns := s.GetLastHeartbeatUnixNano(); ns != 0 {
		v.LastHeartbeat = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
	}
	return v
}

type memberView struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"` // hex, as etcd prints it
	ClientURLs []string `json:"client_urls"`
	PeerURLs   []string `json:"peer_urls"`
	IsLeader   bool     `json:"is_leader"`
}

func viewMember(m *pdpb.Member) memberView {
	return memberView{
		Name: m.GetName(), ID: fmt.Sprintf("%x", m.GetId()),
		ClientURLs: nonNil(m.GetClientUrls()), PeerURLs: nonNil(m.GetPeerUrls()), IsLeader: m.GetIsLeader(),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var namespaceHeader = []string{"NAMESPACE", "MODE", "FROM_DEFAULT", "VERSION", "EPOCH", "GROUP", "STATE", "APPLIED", "REPLICAS", "LEADER"}

func namespaceRow(v namespaceView) []string {
	group := "-"
	if v.GroupID != 0 {
		group = fmt.Sprint(v.GroupID)
	}
	return []string{
		v.Name, v.Mode, fmt.Sprint(v.FromDefault), fmt.Sprint(v.Version), fmt.Sprint(v.Epoch), group,
		v.State, fmt.Sprintf("%d/%d", v.AppliedStores, v.UpStores), idsOrAll(v.Replicas), idOrDash(v.Leader),
	}
}

func idsOrAll(ids []uint64) string {
	if len(ids) == 0 {
		return "all"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}

func idOrDash(id uint64) string {
	if id == 0 {
		return "-"
	}
	return fmt.Sprint(id)
}

// age says how long ago a RFC 3339 time was, for tables.
func age(ts string, now time.Time) string {
	if ts == "" {
		return "never"
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	return fmt.Sprintf("%s ago", now.Sub(t).Round(100*time.Millisecond))
}
