package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// rawWatch opens a WatchNamespaces stream on one member, without the
// client library's reconnection.
func rawWatch(t *testing.T, endpoint string, start uint64) (grpc.ServerStreamingClient[pdpb.WatchNamespacesResponse], context.CancelFunc) {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, pdclient.DialOptions(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := pdpb.NewPDClient(conn).WatchNamespaces(ctx, &pdpb.WatchNamespacesRequest{StartRevision: start})
	if err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

// recvChange receives until a response with records (skipping progress
// reports).
func recvChange(t *testing.T, stream grpc.ServerStreamingClient[pdpb.WatchNamespacesResponse]) *pdpb.WatchNamespacesResponse {
	t.Helper()
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if len(resp.GetRecords()) > 0 || resp.GetReload() {
			return resp
		}
	}
}

func TestWatchDeliversChangesInOrder(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	first := set(t, cli, "a", "eventual").GetRecord()

	stream, _ := rawWatch(t, c.Endpoint(0), 0)
	table := recvChange(t, stream)
	if !table.GetReload() || len(table.GetRecords()) != 1 || table.GetRevision() < first.GetVersion() ||
		table.GetRecords()[0].GetVersion() != first.GetVersion() {
		t.Fatalf("first response = %v, want the whole table", table)
	}

	var want []*storepb.NamespaceRecord
	for i := range 10 {
		mode := []string{"strong", "eventual"}[i%2]
		want = append(want, set(t, cli, fmt.Sprintf("ns%d", i%3), mode).GetRecord())
	}
	prev := table.GetRevision()
	for i, w := range want {
		resp := recvChange(t, stream)
		if resp.GetReload() || len(resp.GetRecords()) != 1 {
			t.Fatalf("change %d: %v", i, resp)
		}
		got := resp.GetRecords()[0]
		if got.GetName() != w.GetName() || got.GetMode() != w.GetMode() || got.GetVersion() != w.GetVersion() ||
			resp.GetRevision() != w.GetVersion() || resp.GetRevision() <= prev {
			t.Fatalf("change %d: got %v at %d, want %v after %d", i, got, resp.GetRevision(), w, prev)
		}
		prev = resp.GetRevision()
	}

	// Resuming from a revision sends the changes from it, inclusive.
	resumed, _ := rawWatch(t, c.Endpoint(0), want[5].GetVersion())
	for i, w := range want[5:] {
		resp := recvChange(t, resumed)
		if resp.GetReload() || resp.GetRevision() != w.GetVersion() {
			t.Fatalf("resumed change %d: %v, want version %d", i, resp, w.GetVersion())
		}
	}
}

func TestWatchReloadsAfterCompaction(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	old := set(t, cli, "a", "eventual").GetRecord()
	set(t, cli, "b", "strong")
	last := set(t, cli, "a", "strong").GetRecord()

	etcd := c.EtcdClient()
	if _, err := etcd.Compact(testContext(t), int64(last.GetVersion())); err != nil {
		t.Fatal(err)
	}
	stream, _ := rawWatch(t, c.Endpoint(0), old.GetVersion()+1)
	resp := recvChange(t, stream)
	if !resp.GetReload() || len(resp.GetRecords()) != 2 || resp.GetRevision() < last.GetVersion() {
		t.Fatalf("watch from a compacted revision: %v, want the whole table again", resp)
	}
	// And it goes on from there.
	next := set(t, cli, "c", "eventual").GetRecord()
	if resp := recvChange(t, stream); resp.GetReload() || resp.GetRevision() != next.GetVersion() {
		t.Fatalf("after the reload: %v, want version %d", resp, next.GetVersion())
	}

	// The client library reloads too, and a fake store ends with the table.
	// Its arrival gives a's group (made with no store up) its voters, a
	// newer row: the store ends with that one.
	f := pdtest.StartFakeStore(t, c.Endpoints(), 1)
	f.WaitApplied(t, next.GetVersion())
	pdtest.Eventually(t, 10*time.Second, func() error {
		want := get(t, cli, "a").GetRecord()
		if rec, ok := f.Record("a"); !ok || rec.GetMode() != "strong" || rec.GetVersion() < last.GetVersion() ||
			!proto.Equal(rec, want) {
			return fmt.Errorf("fake store has a = %v, PD has %v", rec, want)
		}
		return nil
	})
}

func TestWatchReportsProgress(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	set(t, cli, "a", "eventual")
	stream, _ := rawWatch(t, c.Endpoint(0), 0)
	table := recvChange(t, stream)

	// A write outside the table moves the revision; an idle watch learns it.
	if _, err := cli.RegisterStore(testContext(t), &storepb.StoreInfo{Id: 1, Addr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetRecords()) != 0 {
			t.Fatalf("unexpected change %v", resp)
		}
		if resp.GetRevision() > table.GetRevision() {
			return
		}
	}
}
