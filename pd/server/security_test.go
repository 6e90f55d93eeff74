package server_test

// PD with TLS: only stores, PD members and admins may use its client port,
// and only PD members and admins etcd's own API.

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/security"
	"github.com/rdb-project/rdb/store/storetest"
)

func etcdAs(t *testing.T, endpoint string, files security.Files) *clientv3.Client {
	t.Helper()
	tc, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestTLSRoles(t *testing.T) {
	certs := storetest.NewCerts(t, 3, "pd1")
	c := pdtest.NewCluster(t, 1, pdtest.WithTLS(certs))
	ep := c.Endpoint(0)
	ctx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	pdAs := func(files security.Files) pdpb.PDClient {
		return pdpb.NewPDClient(storetest.Dial(t, ep, files))
	}

	t.Run("plaintext refused", func(t *testing.T) {
		conn := storetest.DialWith(t, ep, insecure.NewCredentials())
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := pdpb.NewPDClient(conn).GetMembers(cctx, &pdpb.GetMembersRequest{}); err == nil {
			t.Fatal("a plaintext client was served")
		}
	})
	t.Run("a client may not use PD", func(t *testing.T) {
		_, err := pdAs(certs.Client("app")).ListNamespaces(ctx(), &pdpb.ListNamespacesRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("ListNamespaces as a client: %v, want PermissionDenied", err)
		}
	})
	for _, who := range []struct {
		name  string
		files security.Files
	}{{"client", certs.Client("app")}, {"store", certs.Store(2)}} {
		t.Run("a "+who.name+" may not write etcd keys", func(t *testing.T) {
			_, err := etcdAs(t, ep, who.files).Put(ctx(), "/rdb/namespaces/evil", "x")
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("etcd Put as a %s: %v, want PermissionDenied", who.name, err)
			}
		})
	}
	t.Run("a store registers only as itself", func(t *testing.T) {
		pd := pdAs(certs.Store(2))
		_, err := pd.RegisterStore(ctx(), &pdpb.RegisterStoreRequest{Store: &storepb.StoreInfo{Id: 3, Addr: "127.0.0.1:9"}})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("store 2 registering as store 3: %v, want PermissionDenied", err)
		}
		if _, err := pd.RegisterStore(ctx(), &pdpb.RegisterStoreRequest{Store: &storepb.StoreInfo{Id: 2, Addr: "127.0.0.1:9"}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an admin operates", func(t *testing.T) {
		resp, err := c.Client().SetNamespaceMode(ctx(), &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "eventual"})
		if err != nil || !resp.GetChanged() {
			t.Fatalf("SetNamespaceMode as admin: %v, %v", resp, err)
		}
	})
}

// TestMaxNamespaces: PD creates at most --max-namespaces namespaces and
// answers ResourceExhausted past it; existing ones still change.
func TestMaxNamespaces(t *testing.T) {
	c := pdtest.NewCluster(t, 1, func(_ int, cfg *server.Config) { cfg.MaxNamespaces = 2 })
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ns := range []string{"a", "b"} {
		if _, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: "eventual"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "c", Mode: "eventual"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a third namespace: %v, want ResourceExhausted", err)
	}
	if _, err := cli.GetNamespace(ctx, "d", true); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a namespace created by name: %v, want ResourceExhausted", err)
	}
	if _, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "a", Mode: "strong"}); err != nil {
		t.Fatalf("switching an existing namespace: %v", err)
	}
}
