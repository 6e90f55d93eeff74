package server

// Who may call what on PD's client port when it runs with TLS (package
// security). Stores register, heartbeat and follow the table; admins
// operate (pdctl); members forward to the leader. etcd's own API — the
// table's keys, the leader key, leases — is only for PD members and
// admins: an ordinary client cannot write PD's state behind the leader's
// fence, and neither can a store.

import (
	"context"

	"github.com/rdb-project/rdb/store/security"
)

var (
	operators = []security.Role{security.PD, security.Admin}
	pdUsers   = []security.Role{security.Store, security.PD, security.Admin}
)

var pdPolicy = security.Policy{
	"/pdpb.PD/":               pdUsers,
	"/pdpb.PD/RegisterStore":  {security.Store, security.PD},
	"/pdpb.PD/StoreHeartbeat": {security.Store, security.PD},
	// Mode changes: an admin, or a store forwarding an admin's request
	// (the store checked the admin) or seeding its --namespace-mode rows.
	"/pdpb.PD/SetNamespaceMode": pdUsers,
	// Placement changes are an operator's.
	"/pdpb.PD/SetNamespaceReplicas": operators,
	"/pdpb.PD/RemoveStore":          operators,

	"/etcdserverpb.KV/":          operators,
	"/etcdserverpb.Watch/":       operators,
	"/etcdserverpb.Lease/":       operators,
	"/etcdserverpb.Cluster/":     operators,
	"/etcdserverpb.Maintenance/": operators,
	"/etcdserverpb.Auth/":        operators,
	"/v3lockpb.Lock/":            operators,
	"/v3electionpb.Election/":    operators,

	"/grpc.health.v1.Health/":                    security.Everyone,
	"/grpc.reflection.v1.ServerReflection/":      security.Everyone,
	"/grpc.reflection.v1alpha.ServerReflection/": security.Everyone,
}

// checkStoreCaller checks that a store speaks for itself: a store's
// certificate may register and heartbeat only as the store it names (a
// member forwarding a store's request has checked it).
func checkStoreCaller(ctx context.Context, id uint64) error {
	if security.Caller(ctx).Role == security.PD {
		return nil
	}
	return security.RequireStore(ctx, id)
}
