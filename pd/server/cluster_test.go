package server_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

func follower(c *pdtest.Cluster, leader int) int {
	for i := range c.Size() {
		if i != leader && c.Server(i) != nil {
			return i
		}
	}
	return -1
}

// A member that is not the leader forwards writes and leader-held reads.
func TestFollowerForwards(t *testing.T) {
	c := pdtest.NewCluster(t, 3)
	leader := c.WaitLeader()
	f := follower(c, leader)
	only := c.ClientOf(c.Endpoint(f)) // this member and no other
	ctx := testContext(t)

	resp, err := only.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "eventual"})
	if err != nil || !resp.GetChanged() {
		t.Fatalf("set through follower: %v, %v", resp, err)
	}
	if _, err := only.RegisterStore(ctx, &storepb.StoreInfo{Id: 1, Addr: "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := only.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 1, AppliedRevision: resp.GetRecord().GetVersion()}); err != nil {
		t.Fatal(err)
	}
	// The heartbeat reached the leader: its view, through any member.
	for i := range c.Size() {
		st, err := c.ClientOf(c.Endpoint(i)).GetNamespace(ctx, "logs", false)
		if err != nil || st.GetAppliedStores() != 1 || st.GetUpStores() != 1 {
			t.Fatalf("member %d: %v, %v", i, st, err)
		}
	}
	// Errors come back from the leader as they are.
	if _, err := only.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "weak"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad mode through follower: %v", err)
	}
	if _, err := only.GetNamespace(ctx, "nope", false); status.Code(err) != codes.NotFound {
		t.Fatalf("missing namespace through follower: %v", err)
	}
	members, err := only.GetMembers(ctx)
	if err != nil || len(members.GetMembers()) != 3 || members.GetLeader().GetName() != c.Config(leader).Name {
		t.Fatalf("members from a follower: %v, %v", members, err)
	}
}

func TestLeaderFailover(t *testing.T) {
	c := pdtest.NewCluster(t, 3)
	cli := c.Client(pdclient.WithAttemptTimeout(time.Second))
	var want []*storepb.NamespaceRecord
	for i := range 5 {
		want = append(want, set(t, cli, fmt.Sprintf("ns%d", i), "eventual").GetRecord())
	}
	leader := c.WaitLeader()
	start := time.Now()
	c.Stop(leader) // it steps down: the others need not wait for its lease
	rec := set(t, cli, "after", "strong").GetRecord()
	t.Logf("first write succeeded %v after stopping the leader", time.Since(start))
	if rec.GetVersion() <= want[len(want)-1].GetVersion() {
		t.Fatalf("version went back: %d after %d", rec.GetVersion(), want[len(want)-1].GetVersion())
	}
	newLeader := c.WaitLeader()
	if newLeader == leader {
		t.Fatalf("stopped member %d still leads", leader)
	}
	for _, w := range want {
		if got := get(t, cli, w.GetName()).GetRecord(); got.GetMode() != w.GetMode() || got.GetVersion() != w.GetVersion() {
			t.Fatalf("after failover %s = %v, want %v", w.GetName(), got, w)
		}
	}
	// The old leader comes back as a follower and serves again.
	c.Restart(leader)
	c.WaitLeader()
	if got := get(t, c.ClientOf(c.Endpoint(leader)), "after").GetRecord(); got.GetVersion() != rec.GetVersion() {
		t.Fatalf("restarted member reads %v", got)
	}
}

// driverLog records which members run their driver.
type driverLog struct {
	mu       sync.Mutex
	running  map[int]bool
	starts   []int
	clusters map[int]server.Cluster
}

func (d *driverLog) driver(i int) server.Driver {
	return server.DriverFunc(func(ctx context.Context, c server.Cluster) {
		d.mu.Lock()
		d.running[i] = true
		d.starts = append(d.starts, i)
		d.clusters[i] = c
		d.mu.Unlock()
		<-ctx.Done()
		d.mu.Lock()
		d.running[i] = false
		d.mu.Unlock()
	})
}

func (d *driverLog) runningOn() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var on []int
	for i, r := range d.running {
		if r {
			on = append(on, i)
		}
	}
	return on
}

func (d *driverLog) cluster(i int) server.Cluster {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clusters[i]
}

func TestDriverRunsOnLeaderOnly(t *testing.T) {
	log := &driverLog{running: map[int]bool{}, clusters: map[int]server.Cluster{}}
	c := pdtest.NewCluster(t, 3, pdtest.WithDriver(log.driver))
	leader := c.WaitLeader()
	waitDriver := func(want int) {
		t.Helper()
		pdtest.Eventually(t, 10*time.Second, func() error {
			if on := log.runningOn(); len(on) != 1 || on[0] != want {
				return fmt.Errorf("driver runs on %v, want [%d]", on, want)
			}
			return nil
		})
	}
	waitDriver(leader)

	// The driver's Cluster reads and writes under its term.
	ctx := testContext(t)
	dc := log.cluster(leader)
	st, changed, err := dc.UpdateNamespace(ctx, "logs", func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		return &storepb.NamespaceRecord{Mode: "strong", Epoch: 1}, nil
	})
	if err != nil || !changed || st.GetRecord().GetGroupId() != 2 {
		t.Fatalf("driver update: %v, %v, %v", st, changed, err)
	}
	if _, _, err := dc.UpdateNamespace(ctx, "logs", func(*storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		return nil, server.ErrNoChange
	}); err != nil {
		t.Fatal(err)
	}
	list, rev, err := dc.Namespaces(ctx)
	if err != nil || len(list) != 1 || rev < st.GetRecord().GetVersion() {
		t.Fatalf("driver reads the table: %v at %d, %v", list, rev, err)
	}
	if _, err := dc.Namespace(ctx, "nope"); status.Code(err) != codes.NotFound {
		t.Fatalf("driver reads a missing namespace: %v", err)
	}

	c.Stop(leader)
	next := c.WaitLeader()
	waitDriver(next)
	// The old term's Cluster can no longer write.
	_, _, err = dc.UpdateNamespace(ctx, "logs", func(*storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		return &storepb.NamespaceRecord{Mode: "eventual"}, nil
	})
	if err == nil {
		t.Fatal("a write of an ended term went through")
	}
}

// oneMemberDriving starts a one-member PD and waits for its driver.
func oneMemberDriving(t *testing.T) (*pdtest.Cluster, *driverLog) {
	t.Helper()
	log := &driverLog{running: map[int]bool{}, clusters: map[int]server.Cluster{}}
	c := pdtest.NewCluster(t, 1, pdtest.WithDriver(log.driver))
	c.WaitLeader()
	pdtest.Eventually(t, 10*time.Second, func() error {
		if log.cluster(0) == nil {
			return errors.New("driver not started")
		}
		return nil
	})
	return c, log
}

// Losing the leader key ends the term at once: the driver stops, and writes
// of that term are refused even if the same member leads again.
func TestLeaderKeyLossEndsTerm(t *testing.T) {
	c, log := oneMemberDriving(t)
	old := log.cluster(0)

	etcd := c.EtcdClient()
	if _, err := etcd.Delete(testContext(t), "/rdb/leader"); err != nil {
		t.Fatal(err)
	}
	// The member steps down and leads again in a new term, with a new driver.
	pdtest.Eventually(t, 10*time.Second, func() error {
		log.mu.Lock()
		defer log.mu.Unlock()
		if len(log.starts) < 2 || !log.running[0] {
			return fmt.Errorf("driver starts %v", log.starts)
		}
		return nil
	})
	_, _, err := old.UpdateNamespace(testContext(t), "logs", func(*storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		return &storepb.NamespaceRecord{Mode: "eventual"}, nil
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("write of the ended term: %v, want Unavailable", err)
	}
	if _, _, err := log.cluster(0).UpdateNamespace(testContext(t), "logs", func(*storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		return &storepb.NamespaceRecord{Mode: "eventual"}, nil
	}); err != nil {
		t.Fatalf("write of the new term: %v", err)
	}
}

// One port serves etcd, PD, reflection and health.
func TestReflectionAndHealth(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	conn, err := grpc.NewClient(c.Endpoint(0), pdclient.DialOptions(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := testContext(t)

	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", hc, err)
	}
	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.CloseSend()
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "pdpb.PD"},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("reflection of pdpb.PD: %v, %v", resp, err)
	}
	// etcd's own API on the same port.
	if _, err := c.EtcdClient().Get(ctx, "/rdb/leader"); err != nil {
		t.Fatal(err)
	}
}

// A member restarted within its lease TTL leads again without waiting for
// its old lease to expire.
func TestRestartKeepsTableAndLeadsAgain(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	rec := set(t, c.Client(), "logs", "eventual").GetRecord()
	c.Stop(0)
	c.Restart(0)
	start := time.Now()
	c.WaitLeader()
	t.Logf("leader again %v after restart", time.Since(start))
	if got := get(t, c.Client(), "logs").GetRecord(); got.GetVersion() != rec.GetVersion() || got.GetMode() != "eventual" {
		t.Fatalf("after restart: %v, want %v", got, rec)
	}
}

// TestChangesNameTheRowsWritten: the driver's Cluster names the rows
// changed since it last asked (the switch driver's rounds read those, not
// 100,000 rows), and says when it cannot (the table was loaded again).
func TestChangesNameTheRowsWritten(t *testing.T) {
	_, log := oneMemberDriving(t)
	dc := log.cluster(0)
	ctx := testContext(t)
	// The table was loaded: what changed before is not named.
	if _, _, err := dc.Records(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := dc.Changes(); ok {
		t.Fatal("first Changes after the table was loaded is ok; want a full read")
	}
	for _, ns := range []string{"a", "b", "a"} {
		if _, _, err := dc.UpdateNamespace(ctx, ns, func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
			return &storepb.NamespaceRecord{Mode: "eventual", Epoch: cur.GetEpoch() + 1}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	want, _, err := dc.Records(ctx) // waits for the cache to hold the writes
	if err != nil {
		t.Fatal(err)
	}
	recs, ok := dc.Changes()
	if !ok || len(recs) != 2 {
		t.Fatalf("Changes() = %v, %v; want a and b", recs, ok)
	}
	for _, r := range recs {
		for _, w := range want {
			if w.GetName() == r.GetName() && w.GetVersion() != r.GetVersion() {
				t.Fatalf("%s named at version %d, the table has %d", r.GetName(), r.GetVersion(), w.GetVersion())
			}
		}
	}
	if recs, ok := dc.Changes(); !ok || len(recs) != 0 {
		t.Fatalf("Changes() again = %v, %v; want nothing, ok", recs, ok)
	}
}
