package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rdb-project/rdb/store/security"
)

// Config is one PD member's configuration. The zero value is not usable:
// start from DefaultConfig or ParseFlags.
type Config struct {
	// Name is this member's name in the etcd cluster.
	Name string
	// DataDir holds etcd's data; it survives restarts. Default: <name>.data.
	DataDir string
	// ClientURLs are the URLs this member listens on for etcd and PD clients.
	ClientURLs []string
	// PeerURLs are the URLs this member listens on for the other members.
	PeerURLs []string
	// AdvertiseClientURLs and AdvertisePeerURLs are what other members and
	// clients are told to use. Default: the listen URLs.
	AdvertiseClientURLs []string
	AdvertisePeerURLs   []string
	// InitialCluster is name=peerURL,... of the first members. Default: this
	// member alone. Ignored once the data dir holds a cluster.
	InitialCluster string
	// InitialClusterState is "new" to bootstrap, "existing" to join.
	InitialClusterState string
	// LogLevel is debug, info, warn or error; PD and etcd log with it.
	LogLevel string
	// Logger, when set, is used instead of one built from LogLevel.
	Logger *zap.Logger

	// LeaderLease is the TTL of the leader's etcd lease (whole seconds): a
	// leader that cannot renew it for that long stops acting as leader, and
	// the other members campaign once it has expired.
	LeaderLease time.Duration
	// StoreDownAfter: a store that has not heartbeat for this long is
	// disconnected (--store-disconnect-after): no longer up, but its
	// replicas stay where they are.
	StoreDownAfter time.Duration
	// MaxStoreDownTime: a store that has not heartbeat for this long is
	// down, and its replicas are re-created on other stores.
	MaxStoreDownTime time.Duration
	// ReplicationFactor is how many stores hold a namespace unless it says
	// otherwise (pdctl namespace set-replicas).
	ReplicationFactor int
	// MaxConcurrentMoves bounds the namespaces whose replicas are moving at
	// once (replica repair, store removal and balance together).
	MaxConcurrentMoves int
	// ScheduleInterval is how often the leader looks for replicas to place,
	// repair or balance.
	ScheduleInterval time.Duration
	// FormSettle is how long no new store must have registered (nor this
	// member have become leader) before the leader picks a strong
	// namespace's group voters: stores that start together all become
	// voters, instead of the first one alone. 0 forms groups as soon as a
	// store is up.
	FormSettle time.Duration
	// WatchProgressInterval is how often an idle namespace watch reports the
	// current revision.
	WatchProgressInterval time.Duration
	// TickMs and ElectionMs are etcd's Raft heartbeat and election timeout.
	TickMs, ElectionMs uint

	// TLS is the client port's certificate (--cert-file, --key-file,
	// --trusted-ca-file): with it, clients must present a certificate the
	// CA signed, and their Common Name decides what they may call.
	TLS security.Files
	// PeerTLS is the etcd peer port's (--peer-cert-file, ...).
	PeerTLS security.Files
	// MaxNamespaces bounds the namespaces PD creates (ResourceExhausted
	// past it).
	MaxNamespaces int
	// EnablePprof serves Go's profiler under /debug/pprof/ on the client
	// URLs (as etcd's --enable-pprof).
	EnablePprof bool

	// Driver, when set, runs on the leader only (see Driver).
	Driver Driver
}

// Default addresses: `pd-server` alone starts a one-member PD on them.
const (
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"
	DefaultName      = "pd1"
)

// DefaultConfig returns a one-member PD on the default addresses.
func DefaultConfig() Config {
	return Config{
		Name:                  DefaultName,
		ClientURLs:            []string{DefaultClientURL},
		PeerURLs:              []string{DefaultPeerURL},
		InitialClusterState:   "new",
		LogLevel:              "info",
		LeaderLease:           3 * time.Second,
		StoreDownAfter:        5 * time.Second,
		MaxStoreDownTime:      30 * time.Minute,
		ReplicationFactor:     3,
		MaxConcurrentMoves:    8,
		ScheduleInterval:      time.Second,
		FormSettle:            2 * time.Second,
		WatchProgressInterval: 2 * time.Second,
		TickMs:                100,
		ElectionMs:            1000,
		MaxNamespaces:         DefaultMaxNamespaces,
	}
}

// DefaultMaxNamespaces is --max-namespaces' default.
const DefaultMaxNamespaces = 1_000_000

// ParseFlags reads a member's configuration from command-line arguments
// (without the program name). For -h it prints the usage to output and
// returns flag.ErrHelp; other errors are returned, not printed.
func ParseFlags(args []string, output io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("pd-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var clientURLs, peerURLs, advClientURLs, advPeerURLs string
	fs.StringVar(&cfg.Name, "name", cfg.Name, "member name, unique in the PD cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for etcd's data (default \"<name>.data\")")
	fs.StringVar(&clientURLs, "client-urls", DefaultClientURL, "comma-separated URLs to serve etcd and PD clients on")
	fs.StringVar(&peerURLs, "peer-urls", DefaultPeerURL, "comma-separated URLs to serve the other members on")
	fs.StringVar(&advClientURLs, "advertise-client-urls", "", "client URLs told to others (default: --client-urls)")
	fs.StringVar(&advPeerURLs, "advertise-peer-urls", "", "peer URLs told to others (default: --peer-urls)")
	fs.StringVar(&cfg.InitialCluster, "initial-cluster", "", "name=peer-url,... of the initial members (default: this member alone)")
	fs.StringVar(&cfg.InitialClusterState, "initial-cluster-state", cfg.InitialClusterState, "new (bootstrap) or existing (join)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&cfg.LeaderLease, "leader-lease", cfg.LeaderLease, "TTL of the PD leader's lease (whole seconds)")
	fs.DurationVar(&cfg.StoreDownAfter, "store-disconnect-after", cfg.StoreDownAfter, "a store without a heartbeat for this long is disconnected")
	fs.DurationVar(&cfg.StoreDownAfter, "store-down-after", cfg.StoreDownAfter, "old name of --store-disconnect-after")
	fs.DurationVar(&cfg.MaxStoreDownTime, "max-store-down-time", cfg.MaxStoreDownTime, "a store without a heartbeat for this long is down: its replicas are re-created elsewhere")
	fs.IntVar(&cfg.ReplicationFactor, "replication-factor", cfg.ReplicationFactor, "how many stores hold each namespace (1 to 7)")
	fs.IntVar(&cfg.MaxConcurrentMoves, "max-concurrent-moves", cfg.MaxConcurrentMoves, "the most namespaces whose replicas move at once")
	fs.DurationVar(&cfg.FormSettle, "form-settle", cfg.FormSettle, "a strong namespace's group gets its voters once no new store has registered for this long")
	fs.StringVar(&cfg.TLS.CertFile, "cert-file", "", "client port: this member's certificate (TLS; with --key-file and --trusted-ca-file)")
	fs.StringVar(&cfg.TLS.KeyFile, "key-file", "", "client port: the certificate's key")
	fs.StringVar(&cfg.TLS.TrustedCAFile, "trusted-ca-file", "", "client port: the CA that signs every client's and member's certificate")
	fs.StringVar(&cfg.PeerTLS.CertFile, "peer-cert-file", "", "peer port: this member's certificate (TLS between PD members)")
	fs.StringVar(&cfg.PeerTLS.KeyFile, "peer-key-file", "", "peer port: the certificate's key")
	fs.StringVar(&cfg.PeerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "peer port: the CA that signs the members' peer certificates")
	fs.IntVar(&cfg.MaxNamespaces, "max-namespaces", cfg.MaxNamespaces, "the most namespaces PD creates")
	fs.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "serve Go's profiler under /debug/pprof/ on the client URLs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(output)
			fmt.Fprintln(output, "Usage: pd-server [flags]")
			fs.PrintDefaults()
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w (see pd-server -h)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.ClientURLs = splitList(clientURLs)
	cfg.PeerURLs = splitList(peerURLs)
	cfg.AdvertiseClientURLs = splitList(advClientURLs)
	cfg.AdvertisePeerURLs = splitList(advPeerURLs)
	if err := cfg.complete(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// complete checks the configuration and fills in the defaults that depend on
// other fields.
func (c *Config) complete() error {
	if c.Name == "" {
		return errors.New("--name must not be empty")
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".data"
	}
	if len(c.ClientURLs) == 0 {
		return errors.New("--client-urls must not be empty")
	}
	if len(c.PeerURLs) == 0 {
		return errors.New("--peer-urls must not be empty")
	}
	if len(c.AdvertiseClientURLs) == 0 {
		c.AdvertiseClientURLs = c.ClientURLs
	}
	if len(c.AdvertisePeerURLs) == 0 {
		c.AdvertisePeerURLs = c.PeerURLs
	}
	if err := c.TLS.Check(""); err != nil {
		return err
	}
	if err := c.PeerTLS.Check("peer-"); err != nil {
		return err
	}
	for _, list := range []struct {
		flag string
		urls []string
		tls  bool
	}{
		{"--client-urls", c.ClientURLs, c.TLS.Enabled()}, {"--peer-urls", c.PeerURLs, c.PeerTLS.Enabled()},
		{"--advertise-client-urls", c.AdvertiseClientURLs, c.TLS.Enabled()}, {"--advertise-peer-urls", c.AdvertisePeerURLs, c.PeerTLS.Enabled()},
	} {
		for _, u := range list.urls {
			if _, err := parseURL(u, list.tls); err != nil {
				return fmt.Errorf("%s: %w", list.flag, err)
			}
		}
	}
	if c.MaxNamespaces <= 0 {
		return fmt.Errorf("--max-namespaces must be positive, not %d", c.MaxNamespaces)
	}
	if c.InitialCluster == "" {
		parts := make([]string, len(c.AdvertisePeerURLs))
		for i, u := range c.AdvertisePeerURLs {
			parts[i] = c.Name + "=" + u
		}
		c.InitialCluster = strings.Join(parts, ",")
	}
	switch c.InitialClusterState {
	case "new", "existing":
	default:
		return fmt.Errorf("--initial-cluster-state must be \"new\" or \"existing\", not %q", c.InitialClusterState)
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		return fmt.Errorf("--log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.LeaderLease < time.Second {
		return fmt.Errorf("--leader-lease must be at least 1s, not %v", c.LeaderLease)
	}
	if c.StoreDownAfter <= 0 {
		return fmt.Errorf("--store-disconnect-after must be positive, not %v", c.StoreDownAfter)
	}
	if c.MaxStoreDownTime < c.StoreDownAfter {
		return fmt.Errorf("--max-store-down-time (%v) must be at least --store-disconnect-after (%v)", c.MaxStoreDownTime, c.StoreDownAfter)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > MaxReplicas || c.ReplicationFactor%2 == 0 {
		return fmt.Errorf("--replication-factor must be odd, 1 to %d (a strong namespace's group needs an odd number of voters), not %d", MaxReplicas, c.ReplicationFactor)
	}
	if c.MaxConcurrentMoves < 1 {
		return fmt.Errorf("--max-concurrent-moves must be at least 1, not %d", c.MaxConcurrentMoves)
	}
	if c.ScheduleInterval <= 0 {
		c.ScheduleInterval = time.Second
	}
	if c.FormSettle < 0 {
		return fmt.Errorf("--form-settle must not be negative, not %v", c.FormSettle)
	}
	if c.WatchProgressInterval <= 0 {
		c.WatchProgressInterval = 2 * time.Second
	}
	if c.TickMs == 0 || c.ElectionMs < 5*c.TickMs {
		return fmt.Errorf("etcd election timeout (%dms) must be at least 5 ticks (%dms)", c.ElectionMs, c.TickMs)
	}
	return nil
}

// parseURL accepts http://host:port, or https://host:port when the port
// runs TLS: the scheme must say what the port serves.
func parseURL(s string, tls bool) (*url.URL, error) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != scheme {
		hint := ""
		if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			hint = " (https with TLS certificates, http without)"
		}
		return nil, fmt.Errorf("bad URL %q: want %s://host:port%s", s, scheme, hint)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("bad URL %q: want %s://host:port", s, scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("bad URL %q: a path is not allowed", s)
	}
	return u, nil
}

func parseURLs(list []string, tls bool) ([]url.URL, error) {
	out := make([]url.URL, 0, len(list))
	for _, s := range list {
		u, err := parseURL(s, tls)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

// NewLogger builds the zap logger PD and its etcd share.
func NewLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return zc.Build()
}
