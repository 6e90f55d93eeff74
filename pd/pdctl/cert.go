// The `cert` noun: a CA and certificates for a cluster without a PKI, as
// `cockroach cert` makes them (store/security does the work). Unlike the
// other nouns it talks to no PD — it only writes files, and is needed
// before there is a cluster — so its commands do not go through
// app.action, which dials PD.

package pdctl

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/store/cmdtree"
	"github.com/rdb-project/rdb/store/security"
)

const (
	defaultCertsDir = "certs"
	// Long, as cockroach's: rotating a CA by hand is a chore, and these
	// are for clusters whose operators have no PKI to rotate with.
	defaultCALifetime   = 10 * 365 * 24 * time.Hour // 87600h
	defaultCertLifetime = 5 * 365 * 24 * time.Hour  // 43800h
)

// certView is what a cert command prints for the pair it wrote.
type certView struct {
	Kind       string   `json:"kind"` // ca, store, pd, admin or client
	CommonName string   `json:"common_name"`
	CertFile   string   `json:"cert_file"`
	KeyFile    string   `json:"key_file"`
	Hosts      []string `json:"hosts"`
	NotAfter   string   `json:"not_after"` // RFC 3339
}

// certFlags are the flags every cert command has.
type certFlags struct {
	dir       string
	lifetime  time.Duration
	overwrite bool
}

func (f *certFlags) register(c *cobra.Command, lifetime time.Duration) {
	c.Flags().StringVar(&f.dir, "certs-dir", defaultCertsDir, "directory of the CA and the certificates")
	c.Flags().DurationVar(&f.lifetime, "lifetime", lifetime, "how long the certificate is valid")
	c.Flags().BoolVar(&f.overwrite, "overwrite", false, "replace files that already exist")
}

func (a *app) certCommand() *cobra.Command {
	c := group("cert", "Create a CA and certificates, for a cluster without a PKI",
		a.certCreateCACommand(), a.certCreateStoreCommand(), a.certCreatePDCommand(), a.certCreateClientCommand())
	c.Long = `Create a CA and the certificates it signs, for mutual TLS without a PKI. The
certificate's Common Name is who a caller is: store:<id> a store, pd:<name> a
PD member, admin an operator, any other name an ordinary client.

Everything goes to one directory (--certs-dir, ./certs by default): ca.crt
and ca.key, then store.<id>, pd.<name> and client.<name> .crt/.key pairs.
Copy to each machine only ca.crt and that machine's own pair; keep ca.key
where certificates are issued. These commands do not contact PD.`
	return c
}

func (a *app) certCreateCACommand() *cobra.Command {
	var f certFlags
	c := &cobra.Command{
		Use:   "create-ca",
		Short: "Create the CA (ca.crt and ca.key) that signs every certificate of the cluster",
		Long: `Create the CA (ca.crt and ca.key) that signs every certificate of the cluster.
With --overwrite it replaces an existing CA: machines given the new ca.crt no
longer trust what the old one signed, so every certificate must be issued again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := security.CreateCA(f.dir, f.lifetime, f.overwrite); err != nil {
				return certError(err)
			}
			return a.printCert("ca", filepath.Join(f.dir, security.CACertFile), filepath.Join(f.dir, security.CAKeyFile))
		},
	}
	f.register(c, defaultCALifetime)
	return c
}

func (a *app) certCreateStoreCommand() *cobra.Command {
	var f certFlags
	var id string
	var hosts []string
	c := &cobra.Command{
		Use:   "create-store --id N --host H [--host H...]",
		Short: "Create a store's certificate (CN store:<id>), for serving and for dialing its peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.issue(&f, security.KindStore, id, hosts)
		},
	}
	f.register(c, defaultCertLifetime)
	c.Flags().StringVar(&id, "id", "", "the store's id (a positive integer)")
	c.Flags().StringSliceVar(&hosts, "host", nil, "an IP address or DNS name the store is reached at (repeat, or comma-separate)")
	_ = c.MarkFlagRequired("id")
	_ = c.MarkFlagRequired("host")
	return c
}

func (a *app) certCreatePDCommand() *cobra.Command {
	var f certFlags
	var name string
	var hosts []string
	c := &cobra.Command{
		Use:   "create-pd --name NAME --host H [--host H...]",
		Short: "Create a PD member's certificate (CN pd:<name>), for its client and peer ports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.issue(&f, security.KindPD, name, hosts)
		},
	}
	f.register(c, defaultCertLifetime)
	c.Flags().StringVar(&name, "name", "", "the member's name (pd-server --name)")
	c.Flags().StringSliceVar(&hosts, "host", nil, "an IP address or DNS name the member is reached at (repeat, or comma-separate)")
	_ = c.MarkFlagRequired("name")
	_ = c.MarkFlagRequired("host")
	return c
}

func (a *app) certCreateClientCommand() *cobra.Command {
	var f certFlags
	var name string
	var admin bool
	c := &cobra.Command{
		Use:   "create-client (--name NAME | --admin)",
		Short: "Create a client's certificate (CN its name), or with --admin an operator's (CN admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case admin && name != "" && name != "admin":
				// Plain errors are usage errors (exit 2).
				return fmt.Errorf("--admin makes the certificate of CN admin; --name %q contradicts it", name)
			case admin:
				name = "admin"
			case name == "":
				return errors.New("--name is required (or --admin for an operator's certificate)")
			}
			return a.issue(&f, security.KindClient, name, nil)
		},
	}
	f.register(c, defaultCertLifetime)
	c.Flags().StringVar(&name, "name", "", "the client's name, its certificate's CN (1-64 of A-Z a-z 0-9 . _ -)")
	c.Flags().BoolVar(&admin, "admin", false, "an operator's certificate (CN admin): it may change namespace modes")
	return c
}

// issue creates a leaf certificate and prints it.
func (a *app) issue(f *certFlags, kind security.CertKind, name string, hosts []string) error {
	certPath, keyPath, err := security.CreateCert(f.dir, kind, name, hosts, f.lifetime, f.overwrite)
	if err != nil {
		caPath := filepath.Join(f.dir, security.CACertFile)
		if _, serr := os.Stat(caPath); errors.Is(err, fs.ErrNotExist) && errors.Is(serr, fs.ErrNotExist) {
			// The likeliest mistake: say what to run.
			err = fmt.Errorf("no CA in %s (%s does not exist): run 'pdctl cert create-ca --certs-dir %s' first, or point --certs-dir at the CA's directory",
				f.dir, caPath, f.dir)
		}
		return certError(err)
	}
	return a.printCert(kind.String(), certPath, keyPath)
}

// certError sorts an error of store/security by pdctl's exit codes: a
// wrong request is a wrong command line (exit 2), anything else a failed
// command (exit 1).
func certError(err error) error {
	if errors.Is(err, security.ErrInvalidCertRequest) {
		return err
	}
	if errors.Is(err, fs.ErrExist) {
		err = fmt.Errorf("%w (--overwrite replaces it)", err)
	}
	return runError{Err: err}
}

// printCert prints the pair just written, read back from its file so that
// what is shown is what was written.
func (a *app) printCert(kind, certPath, keyPath string) error {
	cert, err := readCert(certPath)
	if err != nil {
		return runError{Err: err}
	}
	v := certView{
		Kind: kind, CommonName: cert.Subject.CommonName, CertFile: certPath, KeyFile: keyPath,
		Hosts: []string{}, NotAfter: cert.NotAfter.UTC().Format(time.RFC3339),
	}
	if kind == "client" && v.CommonName == "admin" {
		v.Kind = "admin"
	}
	for _, ip := range cert.IPAddresses {
		v.Hosts = append(v.Hosts, ip.String())
	}
	v.Hosts = append(v.Hosts, cert.DNSNames...)
	if a.json() {
		return cmdtree.WriteJSON(a.stdout, v)
	}
	return cmdtree.WriteTable(a.stdout, []string{"KIND", "COMMON_NAME", "CERT_FILE", "KEY_FILE", "HOSTS", "EXPIRES"},
		[][]string{{v.Kind, v.CommonName, v.CertFile, v.KeyFile, joinOrDash(v.Hosts), v.NotAfter}})
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}
