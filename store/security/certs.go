// Certificates for clusters without a PKI, as `cockroach cert` makes them:
// one self-signed CA in a directory, and leaf certificates it signs whose
// Common Name is the identity ParseCN reads (store:<id>, pd:<name>, admin,
// or a client's name). pdctl's `cert` commands are the front end.
//
// The CA key lies next to the certificates so that one directory on the
// operator's machine is all it takes; only ca.crt and a machine's own pair
// should be copied to that machine.

package security

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The CA's files in a certificates directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// caCommonName is the CA's subject. Nothing reads it: trust comes from
// holding ca.crt, not from its name.
const caCommonName = "rdb CA"

// backdate is how far before now a certificate becomes valid, so that a
// machine whose clock is a little behind the operator's accepts it at once.
const backdate = time.Hour

// ErrInvalidCertRequest is what every error of CreateCA and CreateCert
// caused by their arguments (not by the files) matches with errors.Is, so
// that a command line can tell a wrong request from a failed one.
var ErrInvalidCertRequest = errors.New("invalid certificate request")

// certRequestError is an error of the arguments: its message alone is
// shown, and it matches ErrInvalidCertRequest.
type certRequestError struct{ msg string }

func (e certRequestError) Error() string        { return e.msg }
func (e certRequestError) Is(target error) bool { return target == ErrInvalidCertRequest }

func badRequest(format string, args ...any) error {
	return certRequestError{fmt.Sprintf(format, args...)}
}

// CertKind is the kind of identity a leaf certificate proves.
type CertKind int

// The zero CertKind is none, so that a forgotten kind is refused rather
// than taken for a store.
const (
	// KindStore is a store's certificate, CN store:<id>. A store serves
	// and dials its peers with the same one, so it is for both ends.
	KindStore CertKind = iota + 1
	// KindPD is a PD member's, CN pd:<name>, also for both ends (the
	// client port and the etcd peer port).
	KindPD
	// KindClient is a client's, CN its name; the name admin is an
	// operator's. It can only dial.
	KindClient
)

func (k CertKind) String() string {
	switch k {
	case KindStore:
		return "store"
	case KindPD:
		return "pd"
	case KindClient:
		return "client"
	}
	return fmt.Sprintf("CertKind(%d)", int(k))
}

// maxNameLen bounds PD member and client names: they are Common Names
// (at most 64 characters by RFC 5280) and parts of file names.
const maxNameLen = 64

// CreateCA creates a CA in dir: dir/ca.crt and dir/ca.key (0600), valid
// for lifetime. It creates dir (0700) if it is missing, and refuses to
// replace an existing CA unless overwrite: every certificate the old one
// signed stops being trusted by machines given the new ca.crt.
func CreateCA(dir string, lifetime time.Duration, overwrite bool) error {
	if err := checkDirAndLifetime(dir, lifetime); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create certificates directory: %w", err)
	}
	if !overwrite {
		if err := refuseExisting(certPath, keyPath); err != nil {
			return err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		// Leaves only: a CA this tool makes signs no intermediate CA.
		MaxPathLenZero: true,
		KeyUsage:       x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	return writePair(certPath, der, keyPath, key)
}

// CreateCert issues a leaf certificate of kind signed by the CA in dir and
// returns the files it wrote there. name is the store's id (decimal), the
// PD member's name or the client's name (admin for an operator). A store's
// and a PD member's certificate name the hosts they are reached at (IP
// addresses or DNS names, at least one); a client's names none. It
// refuses to replace existing files unless overwrite.
func CreateCert(dir string, kind CertKind, name string, hosts []string, lifetime time.Duration, overwrite bool) (certPath, keyPath string, err error) {
	if err := checkDirAndLifetime(dir, lifetime); err != nil {
		return "", "", err
	}
	cn, base, err := leafName(kind, name)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		BasicConstraintsValid: true,
		// ECDSA keys only sign; KeyEncipherment is for RSA key exchange.
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	switch kind {
	case KindStore, KindPD:
		if len(hosts) == 0 {
			return "", "", badRequest("a %s certificate needs at least one host (an IP address or DNS name it is reached at)", kind)
		}
		if tmpl.IPAddresses, tmpl.DNSNames, err = splitHosts(hosts); err != nil {
			return "", "", err
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case KindClient:
		if len(hosts) > 0 {
			return "", "", badRequest("a client certificate names no hosts (it only dials); got %s", strings.Join(hosts, ", "))
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}

	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-backdate), now.Add(lifetime)
	if tmpl.NotAfter.After(caCert.NotAfter) {
		// A leaf that outlives its CA stops verifying with the CA anyway;
		// better to say so now than to have it fail in years.
		return "", "", fmt.Errorf("a certificate valid for %v would outlive the CA in %s, which expires %s: ask for a shorter lifetime or create a new CA",
			lifetime, dir, caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	certPath, keyPath = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if !overwrite {
		if err := refuseExisting(certPath, keyPath); err != nil {
			return "", "", err
		}
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("create %s certificate: %w", kind, err)
	}
	if err := writePair(certPath, der, keyPath, key); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

func checkDirAndLifetime(dir string, lifetime time.Duration) error {
	if dir == "" {
		return badRequest("no certificates directory given")
	}
	if lifetime <= 0 {
		return badRequest("a certificate's lifetime must be positive, not %v", lifetime)
	}
	return nil
}

// leafName returns the Common Name of a leaf and the base of its file
// names, checking name against what ParseCN will make of the CN.
func leafName(kind CertKind, name string) (cn, base string, err error) {
	switch kind {
	case KindStore:
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil || id == 0 {
			return "", "", badRequest("store id %q is not a positive integer", name)
		}
		// The canonical form, so that "007" is store:7 as ParseCN reads it.
		s := strconv.FormatUint(id, 10)
		return "store:" + s, "store." + s, nil
	case KindPD:
		if err := checkName("PD member name", name); err != nil {
			return "", "", err
		}
		return "pd:" + name, "pd." + name, nil
	case KindClient:
		// Caught before the character check so that the message says why.
		for _, p := range []struct{ prefix, whose string }{{"store:", "a store's"}, {"pd:", "a PD member's"}} {
			if strings.HasPrefix(name, p.prefix) {
				return "", "", badRequest("client name %q starts with %q, which marks %s certificate: a client's name may not",
					name, p.prefix, p.whose)
			}
		}
		if err := checkName("client name", name); err != nil {
			return "", "", err
		}
		return name, "client." + name, nil
	}
	return "", "", badRequest("unknown certificate kind %v", kind)
}

// checkName accepts 1-64 characters of [A-Za-z0-9._-]: safe in a file
// name, in a Common Name, and in etcd's --initial-cluster list.
func checkName(what, name string) error {
	if name == "" {
		return badRequest("the %s is empty", what)
	}
	if len(name) > maxNameLen {
		return badRequest("the %s %q is longer than %d characters", what, name, maxNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return badRequest("the %s %q has %q: only letters, digits, '.', '_' and '-' may be used", what, name, r)
		}
	}
	return nil
}

// splitHosts sorts hosts into the IP and DNS subject alternative names,
// dropping repeats.
func splitHosts(hosts []string) ([]net.IP, []string, error) {
	var ips []net.IP
	var names []string
	seen := map[string]bool{}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		if err := checkDNSName(h); err != nil {
			return nil, nil, err
		}
		if n := strings.ToLower(h); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return ips, names, nil
}

// checkDNSName accepts a host name (labels of letters, digits and '-',
// optionally "*." first for a wildcard), and says what is wrong with the
// usual mistakes: a port, a URL, brackets around an IPv6 address.
func checkDNSName(h string) error {
	if h == "" {
		return badRequest("a host is empty")
	}
	if strings.Contains(h, "://") {
		return badRequest("host %q is a URL: give the host name or IP address alone", h)
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return badRequest("host %q has a port: give the host name or IP address alone", h)
	}
	if len(h) > 253 {
		return badRequest("host %q is longer than a DNS name may be (253)", h)
	}
	name := strings.TrimPrefix(h, "*.")
	for _, label := range strings.Split(name, ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for _, r := range label {
			ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
		}
		if !ok {
			return badRequest("host %q is neither an IP address nor a DNS name", h)
		}
	}
	return nil
}

// newSerial is a random positive 128-bit serial number: unique without
// keeping count of what was issued (RFC 5280 asks for at most 20 octets).
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// loadCA reads the CA of dir, checking that it can sign: a CA certificate
// with the certificate-signing usage, and the key that goes with it.
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no CA in %s (create it first): %w", dir, err)
		}
		return nil, nil, fmt.Errorf("read CA certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s holds no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", certPath, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("%s is not a CA certificate that may sign certificates", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("the CA's key is missing (certificates are issued where the CA was created): %w", err)
		}
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s is not the key of %s", keyPath, certPath)
	}
	return cert, key, nil
}

// parseKey reads a PEM private key in any of the usual encodings, so that
// a CA made by openssl or another tool works too.
func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}

// refuseExisting fails if any of paths exists, naming them all, before
// anything is written: a pair is never half replaced.
func refuseExisting(paths ...string) error {
	var existing []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			existing = append(existing, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if len(existing) > 0 {
		return fmt.Errorf("refusing to replace %s: %w", strings.Join(existing, " and "), fs.ErrExist)
	}
	return nil
}

// writePair writes a key (0600) and then its certificate (0644).
func writePair(certPath string, certDER []byte, keyPath string, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644)
}

// writeFile writes through a temporary file renamed into place, so that a
// reader never sees half a file and a key is never readable by others,
// not even for a moment (the temporary file is created 0600).
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
