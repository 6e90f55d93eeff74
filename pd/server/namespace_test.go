package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func set(t *testing.T, cli *pdclient.Client, name, mode string) *pdpb.SetNamespaceModeResponse {
	t.Helper()
	resp, err := cli.SetNamespaceMode(testContext(t), &pdpb.SetNamespaceModeRequest{Name: name, Mode: mode})
	if err != nil {
		t.Fatalf("set %s %s: %v", name, mode, err)
	}
	return resp
}

func get(t *testing.T, cli *pdclient.Client, name string) *pdpb.NamespaceStatus {
	t.Helper()
	st, err := cli.GetNamespace(testContext(t), name, false)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return st
}

func TestSetGetList(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	ctx := testContext(t)

	logs := set(t, cli, "logs", "eventual")
	if !logs.GetChanged() || logs.GetRecord().GetMode() != "eventual" || logs.GetRecord().GetFromDefault() ||
		logs.GetRecord().GetEpoch() != 1 || logs.GetRecord().GetGroupId() != 0 {
		t.Fatalf("set logs eventual: %v", logs)
	}
	users := set(t, cli, "users", "strong")
	if users.GetRecord().GetVersion() <= logs.GetRecord().GetVersion() {
		t.Fatalf("versions do not grow: %d then %d", logs.GetRecord().GetVersion(), users.GetRecord().GetVersion())
	}

	if got := get(t, cli, "logs"); !proto.Equal(got.GetRecord(), logs.GetRecord()) || got.GetState() != "active" {
		t.Fatalf("get logs = %v, want record %v", got, logs.GetRecord())
	}
	list, err := cli.ListNamespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range list.GetNamespaces() {
		names = append(names, st.GetRecord().GetName())
	}
	if strings.Join(names, ",") != "logs,users" {
		t.Fatalf("list = %v", names)
	}
	if list.GetRevision() < users.GetRecord().GetVersion() {
		t.Fatalf("list revision %d is older than a row it shows (%d)", list.GetRevision(), users.GetRecord().GetVersion())
	}
}

func TestValidation(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	ctx := testContext(t)

	for _, tc := range []struct {
		name, ns, mode string
		code           codes.Code
		msg            string
	}{
		{"empty name", "", "strong", codes.InvalidArgument, "invalid namespace name"},
		{"upper case", "Logs", "strong", codes.InvalidArgument, "invalid namespace name"},
		{"slash", "a/b", "strong", codes.InvalidArgument, "invalid namespace name"},
		{"space", "a b", "strong", codes.InvalidArgument, "invalid namespace name"},
		{"non-ascii", "é", "strong", codes.InvalidArgument, "invalid namespace name"},
		{"too long", strings.Repeat("a", 65), "strong", codes.InvalidArgument, "invalid namespace name"},
		{"empty mode", "logs", "", codes.InvalidArgument, "mode is empty"},
		{"mode case", "logs", "Strong", codes.InvalidArgument, `unknown mode "Strong"`},
		{"unknown mode", "logs", "weak", codes.InvalidArgument, `use "strong" or "eventual"`},
		{"longest name", strings.Repeat("a", 64), "strong", codes.OK, ""},
		{"all characters", "a-z_0-9", "eventual", codes.OK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: tc.ns, Mode: tc.mode})
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}

	if _, err := cli.GetNamespace(ctx, "Bad", true); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("get bad name: %v", err)
	}
	if _, err := cli.GetNamespace(ctx, "missing", false); status.Code(err) != codes.NotFound {
		t.Fatalf("get missing: %v", err)
	}
	for _, info := range []*storepb.StoreInfo{nil, {Id: 0, Addr: "127.0.0.1:1"}, {Id: 1, Addr: ""}, {Id: 1, Addr: "nohostport"}} {
		if _, err := cli.RegisterStore(ctx, info); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("register %v: %v", info, err)
		}
	}
	if _, err := cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("heartbeat of store 0: %v", err)
	}
	if _, err := cli.StoreHeartbeat(ctx, &pdpb.StoreHeartbeatRequest{StoreId: 9}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("heartbeat of an unregistered store without addr: %v", err)
	}
}

func TestSetIsIdempotent(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()

	first := set(t, cli, "logs", "eventual")
	again := set(t, cli, "logs", "eventual")
	if again.GetChanged() || !proto.Equal(again.GetRecord(), first.GetRecord()) {
		t.Fatalf("setting the same mode again: %v, want unchanged %v", again, first.GetRecord())
	}

	// A switch bumps the epoch; switching back does too.
	strong := set(t, cli, "logs", "strong")
	if !strong.GetChanged() || strong.GetRecord().GetEpoch() != 2 || strong.GetRecord().GetVersion() <= first.GetRecord().GetVersion() {
		t.Fatalf("switch to strong: %v", strong)
	}
	// force on a pending switch is a change; repeating it is not.
	forced, err := cli.SetNamespaceMode(testContext(t), &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "strong", Force: true})
	if err != nil || !forced.GetChanged() || !forced.GetRecord().GetForce() || forced.GetRecord().GetEpoch() != 2 {
		t.Fatalf("force on the same mode: %v, %v", forced, err)
	}
	forcedAgain, err := cli.SetNamespaceMode(testContext(t), &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "strong", Force: true})
	if err != nil || forcedAgain.GetChanged() || forcedAgain.GetRecord().GetVersion() != forced.GetRecord().GetVersion() {
		t.Fatalf("force again: %v, %v", forcedAgain, err)
	}
}

func TestOnlyIfAbsent(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	ctx := testContext(t)

	seed := func(mode string) *pdpb.SetNamespaceModeResponse {
		resp, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: mode, OnlyIfAbsent: true})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	created := seed("eventual")
	if !created.GetChanged() || created.GetRecord().GetMode() != "eventual" || created.GetRecord().GetFromDefault() {
		t.Fatalf("seed of a missing namespace: %v", created)
	}
	kept := seed("strong")
	if kept.GetChanged() || !proto.Equal(kept.GetRecord(), created.GetRecord()) {
		t.Fatalf("seed of an existing namespace changed it: %v", kept)
	}
}

func TestGetCreatesDefault(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	ctx := testContext(t)
	pdtest.StartFakeStore(t, c.Endpoints(), 1)
	pdtest.StartFakeStore(t, c.Endpoints(), 2)

	st, err := cli.GetNamespace(ctx, "orders", true)
	if err != nil {
		t.Fatal(err)
	}
	rec := st.GetRecord()
	if rec.GetMode() != "strong" || !rec.GetFromDefault() || rec.GetEpoch() != 1 || rec.GetGroupId() != 2 ||
		len(rec.GetGroupPeers()) != 2 || rec.GetVersion() == 0 {
		t.Fatalf("created = %v", rec)
	}
	if again, err := cli.GetNamespace(ctx, "orders", true); err != nil || !proto.Equal(again.GetRecord(), rec) {
		t.Fatalf("second get with create: %v, %v", again, err)
	}

	// Configuring it in the mode it has only clears from_default: same epoch
	// and group.
	conf := set(t, cli, "orders", "strong")
	if !conf.GetChanged() || conf.GetRecord().GetFromDefault() || conf.GetRecord().GetEpoch() != 1 ||
		conf.GetRecord().GetGroupId() != 2 || conf.GetRecord().GetVersion() <= rec.GetVersion() {
		t.Fatalf("configure a default namespace: %v", conf)
	}
	if again := set(t, cli, "orders", "strong"); again.GetChanged() {
		t.Fatalf("configured twice: %v", again)
	}
}

func TestGroupAllocation(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	pdtest.StartFakeStore(t, c.Endpoints(), 3)
	pdtest.StartFakeStore(t, c.Endpoints(), 1)

	ev := set(t, cli, "logs", "eventual").GetRecord()
	if ev.GetGroupId() != 0 || len(ev.GetGroupPeers()) != 0 {
		t.Fatalf("an eventual namespace got a group: %v", ev)
	}
	st := set(t, cli, "logs", "strong").GetRecord()
	if st.GetGroupId() != 2 || !equalIDs(st.GetGroupPeers(), 1, 3) {
		t.Fatalf("first strong namespace: %v, want group 2 with peers [1 3]", st)
	}
	// A new store does not join existing groups, but is a peer of new ones.
	pdtest.StartFakeStore(t, c.Endpoints(), 2)
	back := set(t, cli, "logs", "eventual").GetRecord()
	if back.GetGroupId() != 2 || back.GetEpoch() != 3 {
		t.Fatalf("back to eventual: %v, want group 2 kept and epoch 3", back)
	}
	again := set(t, cli, "logs", "strong").GetRecord()
	if again.GetGroupId() != 2 || !equalIDs(again.GetGroupPeers(), 1, 3) || again.GetEpoch() != 4 {
		t.Fatalf("strong again: %v, want its group 2 with peers [1 3]", again)
	}
	other := set(t, cli, "users", "strong").GetRecord()
	if other.GetGroupId() != 3 || !equalIDs(other.GetGroupPeers(), 1, 2, 3) {
		t.Fatalf("second strong namespace: %v, want group 3 with peers [1 2 3]", other)
	}
}

// equalIDs compares sets of store ids: PD lists a group's first voters
// with the one to campaign first, not in order.
func equalIDs(got []uint64, want ...uint64) bool {
	if len(got) != len(want) {
		return false
	}
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// A row's version is the etcd revision that wrote it.
func TestVersionsAreEtcdRevisions(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	etcd := c.EtcdClient()
	ctx := testContext(t)

	var last uint64
	for i, mode := range []string{"eventual", "strong", "eventual", "strong"} {
		rec := set(t, cli, "logs", mode).GetRecord()
		resp, err := etcd.Get(ctx, server.NamespaceKey("logs"))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || uint64(resp.Kvs[0].ModRevision) != rec.GetVersion() {
			t.Fatalf("change %d: version %d, etcd says %v", i, rec.GetVersion(), resp.Kvs)
		}
		if rec.GetVersion() <= last {
			t.Fatalf("change %d: version %d after %d", i, rec.GetVersion(), last)
		}
		last = rec.GetVersion()
	}
}
