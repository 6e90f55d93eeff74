package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
)

// staticCluster starts three rdb-server processes from one directory
// exactly as the quickstart does (on free ports).
func staticCluster(t *testing.T) ([]*proc, []string) {
	bin := binaries(t) + "/rdb-server"
	dir := t.TempDir()
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	procs := []*proc{
		startProc(t, dir, bin, "--store-id", "1", "--addr", addrs[0], "--namespace-mode", "logs=eventual"),
		startProc(t, dir, bin, "--store-id", "2", "--addr", addrs[1], "--peer", "1="+addrs[0], "--namespace-mode", "logs=eventual"),
		startProc(t, dir, bin, "--store-id", "3", "--addr", addrs[2], "--peer", "1="+addrs[0], "--namespace-mode", "logs=eventual"),
	}
	for _, a := range addrs {
		c := clientsOf(t, a)
		eventually(t, 20*time.Second, func() error {
			resp, err := c.modes.ListNamespaceModes(ctxT(t, time.Second), &raftpb.ListNamespaceModesRequest{})
			if err != nil {
				return err
			}
			for _, m := range resp.GetNamespaces() {
				if m.GetNamespace() == "default" && m.GetState() == "active" {
					return nil
				}
			}
			return fmt.Errorf("default not active yet: %v", resp)
		}, "store at %s is ready", a)
	}
	return procs, addrs
}

// TestQuickstartProcesses runs the quickstart's strong path against three
// rdb-server processes, kills the leader with SIGKILL under load, restarts
// it with the same flags, and checks that every acknowledged write and the
// mode table survived.
func TestQuickstartProcesses(t *testing.T) {
	procs, addrs := staticCluster(t)
	cs := []clients{clientsOf(t, addrs[0]), clientsOf(t, addrs[1]), clientsOf(t, addrs[2])}
	ctx := ctxT(t, 2*time.Minute)

	gm, err := cs[0].modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: "logs"})
	if err != nil || gm.GetMode() != "eventual" || gm.GetFromDefault() {
		t.Fatalf("GetMode(logs) = %v, %v", gm, err)
	}
	up, err := cs[0].modes.UpdateNamespaceMode(ctx, &raftpb.UpdateNamespaceModeRequest{Namespace: "logs", Mode: "strong"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		eventually(t, time.Second, func() error {
			resp, err := cs[i].modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: "logs"})
			if err != nil || resp.GetMode() != "strong" || resp.GetVersion() != up.GetVersion() {
				return fmt.Errorf("%v, %v", resp, err)
			}
			return nil
		}, "store %d agrees on logs=strong", i+1)
	}
	cas, err := cs[0].cas.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "a", Value: "b"})
	if err != nil || !cas.GetSuccess() {
		t.Fatalf("CAS = %v, %v", cas, err)
	}
	for i := range 3 {
		g, err := cs[i].cas.Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: "a"})
		if err != nil || g.GetValue() != "b" {
			t.Fatalf("Get on store %d = %v, %v", i+1, g, err)
		}
	}

	// Load from every store while the leader of "default" is killed.
	acked := sync.Map{} // key -> value
	var okCount, failCount atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("w%d-%d", w, n), fmt.Sprintf("v%d", n)
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				r, err := cs[w%3].cas.CompareAndSwap(cctx, &kvrpc.CasRequest{Namespace: "default", Key: key, Value: val})
				cancel()
				if err == nil && r.GetSuccess() {
					acked.Store(key, val)
					okCount.Add(1)
				} else {
					failCount.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	eventually(t, 10*time.Second, func() error {
		if okCount.Load() < 100 {
			return fmt.Errorf("%d writes", okCount.Load())
		}
		return nil
	}, "writes flow")
	leader := leaderOf(t, cs)
	procs[leader].kill(syscall.SIGKILL)
	killedAt, before := time.Now(), okCount.Load()
	eventually(t, 10*time.Second, func() error {
		if okCount.Load() < before+100 {
			return fmt.Errorf("%d writes since the kill", okCount.Load()-before)
		}
		return nil
	}, "the cluster serves again after the leader is killed")
	t.Logf("leader (store %d) killed; 100 more writes acknowledged within %v", leader+1, time.Since(killedAt))
	procs[leader].restart(t)
	eventually(t, 10*time.Second, func() error {
		_, err := cs[leader].modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: "default"})
		return err
	}, "the restarted store serves")
	eventually(t, 10*time.Second, func() error {
		if okCount.Load() < before+300 {
			return fmt.Errorf("%d writes since the kill", okCount.Load()-before)
		}
		return nil
	}, "writes continue after the restart")
	close(stop)
	wg.Wait()

	// Every acknowledged write is on every store, including the restarted
	// one (RawGet on a strong namespace reads the store's own replica).
	n := 0
	acked.Range(func(k, v any) bool {
		n++
		g, err := cs[leader].cas.Get(ctx, &kvrpc.GetRequest{Namespace: "default", Key: k.(string)})
		if err != nil || g.GetValue() != v.(string) {
			t.Errorf("acknowledged %s=%s, Get on restarted store %d = %v, %v", k, v, leader+1, g, err)
			return false
		}
		return true
	})
	eventually(t, 10*time.Second, func() error {
		var missing []string
		acked.Range(func(k, v any) bool {
			g, err := cs[leader].raw.RawGet(ctx, &kvrpc.RawGetRequest{Namespace: "default", Key: k.(string)})
			if err != nil || g.GetValue() != v.(string) {
				missing = append(missing, k.(string))
			}
			return len(missing) < 5
		})
		if len(missing) > 0 {
			return fmt.Errorf("restarted store lacks %v", missing)
		}
		return nil
	}, "the restarted store's replica holds every acknowledged write")
	t.Logf("%d acknowledged writes checked, %d attempts failed during the kill", n, failCount.Load())
	resp, err := cs[leader].modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: "logs"})
	if err != nil || resp.GetMode() != "strong" || resp.GetVersion() != up.GetVersion() {
		t.Fatalf("mode table on the restarted store: %v, %v", resp, err)
	}
}

// leaderOf returns the index of the store that leads the default
// namespace, as the stores report it.
func leaderOf(t *testing.T, cs []clients) int {
	t.Helper()
	leader := -1
	eventually(t, 5*time.Second, func() error {
		for _, c := range cs {
			resp, err := c.modes.GetMode(ctxT(t, time.Second), &raftpb.GetModeRequest{Namespace: "default"})
			if err == nil && resp.GetLeader() != 0 {
				leader = int(resp.GetLeader()) - 1
				return nil
			}
		}
		return fmt.Errorf("no store knows a leader")
	}, "find the leader of default")
	return leader
}

// TestQuickstartGrpcurl runs the quickstart's grpcurl commands verbatim
// (on free ports) when grpcurl is installed.
func TestQuickstartGrpcurl(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl is not installed: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest")
	}
	_, addrs := staticCluster(t)
	run := func(args ...string) map[string]any {
		t.Helper()
		out, err := exec.Command(grpcurl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("grpcurl %v printed %s", args, out)
		}
		return m
	}
	list := run("-plaintext", addrs[0], "raftpb.RaftService/ListNamespaceModes")
	if !strings.Contains(fmt.Sprint(list), "logs") {
		t.Fatalf("ListNamespaceModes = %v", list)
	}
	if m := run("-plaintext", "-d", `{"namespace":"logs"}`, addrs[0], "raftpb.RaftService/GetMode"); m["mode"] != "eventual" {
		t.Fatalf("GetMode(logs) = %v", m)
	}
	if m := run("-plaintext", "-d", `{"namespace":"never_seen"}`, addrs[0], "raftpb.RaftService/GetMode"); m["from_default"] != true {
		t.Fatalf("GetMode(never_seen) = %v, want from_default true", m)
	}
	run("-plaintext", "-d", `{"namespace":"logs","key":"a","value":"b"}`, addrs[0], "kvrpc.KvRaw/RawPut")
	for _, a := range addrs[1:] {
		eventually(t, time.Second, func() error {
			if m := run("-plaintext", "-d", `{"namespace":"logs","key":"a"}`, a, "kvrpc.KvRaw/RawGet"); m["value"] != "b" {
				return fmt.Errorf("RawGet on %s = %v", a, m)
			}
			return nil
		}, "RawGet on %s", a)
	}
	if m := run("-plaintext", "-d", `{"namespace":"default","key":"a","value":"b","expected_version":0}`, addrs[0], "kvrpc.KvCas/CompareAndSwap"); m["success"] != true {
		t.Fatalf("CAS = %v", m)
	}
	if m := run("-plaintext", "-d", `{"namespace":"default","key":"a"}`, addrs[0], "kvrpc.KvCas/Get"); m["value"] != "b" {
		t.Fatalf("Get = %v", m)
	}
	if m := run("-plaintext", "-d", `{"namespace":"default","key":"a","value":"c","expected_version":0}`, addrs[1], "kvrpc.KvCas/CompareAndSwap"); m["success"] != false || m["value"] != "b" {
		t.Fatalf("stale CAS = %v, want success false with the current value", m)
	}
	run("-plaintext", "-d", `{"namespace":"logs","mode":"strong"}`, addrs[0], "raftpb.RaftService/UpdateNamespaceMode")
	for _, a := range addrs {
		eventually(t, time.Second, func() error {
			list := run("-plaintext", a, "raftpb.RaftService/ListNamespaceModes")
			for _, n := range list["namespaces"].([]any) {
				m := n.(map[string]any)
				if m["namespace"] == "logs" && m["mode"] == "strong" {
					return nil
				}
			}
			return fmt.Errorf("%v", list)
		}, "store %s agrees", a)
	}
}
