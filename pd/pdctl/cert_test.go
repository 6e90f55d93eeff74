// Tests of the cert noun, through the command tree in-process: the files
// it writes and what it prints, its exit codes, and that it needs no PD.

package pdctl_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdctl"
)

// noPD is a --pd that pdclient refuses to build a client for: a cert
// command that dialed PD would fail with it.
const noPD = "--pd=nowhere"

type certJSON struct {
	Kind       string   `json:"kind"`
	CommonName string   `json:"common_name"`
	CertFile   string   `json:"cert_file"`
	KeyFile    string   `json:"key_file"`
	Hosts      []string `json:"hosts"`
	NotAfter   string   `json:"not_after"`
}

func readCertPEM(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCertCommands: a CA, a store, a PD member, an admin and a client,
// each printed as written (JSON), with the right CN and hosts, a private
// key, and a certificate the CA verifies for what it is used for.
func TestCertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs") // create-ca makes it
	const year = 365 * 24 * time.Hour
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	// In order: the CA first.
	for _, tc := range []struct {
		args     []string
		kind, cn string
		file     string // base of the pair's names
		hosts    []string
		lifetime time.Duration
		usages   []x509.ExtKeyUsage // nil for the CA
	}{
		{[]string{"create-ca"}, "ca", "rdb CA", "ca", []string{}, 10 * year, nil},
		{[]string{"create-store", "--id", "1", "--host", "127.0.0.1", "--host", "localhost"},
			"store", "store:1", "store.1", []string{"127.0.0.1", "localhost"}, 5 * year, server},
		{[]string{"create-pd", "--name", "pd1", "--host", "10.0.0.1,pd1.example.com"},
			"pd", "pd:pd1", "pd.pd1", []string{"10.0.0.1", "pd1.example.com"}, 5 * year, server},
		{[]string{"create-client", "--admin"}, "admin", "admin", "client.admin", []string{}, 5 * year, client},
		{[]string{"create-client", "--name", "alice", "--lifetime", "24h"}, "client", "alice", "client.alice", []string{}, 24 * time.Hour, client},
	} {
		t.Run(tc.args[0]+" "+tc.cn, func(t *testing.T) {
			args := append([]string{noPD, "-o", "json", "cert"}, tc.args...)
			v := decode[certJSON](t, ok(t, append(args, "--certs-dir", dir)...))
			want := certJSON{tc.kind, tc.cn, filepath.Join(dir, tc.file+".crt"), filepath.Join(dir, tc.file+".key"), tc.hosts, v.NotAfter}
			if !(v.Kind == want.Kind && v.CommonName == want.CommonName && v.CertFile == want.CertFile &&
				v.KeyFile == want.KeyFile && slices.Equal(v.Hosts, want.Hosts)) {
				t.Fatalf("printed %+v, want %+v", v, want)
			}
			notAfter, err := time.Parse(time.RFC3339, v.NotAfter)
			if d := time.Until(notAfter) - tc.lifetime; err != nil || d < -time.Minute || d > time.Minute {
				t.Errorf("not_after %q (%v), want about %v from now", v.NotAfter, err, tc.lifetime)
			}
			if st, err := os.Stat(v.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v, %v; want mode 0600", st, err)
			}
			cert := readCertPEM(t, v.CertFile)
			if cert.Subject.CommonName != tc.cn {
				t.Errorf("CN in the file = %q, want %q", cert.Subject.CommonName, tc.cn)
			}
			if tc.usages == nil {
				return
			}
			pool := x509.NewCertPool()
			pool.AddCert(readCertPEM(t, filepath.Join(dir, "ca.crt")))
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: tc.usages}); err != nil {
				t.Errorf("the CA does not verify it for %v: %v", tc.usages, err)
			}
		})
	}

	// Table output names the files; --overwrite replaces a pair.
	out := ok(t, noPD, "cert", "create-client", "--name", "alice", "--certs-dir", dir, "--overwrite")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "KIND") ||
		!strings.Contains(lines[1], filepath.Join(dir, "client.alice.crt")) || !strings.Contains(lines[1], filepath.Join(dir, "client.alice.key")) {
		t.Fatalf("table:\n%s", out)
	}
}

// TestCertErrors: a wrong command line exits 2, a command that cannot be
// done exits 1, each saying why, and neither writes anything.
func TestCertErrors(t *testing.T) {
	dir := t.TempDir()
	ok(t, noPD, "cert", "create-ca", "--certs-dir", dir)
	ok(t, noPD, "cert", "create-client", "--name", "bob", "--certs-dir", dir)
	noCA := t.TempDir()

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"store without CA", []string{"create-store", "--certs-dir", noCA, "--id", "1", "--host", "127.0.0.1"},
			pdctl.ExitError, "no CA in " + noCA + " (" + filepath.Join(noCA, "ca.crt") + " does not exist): run 'pdctl cert create-ca"},
		{"store id 0", []string{"create-store", "--id", "0", "--host", "127.0.0.1"}, pdctl.ExitUsage, `store id "0" is not a positive integer`},
		{"store id x", []string{"create-store", "--id", "x", "--host", "127.0.0.1"}, pdctl.ExitUsage, `store id "x" is not a positive integer`},
		{"store without id", []string{"create-store", "--host", "127.0.0.1"}, pdctl.ExitUsage, `required flag(s) "id" not set`},
		{"store without host", []string{"create-store", "--id", "1"}, pdctl.ExitUsage, `required flag(s) "host" not set`},
		{"host with port", []string{"create-store", "--id", "1", "--host", "127.0.0.1:20160"}, pdctl.ExitUsage, "has a port"},
		{"pd without host", []string{"create-pd", "--name", "pd1"}, pdctl.ExitUsage, `required flag(s) "host" not set`},
		{"pd bad name", []string{"create-pd", "--name", "pd 1", "--host", "h"}, pdctl.ExitUsage, "only letters, digits"},
		{"client store:3", []string{"create-client", "--name", "store:3"}, pdctl.ExitUsage, `starts with "store:"`},
		{"client pd:1", []string{"create-client", "--name", "pd:1"}, pdctl.ExitUsage, `starts with "pd:"`},
		{"client bad name", []string{"create-client", "--name", "a/b"}, pdctl.ExitUsage, "only letters, digits"},
		{"client without name", []string{"create-client"}, pdctl.ExitUsage, "--name is required (or --admin"},
		{"admin with another name", []string{"create-client", "--admin", "--name", "bob"}, pdctl.ExitUsage, "contradicts"},
		{"zero lifetime", []string{"create-client", "--name", "carol", "--lifetime", "0s"}, pdctl.ExitUsage, "lifetime must be positive"},
		{"outlives the CA", []string{"create-client", "--name", "carol", "--lifetime", "100000h"}, pdctl.ExitError, "outlive the CA"},
		{"CA exists", []string{"create-ca"}, pdctl.ExitError, "refusing to replace " + filepath.Join(dir, "ca.crt")},
		{"client exists", []string{"create-client", "--name", "bob"}, pdctl.ExitError, "file already exists (--overwrite replaces it)"},
		{"argument", []string{"create-ca", "extra"}, pdctl.ExitUsage, `unknown command "extra"`},
		{"bad output", []string{"-o", "yaml", "create-ca"}, pdctl.ExitUsage, "-o must be json or table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{noPD, "cert"}, tc.args...)
			if !slices.Contains(tc.args, "--certs-dir") {
				args = append(args, "--certs-dir", dir)
			}
			r := pdctlRun(t, args...)
			if r.code != tc.code || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.msg)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}

	var files []string
	for _, d := range []string{dir, noCA} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			files = append(files, e.Name())
		}
	}
	if want := []string{"ca.crt", "ca.key", "client.bob.crt", "client.bob.key"}; !slices.Equal(files, want) {
		t.Errorf("files after the errors: %v, want %v", files, want)
	}
	if r := pdctlRun(t, "cert"); r.code != pdctl.ExitOK || !strings.Contains(r.stdout, "create-store") {
		t.Errorf("cert alone: exit %d\n%s", r.code, r.stdout)
	}
}
