// Package security decides who may call what in an rdb cluster, as
// CockroachDB and TiKV do: with TLS on, every connection is mutually
// authenticated and the certificate's Common Name is the caller's
// identity — `store:<id>` a store, `pd:<name>` a placement driver member,
// `admin` an operator, any other name an ordinary client. A Policy says
// which identities each RPC accepts; the gRPC interceptors enforce it
// before any handler runs. Without certificates the cluster is insecure:
// every caller is trusted, as before, and the servers say so at start-up.
//
// It also loads TLS configurations from PEM files (with etcd's flag
// names) and issues certificates for people without a PKI (certs.go).
// It depends on nothing of the store, so the placement driver and pdctl
// use it too.
package security

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Role is what an identity may do.
type Role uint8

const (
	// Insecure is every caller of a cluster without TLS: trusted.
	Insecure Role = iota
	// Client is an ordinary client: the KV APIs and reading modes.
	Client
	// Admin is an operator: everything a client may, and mode changes.
	Admin
	// Store is a store of the cluster: the internal RPCs.
	Store
	// PD is a placement driver member.
	PD
)

func (r Role) String() string {
	switch r {
	case Insecure:
		return "insecure"
	case Client:
		return "client"
	case Admin:
		return "admin"
	case Store:
		return "store"
	case PD:
		return "pd"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Identity is who a caller is.
type Identity struct {
	Role Role
	// Name is the certificate's Common Name ("" when insecure).
	Name string
	// StoreID is the store's id, for Role Store.
	StoreID uint64
}

// Secure reports whether the identity was proven by a certificate.
func (id Identity) Secure() bool { return id.Role != Insecure }

func (id Identity) String() string {
	if !id.Secure() {
		return "an unauthenticated caller (no TLS)"
	}
	return fmt.Sprintf("%q (%s)", id.Name, id.Role)
}

// ParseCN returns the identity a certificate's Common Name gives.
func ParseCN(cn string) (Identity, error) {
	switch {
	case cn == "":
		return Identity{}, errors.New("the certificate has no Common Name")
	case cn == "admin":
		return Identity{Role: Admin, Name: cn}, nil
	case strings.HasPrefix(cn, "store:"):
		id, err := strconv.ParseUint(strings.TrimPrefix(cn, "store:"), 10, 64)
		if err != nil || id == 0 {
			return Identity{}, fmt.Errorf("certificate Common Name %q: a store's is store:<positive id>", cn)
		}
		return Identity{Role: Store, Name: cn, StoreID: id}, nil
	case strings.HasPrefix(cn, "pd:"):
		if len(cn) == len("pd:") {
			return Identity{}, fmt.Errorf("certificate Common Name %q: a PD member's is pd:<name>", cn)
		}
		return Identity{Role: PD, Name: cn}, nil
	}
	return Identity{Role: Client, Name: cn}, nil
}

// FromContext returns the identity of the caller of a gRPC call: from its
// verified client certificate, or Insecure on a connection without TLS. A
// TLS connection without a verified certificate has no identity (error).
func FromContext(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Identity{Role: Insecure}, nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{Role: Insecure}, nil
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate: present one signed by the cluster's CA")
	}
	id, err := ParseCN(chains[0][0].Subject.CommonName)
	if err != nil {
		return Identity{}, status.Error(codes.Unauthenticated, err.Error())
	}
	return id, nil
}

// Files are the PEM files of one TLS identity, named as etcd names them
// (--cert-file, --key-file, --trusted-ca-file). All three or none.
type Files struct {
	CertFile, KeyFile, TrustedCAFile string
}

// Enabled reports whether TLS is configured.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.TrustedCAFile != "" }

// Check reports a configuration with some files but not all.
func (f Files) Check(prefix string) error {
	if !f.Enabled() {
		return nil
	}
	var missing []string
	for _, x := range []struct{ flag, v string }{{"cert-file", f.CertFile}, {"key-file", f.KeyFile}, {"trusted-ca-file", f.TrustedCAFile}} {
		if x.v == "" {
			missing = append(missing, "--"+prefix+x.flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("TLS needs %s too (the certificate, its key and the CA that signs every member's)", strings.Join(missing, " and "))
	}
	return nil
}

func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
	}
	pem, err := os.ReadFile(f.TrustedCAFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read CA %s: %w", f.TrustedCAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("CA file %s holds no PEM certificate", f.TrustedCAFile)
	}
	return cert, pool, nil
}

// ServerConfig is a server's TLS configuration: it presents its
// certificate and requires every client to present one the CA signed.
func (f Files) ServerConfig() (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientConfig is a client's TLS configuration: it presents its
// certificate and verifies the server's against the CA.
func (f Files) ClientConfig() (*tls.Config, error) {
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ServerCredentials are the gRPC server credentials of f: TLS, or none
// (insecure) when f is empty.
func (f Files) ServerCredentials() (credentials.TransportCredentials, error) {
	if !f.Enabled() {
		return insecure.NewCredentials(), nil
	}
	cfg, err := f.ServerConfig()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials are the gRPC dial credentials of f: TLS, or none
// (insecure) when f is empty.
func (f Files) ClientCredentials() (credentials.TransportCredentials, error) {
	if !f.Enabled() {
		return insecure.NewCredentials(), nil
	}
	cfg, err := f.ClientConfig()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// Policy says which roles may call each gRPC method. Rules are full method
// names ("/pkg.Service/Method") or service prefixes ("/pkg.Service/");
// the longest match wins. A method no rule matches is refused.
type Policy map[string][]Role

// Everyone with a certificate.
var Everyone = []Role{Client, Admin, Store, PD}

// Authorize checks the caller of ctx against the rule of method.
func (p Policy) Authorize(ctx context.Context, method string) (Identity, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return Identity{}, err
	}
	if !id.Secure() {
		return id, nil
	}
	roles, ok := p.lookup(method)
	if !ok {
		return id, status.Errorf(codes.PermissionDenied, "%s: no identity may call it", method)
	}
	for _, r := range roles {
		if r == id.Role {
			return id, nil
		}
	}
	return id, status.Errorf(codes.PermissionDenied, "%s needs the certificate of %s; the caller's is %q (%s)",
		method, describe(roles), id.Name, id.Role)
}

func (p Policy) lookup(method string) ([]Role, bool) {
	if roles, ok := p[method]; ok {
		return roles, true
	}
	best := ""
	for rule := range p {
		if strings.HasSuffix(rule, "/") && strings.HasPrefix(method, rule) && len(rule) > len(best) {
			best = rule
		}
	}
	if best == "" {
		return nil, false
	}
	return p[best], true
}

// describe names the certificates that have roles.
func describe(roles []Role) string {
	var names []string
	for _, r := range roles {
		switch r {
		case Client:
			names = append(names, "a client")
		case Admin:
			names = append(names, "admin (CN admin)")
		case Store:
			names = append(names, "a store (CN store:<id>)")
		case PD:
			names = append(names, "a PD member (CN pd:<name>)")
		}
	}
	return strings.Join(names, " or ")
}

type identityKey struct{}

// WithIdentity returns ctx carrying the caller's identity, as the
// interceptors set it for handlers.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// Caller returns the identity the interceptors authorized for this call
// (Insecure outside one).
func Caller(ctx context.Context) Identity {
	if id, ok := ctx.Value(identityKey{}).(Identity); ok {
		return id
	}
	return Identity{Role: Insecure}
}

// UnaryInterceptor enforces p on unary calls.
func (p Policy) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, err := p.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(WithIdentity(ctx, id), req)
	}
}

// StreamInterceptor enforces p on streams.
func (p Policy) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, err := p.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: WithIdentity(ss.Context(), id)})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// RequireStore checks that the caller may speak as store id: a store's
// certificate names the store it is. Insecure callers pass (nothing can
// be proven without TLS).
func RequireStore(ctx context.Context, id uint64) error {
	c := Caller(ctx)
	if !c.Secure() || (c.Role == Store && c.StoreID == id) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "only store %d (certificate CN store:%d) may speak as store %d; the certificate is %s",
		id, id, id, c.Name)
}
