// Tests of certs.go: the CA and leaves it writes verify for what each
// identity does, carry the Common Name ParseCN expects, keep their keys
// private, refuse bad requests and overwrites, and work for mutual TLS.

package security

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	certsTestCALifetime   = 24 * time.Hour
	certsTestLeafLifetime = time.Hour
)

// certsTestCA creates a CA in a new directory and returns the directory.
func certsTestCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := CreateCA(dir, certsTestCALifetime, false); err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	return dir
}

// certsTestRead parses the one certificate of a PEM file.
func certsTestRead(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s is not one PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return cert
}

func certsTestPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(certsTestRead(t, filepath.Join(dir, CACertFile)))
	return pool
}

func certsTestMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// TestCreateCA: a CA in a directory that did not exist, private to its
// owner, that can sign and nothing else, with a random 128-bit serial.
func TestCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "certs")
	if err := CreateCA(dir, certsTestCALifetime, false); err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	certsTestMode(t, dir, 0o700)
	certsTestMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	ca := certsTestRead(t, filepath.Join(dir, CACertFile))
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA: IsCA %v, basic constraints %v, key usage %v", ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage)
	}
	if ca.Subject.CommonName != "rdb CA" {
		t.Errorf("CA CN = %q", ca.Subject.CommonName)
	}
	if ca.SerialNumber.Sign() <= 0 || ca.SerialNumber.BitLen() > 128 {
		t.Errorf("CA serial %v is not a positive 128-bit number", ca.SerialNumber)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if d := ca.NotAfter.Sub(time.Now().Add(certsTestCALifetime)); d < -time.Minute || d > time.Minute {
		t.Errorf("CA expires %v, want about %v from now", ca.NotAfter, certsTestCALifetime)
	}
	// The key file is the CA's key, in a form crypto/tls reads.
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)); err != nil {
		t.Errorf("CA pair does not load: %v", err)
	}
	if other := certsTestRead(t, filepath.Join(certsTestCA(t), CACertFile)); other.SerialNumber.Cmp(ca.SerialNumber) == 0 {
		t.Errorf("two CAs have the same serial %v", ca.SerialNumber)
	}
}

// TestCreateCert: every kind of leaf verifies against the CA for what it
// is used for, and only that; its CN is the identity ParseCN reads; its
// SANs are the hosts; its key is 0600 and matches it.
func TestCreateCert(t *testing.T) {
	dir := certsTestCA(t)
	pool := certsTestPool(t, dir)
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, tc := range []struct {
		name     string
		kind     CertKind
		arg      string
		hosts    []string
		file     string // base name of the pair
		cn       string
		role     Role
		usages   []x509.ExtKeyUsage
		ips, dns []string
	}{
		{"store", KindStore, "7", []string{"127.0.0.1", "localhost", "::1", "Node7.Example.com", "127.0.0.1"},
			"store.7", "store:7", Store, both, []string{"127.0.0.1", "::1"}, []string{"localhost", "node7.example.com"}},
		{"store id canonical", KindStore, "0042", []string{"10.0.0.42"},
			"store.42", "store:42", Store, both, []string{"10.0.0.42"}, nil},
		{"pd", KindPD, "pd-1", []string{"pd1.example.com", "10.0.0.1", "*.pd.example.com"},
			"pd.pd-1", "pd:pd-1", PD, both, []string{"10.0.0.1"}, []string{"pd1.example.com", "*.pd.example.com"}},
		{"admin", KindClient, "admin", nil, "client.admin", "admin", Admin, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil},
		{"client", KindClient, "app_1.v2", nil, "client.app_1.v2", "app_1.v2", Client, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPath, keyPath, err := CreateCert(dir, tc.kind, tc.arg, tc.hosts, certsTestLeafLifetime, false)
			if err != nil {
				t.Fatalf("CreateCert: %v", err)
			}
			if want := filepath.Join(dir, tc.file+".crt"); certPath != want {
				t.Errorf("certificate at %s, want %s", certPath, want)
			}
			if want := filepath.Join(dir, tc.file+".key"); keyPath != want {
				t.Errorf("key at %s, want %s", keyPath, want)
			}
			certsTestMode(t, keyPath, 0o600)
			certsTestMode(t, certPath, 0o644)
			if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
				t.Errorf("pair does not load: %v", err)
			}

			cert := certsTestRead(t, certPath)
			if cert.Subject.CommonName != tc.cn {
				t.Errorf("CN = %q, want %q", cert.Subject.CommonName, tc.cn)
			}
			if id, err := ParseCN(cert.Subject.CommonName); err != nil || id.Role != tc.role {
				t.Errorf("ParseCN(%q) = %+v, %v; want role %v", cert.Subject.CommonName, id, err, tc.role)
			}
			if cert.IsCA {
				t.Error("a leaf is a CA")
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tc.ips) || !slices.Equal(cert.DNSNames, tc.dns) {
				t.Errorf("SANs: IPs %v DNS %v; want IPs %v DNS %v", ips, cert.DNSNames, tc.ips, tc.dns)
			}
			if !slices.Equal(cert.ExtKeyUsage, tc.usages) {
				t.Errorf("ExtKeyUsage = %v, want %v", cert.ExtKeyUsage, tc.usages)
			}
			for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}})
				if want := slices.Contains(tc.usages, u); (err == nil) != want {
					t.Errorf("verify for usage %v: %v; want it to pass: %v", u, err, want)
				}
			}
			// A server's certificate verifies for each of its hosts.
			for _, h := range append(slices.Clone(tc.ips), tc.dns...) {
				h = strings.Replace(h, "*", "x", 1)
				if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: h}); err != nil {
					t.Errorf("verify for host %s: %v", h, err)
				}
			}
		})
	}
}

// TestCreateOverwrite: an existing CA or pair is left alone unless
// overwrite, and replaced with it.
func TestCreateOverwrite(t *testing.T) {
	dir := certsTestCA(t)
	caPath := filepath.Join(dir, CACertFile)
	oldCA, _ := os.ReadFile(caPath)
	storeCert, _, err := CreateCert(dir, KindStore, "1", []string{"127.0.0.1"}, certsTestLeafLifetime, false)
	if err != nil {
		t.Fatal(err)
	}
	oldStore, _ := os.ReadFile(storeCert)

	for _, tc := range []struct {
		name   string
		create func(overwrite bool) error
		path   string
		old    []byte
	}{
		{"store", func(overwrite bool) error {
			_, _, err := CreateCert(dir, KindStore, "1", []string{"127.0.0.1"}, certsTestLeafLifetime, overwrite)
			return err
		}, storeCert, oldStore},
		// Last: a new CA no longer signs the store's certificate above.
		{"CA", func(overwrite bool) error { return CreateCA(dir, certsTestCALifetime, overwrite) }, caPath, oldCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.create(false)
			if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to replace "+tc.path) {
				t.Fatalf("without overwrite: %v, want a refusal naming %s", err, tc.path)
			}
			if errors.Is(err, ErrInvalidCertRequest) {
				t.Errorf("existing files count as a bad request: %v", err)
			}
			if now, _ := os.ReadFile(tc.path); !bytes.Equal(now, tc.old) {
				t.Fatal("a refused create changed the file")
			}
			if err := tc.create(true); err != nil {
				t.Fatalf("with overwrite: %v", err)
			}
			if now, _ := os.ReadFile(tc.path); bytes.Equal(now, tc.old) {
				t.Fatal("overwrite left the old file")
			}
		})
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestCreateCertBadRequest: wrong arguments are refused, with a message
// that says what is wrong, as ErrInvalidCertRequest, and write nothing.
func TestCreateCertBadRequest(t *testing.T) {
	dir := certsTestCA(t)
	hosts := []string{"127.0.0.1"}
	for _, tc := range []struct {
		name     string
		kind     CertKind
		arg      string
		hosts    []string
		lifetime time.Duration
		msg      string
	}{
		{"store id 0", KindStore, "0", hosts, time.Hour, `store id "0" is not a positive integer`},
		{"store id x", KindStore, "x", hosts, time.Hour, `store id "x" is not a positive integer`},
		{"store id negative", KindStore, "-1", hosts, time.Hour, "not a positive integer"},
		{"store id empty", KindStore, "", hosts, time.Hour, "not a positive integer"},
		{"store id too big", KindStore, "18446744073709551616", hosts, time.Hour, "not a positive integer"},
		{"store without hosts", KindStore, "1", nil, time.Hour, "needs at least one host"},
		{"pd without hosts", KindPD, "pd1", nil, time.Hour, "needs at least one host"},
		{"pd without name", KindPD, "", hosts, time.Hour, "PD member name is empty"},
		{"pd name with colon", KindPD, "pd:1", hosts, time.Hour, "only letters, digits"},
		{"client store:3", KindClient, "store:3", nil, time.Hour, `starts with "store:"`},
		{"client pd:a", KindClient, "pd:a", nil, time.Hour, `starts with "pd:"`},
		{"client empty", KindClient, "", nil, time.Hour, "client name is empty"},
		{"client space", KindClient, "a b", nil, time.Hour, "only letters, digits"},
		{"client slash", KindClient, "../x", nil, time.Hour, "only letters, digits"},
		{"client too long", KindClient, strings.Repeat("a", 65), nil, time.Hour, "longer than 64"},
		{"client with hosts", KindClient, "bob", hosts, time.Hour, "names no hosts"},
		{"host with port", KindStore, "1", []string{"127.0.0.1:20160"}, time.Hour, "has a port"},
		{"host URL", KindStore, "1", []string{"http://a"}, time.Hour, "is a URL"},
		{"host empty", KindStore, "1", []string{""}, time.Hour, "a host is empty"},
		{"host bad", KindStore, "1", []string{"a b"}, time.Hour, "neither an IP address nor a DNS name"},
		{"unknown kind", 0, "1", hosts, time.Hour, "unknown certificate kind"},
		{"zero lifetime", KindClient, "bob", nil, 0, "lifetime must be positive"},
		{"negative lifetime", KindClient, "bob", nil, -time.Hour, "lifetime must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := CreateCert(dir, tc.kind, tc.arg, tc.hosts, tc.lifetime, false)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %q", err, tc.msg)
			}
			if !errors.Is(err, ErrInvalidCertRequest) {
				t.Errorf("%v is not ErrInvalidCertRequest", err)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("bad requests wrote files: %v", entries)
	}
	if err := CreateCA("", time.Hour, false); !errors.Is(err, ErrInvalidCertRequest) {
		t.Errorf("CreateCA without a directory: %v", err)
	}
	if err := CreateCA(t.TempDir(), 0, false); !errors.Is(err, ErrInvalidCertRequest) {
		t.Errorf("CreateCA with lifetime 0: %v", err)
	}
}

// TestCreateCertWithoutCA: certificates are issued only where a CA is,
// and the error says so; a leaf may not outlive its CA.
func TestCreateCertWithoutCA(t *testing.T) {
	empty := t.TempDir()
	_, _, err := CreateCert(empty, KindStore, "1", []string{"127.0.0.1"}, time.Hour, false)
	if err == nil || !strings.Contains(err.Error(), "no CA in") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("without a CA: %v", err)
	}
	if errors.Is(err, ErrInvalidCertRequest) {
		t.Errorf("a missing CA counts as a bad request: %v", err)
	}

	dir := certsTestCA(t)
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateCert(dir, KindClient, "bob", nil, time.Hour, false); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("without the CA key: %v", err)
	}

	dir = certsTestCA(t)
	if _, _, err := CreateCert(dir, KindClient, "bob", nil, 2*certsTestCALifetime, false); err == nil || !strings.Contains(err.Error(), "outlive the CA") {
		t.Fatalf("outliving the CA: %v", err)
	}
}

// TestMutualTLS: a store serving with its certificate and requiring
// verified client certificates accepts a client's and a peer store's, and
// refuses a connection without one or with one another CA signed.
func TestMutualTLS(t *testing.T) {
	dir := certsTestCA(t)
	pool := certsTestPool(t, dir)
	pair := func(dir string, kind CertKind, name string, hosts []string) tls.Certificate {
		certPath, keyPath, err := CreateCert(dir, kind, name, hosts, certsTestLeafLifetime, false)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := pair(dir, KindStore, "1", []string{"localhost", "127.0.0.1"})
	serverCfg := &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
	stranger := pair(certsTestCA(t), KindClient, "alice", nil)

	for _, tc := range []struct {
		name    string
		certs   []tls.Certificate
		wantCN  string // "" when the server must refuse
		refusal string // what the server says when it refuses
	}{
		{"client", []tls.Certificate{pair(dir, KindClient, "alice", nil)}, "alice", ""},
		{"admin", []tls.Certificate{pair(dir, KindClient, "admin", nil)}, "admin", ""},
		{"peer store", []tls.Certificate{pair(dir, KindStore, "2", []string{"127.0.0.2"})}, "store:2", ""},
		{"no certificate", nil, "", "didn't provide a certificate"},
		{"another CA", []tls.Certificate{stranger}, "", "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, cc := net.Pipe()
			deadline := time.Now().Add(10 * time.Second)
			sc.SetDeadline(deadline)
			cc.SetDeadline(deadline)
			type accepted struct {
				cn  string
				err error
			}
			done := make(chan accepted, 1)
			go func() {
				defer sc.Close()
				srv := tls.Server(sc, serverCfg)
				if err := srv.Handshake(); err != nil {
					done <- accepted{err: err}
					return
				}
				st := srv.ConnectionState()
				cn := ""
				if len(st.VerifiedChains) > 0 {
					cn = st.VerifiedChains[0][0].Subject.CommonName
				}
				_, err := srv.Write([]byte("ok"))
				done <- accepted{cn, err}
			}()

			cli := tls.Client(cc, &tls.Config{
				Certificates: tc.certs,
				RootCAs:      pool,
				ServerName:   "localhost",
				MinVersion:   tls.VersionTLS12,
			})
			// With TLS 1.3 the client's handshake ends before the server
			// has checked its certificate: the refusal arrives on read.
			err := cli.Handshake()
			var got []byte
			if err == nil {
				got, err = io.ReadAll(io.LimitReader(cli, 2))
				if err == nil && len(got) < 2 {
					err = io.ErrUnexpectedEOF
				}
			}
			cc.Close()
			res := <-done

			if tc.wantCN != "" {
				if err != nil || string(got) != "ok" {
					t.Fatalf("client: %v (read %q)", err, got)
				}
				if res.err != nil || res.cn != tc.wantCN {
					t.Fatalf("server: CN %q, %v; want %q", res.cn, res.err, tc.wantCN)
				}
				return
			}
			if res.err == nil || !strings.Contains(res.err.Error(), tc.refusal) {
				t.Fatalf("server: CN %q, %v; want a refusal saying %q", res.cn, res.err, tc.refusal)
			}
			if err == nil {
				t.Fatal("client was not refused")
			}
			t.Logf("refused: server %v; client %v", res.err, err)
		})
	}
}
