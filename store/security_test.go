package store_test

// A cluster that faces a network: with TLS, certificates decide who may
// call what; with or without, a crafted message cannot stop a store.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/security"
	"github.com/rdb-project/rdb/store/storetest"
)

func codeOf(err error) codes.Code { return status.Code(err) }

func TestTLSIdentitiesAndRoles(t *testing.T) {
	certs := storetest.NewCerts(t, 3)
	c := storetest.NewCluster(t, 3, storetest.Options{Certs: certs, NamespaceModes: map[string]string{"logs": "eventual"}})
	addr := c.Addr(0)
	ctx := func() context.Context { return ctxT(t, 5*time.Second) }

	t.Run("plaintext refused", func(t *testing.T) {
		conn := storetest.DialWith(t, addr, insecure.NewCredentials())
		_, err := raftpb.NewRaftServiceClient(conn).GetMode(ctxT(t, 2*time.Second), &raftpb.GetModeRequest{Namespace: "default"})
		if err == nil {
			t.Fatal("a plaintext client was served by a TLS store")
		}
	})
	t.Run("no client certificate refused", func(t *testing.T) {
		files := certs.Client("app")
		cfg, err := files.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = nil
		conn := storetest.DialWith(t, addr, credentials.NewTLS(cfg))
		_, err = raftpb.NewRaftServiceClient(conn).GetMode(ctxT(t, 2*time.Second), &raftpb.GetModeRequest{Namespace: "default"})
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
	})

	app := storetest.Dial(t, addr, certs.Client("app"))
	admin := storetest.Dial(t, addr, certs.Client("admin"))
	t.Run("client uses the KV APIs", func(t *testing.T) {
		if _, err := kvrpc.NewKvCasClient(app).CompareAndSwap(ctx(), &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v"}); err != nil {
			t.Fatal(err)
		}
		if _, err := kvrpc.NewKvRawClient(app).RawPut(ctx(), &kvrpc.RawPutRequest{Namespace: "logs", Key: "k", Value: "v"}); err != nil {
			t.Fatal(err)
		}
		if _, err := raftpb.NewRaftServiceClient(app).GetMode(ctx(), &raftpb.GetModeRequest{Namespace: "logs"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client cannot change a mode", func(t *testing.T) {
		_, err := raftpb.NewRaftServiceClient(app).UpdateNamespaceMode(ctx(), &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"})
		if codeOf(err) != codes.PermissionDenied {
			t.Fatalf("UpdateNamespaceMode as a client: %v, want PermissionDenied", err)
		}
		t.Logf("refusal: %v", err)
	})
	t.Run("client cannot call the internal service", func(t *testing.T) {
		ic := storepb.NewStoreInternalClient(app)
		if _, err := ic.SwitchStatus(ctx(), &storepb.SwitchStatusRequest{Namespace: "logs"}); codeOf(err) != codes.PermissionDenied {
			t.Fatalf("SwitchStatus as a client: %v, want PermissionDenied", err)
		}
		if _, err := ic.Join(ctx(), &storepb.JoinRequest{StoreId: 9, Addr: "127.0.0.1:9"}); codeOf(err) != codes.PermissionDenied {
			t.Fatalf("Join as a client: %v, want PermissionDenied", err)
		}
	})
	t.Run("admin changes a mode", func(t *testing.T) {
		if _, err := raftpb.NewRaftServiceClient(admin).UpdateNamespaceMode(ctx(), &raftpb.UpdateNamespaceModeRequest{Namespace: "flipme", Mode: "eventual"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a store speaks only as itself", func(t *testing.T) {
		as2 := storetest.DialPeer(t, addr, certs.Store(2), c.ClusterID())
		ic := storepb.NewStoreInternalClient(as2)
		if _, err := ic.Join(ctx(), &storepb.JoinRequest{StoreId: 3, Addr: "127.0.0.1:9"}); codeOf(err) != codes.PermissionDenied {
			t.Fatalf("store 2 joining as store 3: %v, want PermissionDenied", err)
		}
		if _, err := ic.Repair(ctx(), &storepb.RepairRequest{FromStore: 3, Namespace: "logs"}); codeOf(err) != codes.PermissionDenied {
			t.Fatalf("store 2 repairing as store 3: %v, want PermissionDenied", err)
		}
		stream, err := ic.Raft(ctx())
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(&storepb.RaftBatch{FromStore: 3, ToStore: 1})
		if _, err := stream.CloseAndRecv(); codeOf(err) != codes.PermissionDenied {
			t.Fatalf("store 2 sending Raft as store 3: %v, want PermissionDenied", err)
		}
		// As itself, the same calls are served.
		if _, err := ic.SwitchStatus(ctx(), &storepb.SwitchStatusRequest{Namespace: "logs"}); err != nil {
			t.Fatal(err)
		}
	})
	// The cluster still works after every refusal.
	if _, err := kvrpc.NewKvCasClient(app).CompareAndSwap(ctx(), &kvrpc.CasRequest{Namespace: "default", Key: "after", Value: "v"}); err != nil {
		t.Fatal(err)
	}
}

// TestCraftedHeartbeatDoesNotStopTheStore: a Raft batch with a heartbeat
// of a huge term and commit index (raft would panic on it: "tocommit is
// out of range") is dropped, with or without TLS, and the store serves on.
func TestCraftedHeartbeatDoesNotStopTheStore(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			opts := storetest.Options{Configure: func(i int, cfg *store.Config) {
				id := cfg.StoreID
				cfg.OnFatal = func(err error) { t.Errorf("store %d stopped: %v", id, err) }
			}}
			var peer security.Files
			if secure {
				opts.Certs = storetest.NewCerts(t, 3)
				peer = opts.Certs.Store(2)
			}
			c := storetest.NewCluster(t, 3, opts)
			row, _ := c.Store(0).NamespaceRow("default")
			ic := storepb.NewStoreInternalClient(storetest.DialPeer(t, c.Addr(0), peer, c.ClusterID()))
			for _, m := range []*eraftpb.Message{
				{Type: eraftpb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1 << 40)), Commit: new(uint64(1 << 40))},
				{Type: eraftpb.MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1 << 40)), Commit: new(uint64(1 << 40)), Index: new(uint64(1 << 39))},
			} {
				data, err := proto.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				stream, err := ic.Raft(ctxT(t, 5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if err := stream.Send(&storepb.RaftBatch{FromStore: 2, ToStore: 1, Messages: []*storepb.RaftMessage{{GroupId: row.GetGroupId(), Data: data}}}); err != nil {
					t.Fatal(err)
				}
				_, _ = stream.CloseAndRecv()
			}
			for i := range 3 {
				storetest.Eventually(t, 10*time.Second, func() error {
					_, err := c.Cas(i).CompareAndSwap(ctxT(t, 2*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: fmt.Sprint("after-", i), Value: "v"})
					return err
				}, "store %d serves after the crafted heartbeat", i+1)
			}
		})
	}
}

// TestTLSPDMode: PD and three PD-mode stores, all with TLS: stores
// register and follow the table, the PD leader drives a switch (it dials
// the stores with its certificate), and a store forwards an admin's mode
// change to PD.
func TestTLSPDMode(t *testing.T) {
	certs := storetest.NewCerts(t, 3, "pd1")
	pd := pdtest.NewCluster(t, 1, pdtest.WithTLS(certs),
		pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }))
	c := storetest.NewCluster(t, 3, storetest.Options{
		PD: strings.Split(pd.Endpoints(), ","), Certs: certs,
		NamespaceModes: map[string]string{"logs": "eventual"},
	})
	if _, err := c.Cas(1).CompareAndSwap(ctxT(t, 10*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Raw(2).RawPut(ctxT(t, 10*time.Second), &kvrpc.RawPutRequest{Namespace: "logs", Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
	// Through a store (as admin: the cluster's connections are), to PD.
	if _, err := c.Modes(0).UpdateNamespaceMode(ctxT(t, 10*time.Second), &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"}); err != nil {
		t.Fatal(err)
	}
	waitModeEverywhere(t, c, "logs", "strong", 20*time.Second)
	storetest.Eventually(t, 20*time.Second, func() error {
		resp, err := c.Cas(0).Get(ctxT(t, 2*time.Second), &kvrpc.GetRequest{Namespace: "logs", Key: "k"})
		if err != nil {
			return err
		}
		if resp.GetValue() != "v" {
			return fmt.Errorf("logs/k = %v", resp)
		}
		return nil
	}, "the switched namespace holds the raw write")
}

// TestLimits: a client request above the client limit is refused before
// it is handled, and a static-mode cluster creates at most
// --max-namespaces namespaces.
func TestLimits(t *testing.T) {
	c := storetest.NewCluster(t, 1, storetest.Options{Configure: func(i int, cfg *store.Config) { cfg.MaxNamespaces = 3 }})
	big := strings.Repeat("x", 21<<20)
	_, err := c.Raw(0).RawPut(ctxT(t, 10*time.Second), &kvrpc.RawPutRequest{Namespace: "default", Key: "k", Value: big})
	if codeOf(err) != codes.ResourceExhausted {
		t.Fatalf("a 21 MiB request: %v, want ResourceExhausted", err)
	}
	// default exists; two more fit.
	for _, ns := range []string{"a", "b"} {
		if _, err := c.Modes(0).GetMode(ctxT(t, 5*time.Second), &raftpb.GetModeRequest{Namespace: ns}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Modes(0).GetMode(ctxT(t, 5*time.Second), &raftpb.GetModeRequest{Namespace: "c"})
	if codeOf(err) != codes.ResourceExhausted {
		t.Fatalf("a fourth namespace: %v, want ResourceExhausted", err)
	}
	t.Logf("refusal: %v", err)
	// Existing ones still serve.
	if _, err := c.Cas(0).CompareAndSwap(ctxT(t, 5*time.Second), &kvrpc.CasRequest{Namespace: "a", Key: "k", Value: "v"}); err != nil {
		t.Fatal(err)
	}
}
