package storetest

// Certificates for a test cluster that runs with TLS: a CA, one
// certificate per store (CN store:<id>), an admin's and an ordinary
// client's, made with the same code as `pdctl cert`.

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/rdb-project/rdb/store/clusterid"
	"github.com/rdb-project/rdb/store/security"
)

// Certs is a test cluster's PKI, in one directory.
type Certs struct {
	Dir string
}

// NewCerts makes a CA and certificates for stores 1..n, PD members
// pd1..pdN (names given), "admin" and a client named "app".
func NewCerts(t testing.TB, stores int, pdNames ...string) *Certs {
	t.Helper()
	c := &Certs{Dir: t.TempDir()}
	if err := security.CreateCA(c.Dir, 2*time.Hour, false); err != nil {
		t.Fatal(err)
	}
	hosts := []string{"127.0.0.1", "localhost"}
	for id := 1; id <= stores; id++ {
		if _, _, err := security.CreateCert(c.Dir, security.KindStore, fmt.Sprint(id), hosts, time.Hour, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range pdNames {
		if _, _, err := security.CreateCert(c.Dir, security.KindPD, name, hosts, time.Hour, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"admin", "app"} {
		if _, _, err := security.CreateCert(c.Dir, security.KindClient, name, nil, time.Hour, false); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *Certs) files(base string) security.Files {
	return security.Files{
		CertFile:      fmt.Sprintf("%s/%s.crt", c.Dir, base),
		KeyFile:       fmt.Sprintf("%s/%s.key", c.Dir, base),
		TrustedCAFile: c.Dir + "/" + security.CACertFile,
	}
}

// Store is store id's TLS files.
func (c *Certs) Store(id uint64) security.Files { return c.files(fmt.Sprintf("store.%d", id)) }

// PD is PD member name's TLS files.
func (c *Certs) PD(name string) security.Files { return c.files("pd." + name) }

// Client is the TLS files of client name ("admin" or "app").
func (c *Certs) Client(name string) security.Files { return c.files("client." + name) }

// Dial connects to addr as the identity of files (empty: plaintext).
func Dial(t testing.TB, addr string, files security.Files) *grpc.ClientConn {
	t.Helper()
	creds, err := files.ClientCredentials()
	if err != nil {
		t.Fatal(err)
	}
	return DialWith(t, addr, creds)
}

// DialPeer connects to addr as a store of cluster clusterID would: with
// the identity of files (empty: plaintext), naming the cluster in every
// call (as a store's transport does).
func DialPeer(t testing.TB, addr string, files security.Files, clusterID uint64) *grpc.ClientConn {
	t.Helper()
	creds, err := files.ClientCredentials()
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, clusterid.DialOptions(func() uint64 { return clusterID })...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// DialWith connects to addr with creds; the connection closes when the
// test ends.
func DialWith(t testing.TB, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
