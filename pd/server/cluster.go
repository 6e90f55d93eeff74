package server

import (
	"context"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// Driver is work that runs on the PD leader only: Run is called when a member
// becomes leader and its ctx is cancelled when that leadership ends (the
// member steps down only once Run has returned, so Run must return soon after
// ctx is done). A member that leads again later gets a new call.
//
// Run receives the Cluster of its term: reads of the table and the stores,
// and writes of namespace rows fenced by that term.
type Driver interface {
	Run(ctx context.Context, c Cluster)
}

// DriverFunc adapts a function to Driver.
type DriverFunc func(ctx context.Context, c Cluster)

// Run calls f(ctx, c).
func (f DriverFunc) Run(ctx context.Context, c Cluster) { f(ctx, c) }

// Cluster is what a Driver sees of PD during one leadership term.
type Cluster interface {
	// Namespaces returns every namespace with its rollout status, and the
	// table revision it was read at.
	Namespaces(ctx context.Context) ([]*pdpb.NamespaceStatus, uint64, error)
	// Records returns every namespace's row (shared: not to be modified),
	// and the table revision they are at: cheaper than Namespaces, and
	// reads this term's own writes.
	Records(ctx context.Context) ([]*storepb.NamespaceRecord, uint64, error)
	// Changes returns the rows changed since its last call, and false
	// when it cannot name them all (modeswitch.Changes): the switch driver
	// then reads every row, not 100,000 each quarter second.
	Changes() ([]*storepb.NamespaceRecord, bool)
	// Namespace returns one namespace with its rollout status; NotFound if
	// it does not exist.
	Namespace(ctx context.Context, name string) (*pdpb.NamespaceStatus, error)
	// Stores returns every registered store as of the last heartbeats,
	// without their reports (see GroupReports and NamespaceReports).
	Stores() []*pdpb.StoreStatus
	// GroupReports returns what each store last reported of a group, by
	// store id.
	GroupReports(group uint64) map[uint64]*pdpb.GroupStatus
	// NamespaceReports returns what each store last reported of a
	// namespace, by store id.
	NamespaceReports(name string) map[uint64]*pdpb.NamespaceApplied
	// UpdateNamespace rewrites one row: fn gets the current record (nil if
	// the namespace does not exist) and returns the next one, or ErrNoChange.
	// The write holds only if this term still leads and the row did not
	// change since fn saw it (fn is then called again with the new row). A
	// record that becomes strong without a group gets one, as with
	// SetNamespaceMode; its voters are given now or, if no store may be
	// chosen yet, later by the leader (see form.go). It returns the row after
	// the call (its version is the revision of the write) and whether it
	// wrote.
	UpdateNamespace(ctx context.Context, name string, fn UpdateFunc) (*pdpb.NamespaceStatus, bool, error)
	// Credentials are what this member dials stores with: TLS with its
	// certificate (CN pd:<name>), or plaintext in an insecure cluster.
	Credentials() credentials.TransportCredentials
	// ClusterID is the cluster's id, which every call to a store names.
	ClusterID() uint64
}

// leaderCluster is the Cluster of one term.
type leaderCluster struct {
	s *Server
	l *leadership
}

func (c *leaderCluster) Records(ctx context.Context) ([]*storepb.NamespaceRecord, uint64, error) {
	recs, rev, err := c.l.table.records(ctx)
	return recs, uint64(rev), err
}

func (c *leaderCluster) Changes() ([]*storepb.NamespaceRecord, bool) { return c.l.table.feed.Take() }

func (c *leaderCluster) Namespaces(ctx context.Context) ([]*pdpb.NamespaceStatus, uint64, error) {
	recs, rev, err := c.l.table.records(ctx)
	if err != nil {
		return nil, 0, err
	}
	return c.s.namespaceStatuses(recs), uint64(rev), nil
}

func (c *leaderCluster) Namespace(ctx context.Context, name string) (*pdpb.NamespaceStatus, error) {
	return c.s.namespaceStatusOf(ctx, c.l, name, false)
}

func (c *leaderCluster) Stores() []*pdpb.StoreStatus { return c.s.stores.states(time.Now()) }

func (c *leaderCluster) GroupReports(group uint64) map[uint64]*pdpb.GroupStatus {
	return c.s.stores.groupReports(group)
}

func (c *leaderCluster) NamespaceReports(name string) map[uint64]*pdpb.NamespaceApplied {
	return c.s.stores.namespaceReports(name)
}

func (c *leaderCluster) Credentials() credentials.TransportCredentials { return c.s.creds }

func (c *leaderCluster) ClusterID() uint64 { return c.s.ClusterID() }

func (c *leaderCluster) UpdateNamespace(ctx context.Context, name string, fn UpdateFunc) (*pdpb.NamespaceStatus, bool, error) {
	rec, changed, err := c.s.updateNamespace(ctx, c.l, name, fn)
	if err != nil || rec == nil {
		return nil, changed, err
	}
	return c.s.stores.rollout(rec, time.Now()), changed, nil
}
