package store_test

// Switch steps that reach a store from the network are checked against the
// namespace's row before they are proposed: the epoch must be the one the
// table decided, and a fence's timestamp is stamped inside the group, never
// taken from the caller.

import (
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/security"
	"github.com/rdb-project/rdb/store/storetest"
)

// internalClient calls store i's internal service as a peer of its
// cluster would (plaintext, naming the cluster).
func internalClient(t *testing.T, c *storetest.Cluster, i int) storepb.StoreInternalClient {
	t.Helper()
	return storepb.NewStoreInternalClient(storetest.DialPeer(t, c.Addr(i), security.Files{}, c.ClusterID()))
}

// TestForeignSwitchStepsAreRefused: a fence with a caller's timestamp (far
// in the future) or with an epoch the table never decided, and a load or
// activation under a foreign epoch, are refused; the namespace keeps
// serving CAS, and the store's clock is not pushed ahead.
func TestForeignSwitchStepsAreRefused(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	row, _ := c.Store(0).NamespaceRow("default")
	group, epoch := row.GetGroupId(), row.GetEpoch()
	future := time.Now().Add(time.Hour).UnixNano()
	ic := internalClient(t, c, 0)
	for _, tc := range []struct {
		name string
		cmd  *storepb.GroupCommand
	}{
		{"fence with a future timestamp", &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{
			Epoch: epoch + 1, Ts: &storepb.Timestamp{WallTime: future, StoreId: 1}}}}},
		{"fence with a huge epoch", &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{Epoch: math.MaxUint64}}}},
		{"fence of the next epoch before the table has it", &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Fence{Fence: &storepb.Fence{Epoch: epoch + 1}}}},
		{"load of a foreign epoch", &storepb.GroupCommand{Cmd: &storepb.GroupCommand_LoadBegin{LoadBegin: &storepb.LoadBegin{Epoch: epoch + 5, LoadId: 7}}}},
		{"activation of a foreign epoch", &storepb.GroupCommand{Cmd: &storepb.GroupCommand_Activate{Activate: &storepb.Activate{Epoch: epoch + 5}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ic.GroupPropose(ctxT(t, 5*time.Second), &storepb.GroupProposeRequest{GroupId: group, Command: tc.cmd})
			if code := status.Code(err); code != codes.InvalidArgument && code != codes.FailedPrecondition {
				t.Fatalf("GroupPropose = %v, want InvalidArgument or FailedPrecondition", err)
			}
			if _, err := c.Cas(1).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: tc.name, Value: "v"}); err != nil {
				t.Fatalf("CAS on default after the refused step: %v", err)
			}
		})
	}
	// No store's clock moved to the caller's timestamp: a raw write is
	// stamped near the present.
	for i := range 3 {
		resp, err := c.Raw(i).RawPut(ctxT(t, 5*time.Second), &kvrpc.RawPutRequest{Namespace: "logs", Key: "k", Value: "v"})
		if err != nil {
			t.Fatal(err)
		}
		if ahead := time.Duration(resp.GetTimestamp().GetWallTime() - time.Now().UnixNano()); ahead > time.Minute {
			t.Fatalf("store %d stamps raw writes %v in the future", i+1, ahead)
		}
	}
}
