package tests

// A cluster that faces a network, run as a user would: certificates made
// with `pdctl cert`, PD and three stores with TLS, the quickstart's calls
// with grpcurl and an admin's certificate, a mode switch with pdctl, and
// the refusals that keep everyone else out.

import (
	"encoding/json"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/store/security"
)

func TestTLSProcesses(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl is not installed: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	}
	bin := binaries(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	pdctl := func(args ...string) (string, error) {
		out, err := exec.Command(bin+"/pdctl", args...).CombinedOutput()
		return string(out), err
	}
	mustPdctl := func(args ...string) string {
		t.Helper()
		out, err := pdctl(args...)
		if err != nil {
			t.Fatalf("pdctl %v: %v\n%s", args, err, out)
		}
		return out
	}
	mustPdctl("cert", "create-ca", "--certs-dir", certs)
	mustPdctl("cert", "create-pd", "--certs-dir", certs, "--name", "pd1", "--host", "127.0.0.1", "--host", "localhost")
	for id := 1; id <= 3; id++ {
		mustPdctl("cert", "create-store", "--certs-dir", certs, "--id", fmt.Sprint(id), "--host", "127.0.0.1")
	}
	mustPdctl("cert", "create-client", "--certs-dir", certs, "--admin")
	mustPdctl("cert", "create-client", "--certs-dir", certs, "--name", "app")
	ca := filepath.Join(certs, "ca.crt")
	pem := func(base string) (string, string) {
		return filepath.Join(certs, base+".crt"), filepath.Join(certs, base+".key")
	}

	pdClient, pdPeer := freePort(t), freePort(t)
	pdCert, pdKey := pem("pd.pd1")
	startProc(t, dir, bin+"/pd-server", "--name", "pd1", "--data-dir", filepath.Join(dir, "pd1"),
		"--client-urls", "https://"+pdClient, "--peer-urls", "https://"+pdPeer,
		"--cert-file", pdCert, "--key-file", pdKey, "--trusted-ca-file", ca,
		"--peer-cert-file", pdCert, "--peer-key-file", pdKey, "--peer-trusted-ca-file", ca)
	addrs := make([]string, 3)
	for i := range 3 {
		addrs[i] = freePort(t)
		c, k := pem(fmt.Sprintf("store.%d", i+1))
		startProc(t, dir, bin+"/rdb-server", "--store-id", fmt.Sprint(i+1), "--addr", addrs[i],
			"--data-dir", filepath.Join(dir, fmt.Sprintf("s%d", i+1)), "--pd", pdClient,
			"--namespace-mode", "logs=eventual",
			"--cert-file", c, "--key-file", k, "--trusted-ca-file", ca)
	}
	adminCert, adminKey := pem("client.admin")
	appCert, appKey := pem("client.app")
	s2Cert, s2Key := pem("store.2")
	as := func(cert, key string) []string { return []string{"-cacert", ca, "-cert", cert, "-key", key} }
	call := func(ident []string, data, addr, method string) (map[string]any, error) {
		args := append(append([]string{}, ident...), "-d", data, addr, method)
		out, err := exec.Command(grpcurl, args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			return nil, fmt.Errorf("grpcurl printed %s", out)
		}
		return m, nil
	}
	admin := as(adminCert, adminKey)
	mustCall := func(data, addr, method string) map[string]any {
		t.Helper()
		var m map[string]any
		eventually(t, 20*time.Second, func() error {
			var err error
			m, err = call(admin, data, addr, method)
			return err
		}, "grpcurl %s on %s", method, addr)
		return m
	}

	// The quickstart's calls, with certificates.
	if m := mustCall(`{"namespace":"logs"}`, addrs[0], "raftpb.RaftService/GetMode"); m["mode"] != "eventual" {
		t.Fatalf("GetMode(logs) = %v", m)
	}
	mustCall(`{"namespace":"logs","key":"a","value":"b"}`, addrs[0], "kvrpc.KvRaw/RawPut")
	eventually(t, 10*time.Second, func() error {
		if m, err := call(admin, `{"namespace":"logs","key":"a"}`, addrs[1], "kvrpc.KvRaw/RawGet"); err != nil || m["value"] != "b" {
			return fmt.Errorf("RawGet = %v, %v", m, err)
		}
		return nil
	}, "the raw write replicates")
	if m := mustCall(`{"namespace":"default","key":"a","value":"b","expected_version":0}`, addrs[0], "kvrpc.KvCas/CompareAndSwap"); m["success"] != true {
		t.Fatalf("CAS = %v", m)
	}
	if m := mustCall(`{"namespace":"default","key":"a"}`, addrs[2], "kvrpc.KvCas/Get"); m["value"] != "b" {
		t.Fatalf("Get = %v", m)
	}

	// pdctl with the admin's certificate switches a mode everywhere.
	pdTLS := []string{"--pd", pdClient, "--cacert", ca, "--cert", adminCert, "--key", adminKey}
	mustPdctl(append(pdTLS, "namespace", "set", "logs", "strong", "--wait")...)
	for _, a := range addrs {
		eventually(t, 20*time.Second, func() error {
			if m, err := call(admin, `{"namespace":"logs","key":"a"}`, a, "kvrpc.KvCas/Get"); err != nil || m["value"] != "b" {
				return fmt.Errorf("Get(logs/a) on %s = %v, %v", a, m, err)
			}
			return nil
		}, "logs is strong on %s", a)
	}

	// The refusals.
	refused := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", what, err, want)
		}
	}
	_, err = call([]string{"-plaintext"}, `{"namespace":"default"}`, addrs[0], "raftpb.RaftService/GetMode")
	refused("plaintext grpcurl", err, "")
	app := as(appCert, appKey)
	if _, err := call(app, `{"namespace":"default","key":"x","value":"y"}`, addrs[0], "kvrpc.KvCas/CompareAndSwap"); err != nil {
		t.Errorf("a client's CAS: %v", err)
	}
	_, err = call(app, `{"namespace":"logs","mode":"eventual"}`, addrs[0], "raftpb.RaftService/UpdateNamespaceMode")
	refused("a client changing a mode", err, "PermissionDenied")
	_, err = call(app, `{"namespace":"logs"}`, addrs[0], "rdb.storepb.StoreInternal/SwitchStatus")
	refused("a client calling an internal RPC", err, "PermissionDenied")
	_, err = call(as(s2Cert, s2Key), `{"store_id":3,"addr":"127.0.0.1:1"}`, addrs[0], "rdb.storepb.StoreInternal/Join")
	refused("store 2 joining as store 3", err, "PermissionDenied")
	// etcd's own API (grpcurl cannot list it: etcd's protos are not in
	// the reflection registry), with etcd's client.
	tc, err := security.Files{CertFile: appCert, KeyFile: appKey, TrustedCAFile: ca}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{pdClient}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	_, err = etcd.Put(ctxT(t, 5*time.Second), "/rdb/namespaces/evil", "x")
	refused("a client writing PD's etcd keys", err, "PermissionDenied")
	out, err := pdctl("--pd", pdClient, "--cacert", ca, "--cert", appCert, "--key", appKey, "namespace", "set", "logs", "eventual")
	if err == nil || !strings.Contains(out, "PermissionDenied") && !strings.Contains(out, "needs the certificate of") {
		t.Errorf("pdctl with a client certificate: %v\n%s", err, out)
	}
}
