package pdclient_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/proto/pdpb"
)

func TestMain(m *testing.M) {
	pdtest.VerifyTestMain(m)
}

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:2379", "127.0.0.1:2379", true},
		{" http://127.0.0.1:2379 ", "127.0.0.1:2379", true},
		{"http://pd1:2379/", "pd1:2379", true},
		{"https://pd1:2379", "pd1:2379", true},
		{"ftp://pd1:2379", "", false},
		{"unix:///tmp/pd.sock", "", false},
		{"", "", false},
		{"pd1", "", false},
		{"http://pd1:2379/v3", "", false},
	} {
		got, err := pdclient.Target(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Target(%q) = %q, %v", tc.in, got, err)
		}
	}
	if _, err := pdclient.New(" , "); err == nil {
		t.Error("New with no endpoint succeeded")
	}
}

// deadEndpoint is a loopback address nobody listens on.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestFailsOverToAnswering(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli, err := pdclient.New(deadEndpoint(t) + ",http://" + c.Endpoint(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "eventual"}); err != nil {
		t.Fatal(err)
	}
	// Errors that are answers are not retried elsewhere.
	if _, err := cli.GetNamespace(ctx, "nope", false); status.Code(err) != codes.NotFound {
		t.Fatalf("get missing: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	cli, err := pdclient.New(deadEndpoint(t) + "," + deadEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = cli.ListNamespaces(ctx)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no PD member at") {
		t.Fatalf("all members down: %v", err)
	}
}

// The watch helper delivers every change once the stream it was on breaks:
// it resumes on another member from the last revision it handled.
func TestWatchResumesOnAnotherMember(t *testing.T) {
	c := pdtest.NewCluster(t, 3)
	cli := c.Client(pdclient.WithAttemptTimeout(time.Second))
	// The watcher's list starts with member 0, so its stream is there.
	var order []string
	for i := range c.Size() {
		order = append(order, c.Endpoint(i))
	}
	watcher := c.ClientOf(strings.Join(order, ","))

	var mu sync.Mutex
	var versions []uint64
	reloads := 0
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = watcher.WatchNamespaces(ctx, 0, func(resp *pdpb.WatchNamespacesResponse) error {
			mu.Lock()
			defer mu.Unlock()
			if resp.GetReload() {
				reloads++
			}
			for _, r := range resp.GetRecords() {
				versions = append(versions, r.GetVersion())
			}
			return nil
		})
	})
	defer func() { cancel(); wg.Wait() }()

	set := func(i int) uint64 {
		t.Helper()
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		resp, err := cli.SetNamespaceMode(sctx, &pdpb.SetNamespaceModeRequest{Name: fmt.Sprintf("ns%d", i), Mode: "eventual"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRecord().GetVersion()
	}
	var want []uint64
	for i := range 3 {
		want = append(want, set(i))
	}
	c.Stop(0)
	for i := 3; i < 6; i++ {
		want = append(want, set(i))
	}
	pdtest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		seen := map[uint64]bool{}
		for _, v := range versions {
			seen[v] = true
		}
		for _, v := range want {
			if !seen[v] {
				return fmt.Errorf("version %d not delivered (got %v)", v, versions)
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(versions); i++ {
		if versions[i] < versions[i-1] {
			t.Fatalf("versions out of order: %v", versions)
		}
	}
	if reloads != 1 {
		t.Fatalf("%d whole-table responses, want 1 (resuming must not reload)", reloads)
	}
}
