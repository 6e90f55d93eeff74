package server_test

// The cluster's id: created by the first leader, kept by every later one,
// given to stores when they register; calls that name another cluster are
// refused, and a watch that starts past PD's revision (PD went back) too.

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
)

// TestClusterIDCreatedOnceAndChecked: the first leader creates the id in
// etcd; a restarted member (a new leader) keeps it; registrations and
// heartbeats answer it; a call naming it, or none, is served; a call
// naming another cluster is refused with FailedPrecondition naming both.
func TestClusterIDCreatedOnceAndChecked(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	id := c.Server(0).ClusterID()
	if id == 0 {
		t.Fatal("the leader has no cluster id")
	}
	got, err := c.EtcdClient().Get(testContext(t), server.ClusterIDKey())
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != clusterid.String(id) {
		t.Fatalf("%s in etcd = %v, %v; want %d", server.ClusterIDKey(), got, err, id)
	}
	c.Stop(0)
	c.Restart(0)
	c.WaitLeader()
	if again := c.Server(0).ClusterID(); again != id {
		t.Fatalf("after a restart the cluster id is %d, was %d", again, id)
	}

	store := &storepb.StoreInfo{Id: 1, Addr: "127.0.0.1:7001"}
	for _, tc := range []struct {
		name string
		opts []pdclient.Option
	}{
		{"no cluster named (a new store, pdctl)", nil},
		{"its own cluster named", []pdclient.Option{pdclient.WithClusterID(func() uint64 { return id })}},
	} {
		cli := c.Client(tc.opts...)
		resp, err := cli.Register(testContext(t), store)
		if err != nil || resp.GetClusterId() != id {
			t.Fatalf("%s: Register = %v, %v; want cluster id %d", tc.name, resp, err, id)
		}
		hb, err := cli.StoreHeartbeat(testContext(t), &pdpb.StoreHeartbeatRequest{StoreId: 1, Addr: store.GetAddr()})
		if err != nil || hb.GetClusterId() != id {
			t.Fatalf("%s: StoreHeartbeat = %v, %v; want cluster id %d", tc.name, hb, err, id)
		}
	}

	other := id + 1
	cli := c.Client(pdclient.WithClusterID(func() uint64 { return other }))
	_, err = cli.Register(testContext(t), store)
	if status.Code(err) != codes.FailedPrecondition || !clusterid.IsMismatch(err) {
		t.Fatalf("Register naming another cluster = %v, want FailedPrecondition %s", err, clusterid.ReasonMismatch)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, clusterid.String(id)) || !strings.Contains(msg, clusterid.String(other)) {
		t.Fatalf("the refusal does not name both clusters: %s", msg)
	}
	if server, caller := clusterid.MismatchIDs(err); server != id || caller != other {
		t.Fatalf("the refusal's detail says PD %d, caller %d", server, caller)
	}
	if _, err := cli.ListNamespaces(testContext(t)); !clusterid.IsMismatch(err) {
		t.Fatalf("ListNamespaces naming another cluster = %v, want refused", err)
	}
	err = cli.WatchNamespaces(testContext(t), 0, func(*pdpb.WatchNamespacesResponse) error {
		t.Error("a watch naming another cluster got a response")
		return nil
	})
	if !clusterid.IsMismatch(err) {
		t.Fatalf("WatchNamespaces naming another cluster = %v, want refused", err)
	}
}

// TestWatchRefusesStartPastRevision: a watch from PD's next revision is
// served; one from further on (a store that applied revisions this PD never
// had: PD was wiped or restored from an older backup) is refused with
// FailedPrecondition, on the raw stream and through the client library,
// which returns it instead of retrying.
func TestWatchRefusesStartPastRevision(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	set(t, cli, "a", "eventual")
	list, err := cli.ListNamespaces(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	rev := list.GetRevision()

	stream, _ := rawWatch(t, c.Endpoint(0), rev+1)
	b := set(t, cli, "b", "eventual").GetRecord()
	if got := recvChange(t, stream); got.GetRevision() != b.GetVersion() {
		t.Fatalf("a watch from the next revision %d got %v, want the change to b", rev+1, got)
	}
	rev = b.GetVersion()

	stream, _ = rawWatch(t, c.Endpoint(0), rev+5)
	_, err = stream.Recv()
	if status.Code(err) != codes.FailedPrecondition || !clusterid.IsPDBehind(err) {
		t.Fatalf("a watch from revision %d, PD at %d: %v, want FailedPrecondition %s", rev+5, rev, err, clusterid.ReasonPDBehind)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "wiped or restored") {
		t.Fatalf("the refusal does not say what happened: %s", msg)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = cli.WatchNamespaces(ctx, rev+10, func(*pdpb.WatchNamespacesResponse) error {
		t.Error("a refused watch got a response")
		return nil
	})
	if !clusterid.IsPDBehind(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("pdclient watch from past PD's revision = %v after %v, want the refusal at once", err, time.Since(start))
	}
}
