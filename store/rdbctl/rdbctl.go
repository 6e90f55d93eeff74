// Package rdbctl is rdbctl, the data command line of an rdb cluster (as
// etcdctl is etcd's, beside pdctl for operators): a cobra tree of verbs
// that each take a namespace — `rdbctl get NS KEY`, `put NS KEY VALUE`,
// `cas NS KEY VALUE --expect N`, `del NS KEY`, `scan NS`, `mode NS` —
// sent through the Go client (store/client) to any store of the cluster,
// with its retries of what is safe, failover and leader routing.
//
// get, del and scan serve either mode: they read the namespace's mode
// first (once per invocation) and call the strong API (linearizable, with
// versions) or the raw one (one store's replica, last writer wins). put
// is the raw write of eventual namespaces and cas the compare-and-swap of
// strong ones; each says which command to use on the other mode.
//
// Output is a table or a sentence for people, or with -o json one JSON
// document per command, with snake_case fields that are always present.
// The exit code is 0 when the command did what it was asked, 1 when it
// did not (the cluster refused or could not be reached, a compare-and-swap
// or a delete found another version), and 2 when the command line is
// wrong. A write whose outcome is unknown says so: it may have been
// applied.
package rdbctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/cmdtree"
	"github.com/rdb-project/rdb/store/security"
)

// EndpointsEnv names the environment variable that, when set, is
// --endpoints' default (as ETCDCTL_ENDPOINTS is etcdctl's).
const EndpointsEnv = cmdtree.StoreEndpointsEnv

// DefaultEndpoint is the store --endpoints names without $RDB_ENDPOINTS:
// the first store of `make run`.
const DefaultEndpoint = cmdtree.DefaultStoreEndpoint

// Exit codes.
const (
	ExitOK    = cmdtree.ExitOK
	ExitError = cmdtree.ExitError // the command did not do what it was asked
	ExitUsage = cmdtree.ExitUsage // the command line is wrong
)

// Run runs rdbctl with args (without the program name) and returns its
// exit code. Results go to stdout, errors to stderr. Cancelling ctx stops
// the command; each request is bounded by --request-timeout, unless ctx
// has a deadline, which then bounds every request instead.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, modes: map[string]string{}}
	defer a.close()
	return cmdtree.Execute(ctx, a.rootCommand(), args, stdout, stderr, nil)
}

// runError marks an error of the work, as opposed to one of the command
// line.
type runError = cmdtree.RunError

// app holds one invocation's flags, its client and what it has learned
// of the namespaces' modes.
type app struct {
	stdout, stderr io.Writer

	endpoints      string
	addrs          []string // --endpoints, parsed
	tls            security.Files
	output         string
	requestTimeout time.Duration

	client *client.Client
	// modes caches each namespace's mode for the rest of the invocation.
	modes map[string]string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "rdbctl",
		Short: "Read and write the data of an rdb cluster",
		Long: `rdbctl reads and writes keys of an rdb cluster's namespaces through any of
its stores (--endpoints lists several, for failover; without it rdbctl uses
$` + EndpointsEnv + `, a list in the same form, and else ` + DefaultEndpoint + `).

A strong namespace takes cas, and get, del and scan read it linearizably, with
versions; an eventual namespace takes put, and get, del and scan use one
store's replica, where the last writer wins. get, del and scan look up the
namespace's mode first and call what fits it.

  rdbctl cas default greeting hello --expect 0
  rdbctl get default greeting
  rdbctl put logs line-1 started
  rdbctl scan logs --prefix line- -o json
  rdbctl mode logs strong --wait

Exit codes: 0 done, 1 not done (the error says why; a write whose outcome is
unknown may have been applied), 2 a wrong command line. A key or value that
starts with "-" goes after "--".`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return fmt.Errorf("-o must be json or table, not %q", a.output)
			}
			if a.requestTimeout <= 0 {
				return errors.New("--request-timeout must be positive")
			}
			if a.tls.Check("") != nil {
				return errors.New("--cacert, --cert and --key go together")
			}
			var err error
			a.addrs, err = client.SplitEndpoints(a.endpoints)
			if err != nil {
				return fmt.Errorf("--endpoints: %w", err)
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&a.endpoints, "endpoints", cmdtree.StoreEndpoints(), "stores, comma-separated host:port; $"+EndpointsEnv+" sets the default")
	pf.StringVar(&a.tls.TrustedCAFile, "cacert", "", "CA of a cluster that runs with TLS (with --cert and --key, as etcdctl)")
	pf.StringVar(&a.tls.CertFile, "cert", "", "client certificate for a cluster with TLS (an admin's to change a namespace's mode)")
	pf.StringVar(&a.tls.KeyFile, "key", "", "the certificate's key")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&a.requestTimeout, "request-timeout", 10*time.Second, "how long one request may take, retries and failover included")
	root.AddCommand(a.getCommand(), a.putCommand(), a.casCommand(), a.delCommand(), a.scanCommand(), a.modeCommand())
	return root
}

// action is a command's work: it gets the client and the command's
// context, and its errors count as errors of the work (exit 1).
func (a *app) action(f func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(a.addrs)
		if err != nil {
			return runError{Err: err}
		}
		a.client = c
		if err := f(cmd.Context(), c, cmd, args); err != nil {
			return runError{Err: err}
		}
		return nil
	}
}

// newClient is a client of the stores at addrs with the invocation's TLS
// and request timeout.
func (a *app) newClient(addrs []string) (*client.Client, error) {
	return client.New(addrs, client.WithTLSFiles(a.tls), client.WithCallTimeout(a.requestTimeout))
}

func (a *app) close() {
	if a.client != nil {
		_ = a.client.Close()
	}
}

func (a *app) json() bool { return a.output == "json" }

// print writes doc with -o json, else the table or the text for people.
func (a *app) print(doc any, text func(w io.Writer) error) error {
	if a.json() {
		return cmdtree.WriteJSON(a.stdout, doc)
	}
	return text(a.stdout)
}

// modeOf returns namespace ns's mode, asked of the cluster once per
// invocation. (A namespace never seen before is created strong, as by any
// call that names it.)
func (a *app) modeOf(ctx context.Context, ns string) (string, error) {
	if m, ok := a.modes[ns]; ok {
		return m, nil
	}
	m, err := a.client.GetMode(ctx, ns)
	if err != nil {
		return "", err
	}
	a.modes[ns] = m.Mode
	return m.Mode, nil
}

// byMode runs call with namespace ns's mode. If the call is refused for
// the wrong mode (the namespace was switched since its mode was read), it
// reads the mode again and, if it changed, runs call once more: a
// wrong-mode answer applied nothing.
func (a *app) byMode(ctx context.Context, ns string, call func(mode string) error) error {
	mode, err := a.modeOf(ctx, ns)
	if err != nil {
		return err
	}
	err = call(mode)
	if !errors.Is(err, client.ErrWrongMode) {
		return err
	}
	delete(a.modes, ns)
	if now, merr := a.modeOf(ctx, ns); merr == nil && now != mode {
		return call(now)
	}
	return err
}

// explain adds what the user can do to the errors that need it: after a
// write to keys whose outcome is unknown, read them first.
func explain(err error, ns string, keys ...string) error {
	if !errors.Is(err, client.ErrOutcomeUnknown) {
		return err
	}
	if len(keys) != 1 {
		return fmt.Errorf("%w; read the keys (rdbctl get %s KEY) before writing them again", err, ns)
	}
	get := "rdbctl get " + ns + " "
	if strings.HasPrefix(keys[0], "-") {
		get += "-- "
	}
	return fmt.Errorf("%w; read the key (%s%s) before writing it again", err, get, shellWord(keys[0]))
}
