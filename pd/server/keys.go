package server

import (
	"fmt"
	"strconv"
	"strings"
)

// Every key PD writes to etcd is defined in this file; nobody builds one by
// hand elsewhere.
//
//	/rdb/leader                  the PD leader: a marshaled pdpb.Member, attached to the leader's lease
//	/rdb/namespaces/<ns>         one row of the mode table: a marshaled storepb.NamespaceRecord
//	/rdb/stores/<id>             a registered store: a marshaled storepb.StoreInfo (id in decimal)
//	/rdb/next_group_id           the next Raft group id to hand out, in decimal (absent: 2)
//	/rdb/cluster_id              the cluster's id, in decimal: created once, by the first leader
//
// A row's version is the etcd revision that wrote it (the key's ModRevision);
// it is never stored in the value, so a value read back always agrees with the
// revision it was read at.
const (
	leaderKey       = "/rdb/leader"
	namespacePrefix = "/rdb/namespaces/"
	storePrefix     = "/rdb/stores/"
	nextGroupIDKey  = "/rdb/next_group_id"
	clusterIDKey    = "/rdb/cluster_id"
)

// ClusterIDKey is /rdb/cluster_id (tests preset it).
func ClusterIDKey() string { return clusterIDKey }

// firstGroupID is the first Raft group id PD hands out: 1 is the stores' meta
// group in static mode.
const firstGroupID uint64 = 2

// NamespaceKey is /rdb/namespaces/<ns>.
func NamespaceKey(ns string) string { return namespacePrefix + ns }

// NamespacePrefix is /rdb/namespaces/, the prefix of every NamespaceKey.
func NamespacePrefix() string { return namespacePrefix }

// namespaceOfKey returns <ns> of /rdb/namespaces/<ns>.
func namespaceOfKey(key string) (string, bool) {
	ns, ok := strings.CutPrefix(key, namespacePrefix)
	return ns, ok && ns != ""
}

// storeKey is /rdb/stores/<id>.
func storeKey(id uint64) string { return storePrefix + strconv.FormatUint(id, 10) }

// parseGroupCounter decodes the value of /rdb/next_group_id.
func parseGroupCounter(v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || n < firstGroupID {
		return 0, fmt.Errorf("bad %s value %q", nextGroupIDKey, v)
	}
	return n, nil
}

func formatGroupCounter(n uint64) string { return strconv.FormatUint(n, 10) }
