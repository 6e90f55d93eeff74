package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

func storeByID(stores []*pdpb.StoreStatus, id uint64) *pdpb.StoreStatus {
	for _, s := range stores {
		if s.GetId() == id {
			return s
		}
	}
	return nil
}

func TestRegisterHeartbeatUpDown(t *testing.T) {
	c := pdtest.NewCluster(t, 1, pdtest.WithStoreDownAfter(500*time.Millisecond))
	cli := c.Client()
	ctx := testContext(t)

	stores, err := cli.RegisterStore(ctx, &storepb.StoreInfo{Id: 1, Addr: "127.0.0.1:7001"})
	if err != nil || len(stores) != 1 {
		t.Fatalf("register 1: %v, %v", stores, err)
	}
	if stores, err = cli.RegisterStore(ctx, &storepb.StoreInfo{Id: 2, Addr: "127.0.0.1:7002"}); err != nil || len(stores) != 2 {
		t.Fatalf("register 2: %v, %v", stores, err)
	}
	hb, err := cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 1, AppliedRevision: 7,
		Groups: []*pdpb.GroupStatus{{GroupId: 2, Namespace: "a", Leader: 1}}})
	if err != nil || len(hb.GetStores()) != 2 {
		t.Fatalf("heartbeat: %v, %v", hb, err)
	}
	list, err := cli.ListStores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s1 := storeByID(list, 1)
	if !s1.GetUp() || s1.GetAppliedRevision() != 7 || s1.GetLastHeartbeatUnixNano() == 0 || len(s1.GetGroups()) != 1 {
		t.Fatalf("store 1 = %v", s1)
	}

	// Store 1 keeps heartbeating, store 2 is silent: it goes down.
	pdtest.Eventually(t, 5*time.Second, func() error {
		if _, err := cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 1, AppliedRevision: 7}); err != nil {
			return err
		}
		list, err := cli.ListStores(ctx)
		if err != nil {
			return err
		}
		if !storeByID(list, 1).GetUp() || storeByID(list, 2).GetUp() {
			return fmt.Errorf("stores = %v, want 1 up and 2 down", list)
		}
		return nil
	})
	// A heartbeat brings it back up; one with a new address re-registers it.
	if _, err := cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 2, Addr: "127.0.0.1:7102"}); err != nil {
		t.Fatal(err)
	}
	list, err = cli.ListStores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s2 := storeByID(list, 2); !s2.GetUp() || s2.GetAddr() != "127.0.0.1:7102" {
		t.Fatalf("store 2 after heartbeat with a new address = %v", s2)
	}
	// A heartbeat from an unknown store with its address registers it.
	if hb, err := cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 3, Addr: "127.0.0.1:7003"}); err != nil || len(hb.GetStores()) != 3 {
		t.Fatalf("heartbeat of a new store: %v, %v", hb, err)
	}

	// The addresses are in etcd: a restarted PD still knows them.
	c.Stop(0)
	c.Restart(0)
	c.WaitLeader()
	list, err = c.Client().ListStores(ctx)
	if err != nil || len(list) != 3 || storeByID(list, 2).GetAddr() != "127.0.0.1:7102" {
		t.Fatalf("stores after a restart: %v, %v", list, err)
	}
}

func TestNamespaceRolloutStatus(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	s1 := pdtest.StartFakeStore(t, c.Endpoints(), 1)
	s2 := pdtest.StartFakeStore(t, c.Endpoints(), 2)

	v1 := set(t, cli, "logs", "eventual").GetRecord().GetVersion()
	waitStatus(t, c, "logs", 2, 2, "active")

	// Store 2 lags: the new version is applied by one of two, switching.
	s2.Freeze()
	v2 := set(t, cli, "logs", "strong").GetRecord().GetVersion()
	s1.WaitApplied(t, v2)
	waitStatus(t, c, "logs", 1, 2, "switching")
	if s2.Applied() < v1 || s2.Applied() >= v2 {
		t.Fatalf("frozen store applied %d", s2.Applied())
	}
	s2.Unfreeze()
	waitStatus(t, c, "logs", 2, 2, "active")

	// A store that reports the namespace switching keeps it switching.
	s1.SetSwitching("logs", true)
	waitStatus(t, c, "logs", 2, 2, "switching")
	s1.SetSwitching("logs", false)
	waitStatus(t, c, "logs", 2, 2, "active")

	// A store that goes down no longer counts.
	s2.Freeze()
	set(t, cli, "logs", "eventual")
	waitStatus(t, c, "logs", 1, 2, "switching")
	s2.Stop()
	waitStatus(t, c, "logs", 1, 1, "active")
}

func waitStatus(t *testing.T, c *pdtest.Cluster, ns string, applied, up uint32, state string) {
	t.Helper()
	cli := c.Client()
	pdtest.Eventually(t, 10*time.Second, func() error {
		st, err := cli.GetNamespace(testContext(t), ns, false)
		if err != nil {
			return err
		}
		if st.GetAppliedStores() != applied || st.GetUpStores() != up || st.GetState() != state {
			return fmt.Errorf("%s: %d/%d %s, want %d/%d %s", ns, st.GetAppliedStores(), st.GetUpStores(), st.GetState(), applied, up, state)
		}
		return nil
	})
}
