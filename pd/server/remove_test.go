package server_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

// TestRemoveStore: a store being removed that holds nothing ends removed;
// its id is refused for good, by registration and by heartbeats; removing
// an unknown store is NotFound; replica counts are checked.
func TestRemoveStore(t *testing.T) {
	c := pdtest.NewCluster(t, 1, func(_ int, cfg *server.Config) { cfg.ScheduleInterval = 100 * time.Millisecond })
	cli := c.Client()
	ctx := testContext(t)
	if _, err := cli.RegisterStore(ctx, &storepb.StoreInfo{Id: 4, Addr: "127.0.0.1:7004"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.RemoveStore(ctx, 9); status.Code(err) != codes.NotFound {
		t.Fatalf("removing an unknown store: %v", err)
	}
	st, err := cli.RemoveStore(ctx, 4)
	if err != nil || (st.GetState() != server.StoreRemoving && st.GetState() != server.StoreRemoved) {
		t.Fatalf("remove store 4: %v, %v", st, err)
	}
	pdtest.Eventually(t, 10*time.Second, func() error {
		list, err := cli.ListStores(ctx)
		if err != nil {
			return err
		}
		if s := storeByID(list, 4); s.GetState() != server.StoreRemoved {
			return fmt.Errorf("store 4 is %s", s.GetState())
		}
		return nil
	})
	_, err = cli.RegisterStore(ctx, &storepb.StoreInfo{Id: 4, Addr: "127.0.0.1:7004"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a removed store registers again: %v", err)
	}
	_, err = cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 4, Addr: "127.0.0.1:7004"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a removed store heartbeats: %v", err)
	}
	for _, n := range []uint32{0, 8} {
		if _, err := cli.SetNamespaceReplicas(ctx, "default", n); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("set-replicas %d: %v", n, err)
		}
	}
	if _, err := cli.GetNamespace(ctx, "default", true); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.SetNamespaceReplicas(ctx, "default", 4); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an even count for a strong namespace: %v", err)
	}
	if r, err := cli.SetNamespaceReplicas(ctx, "default", 5); err != nil || r.GetRecord().GetReplicationFactor() != 5 {
		t.Fatalf("set-replicas 5: %v, %v", r, err)
	}
}
