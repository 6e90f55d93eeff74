// Package pdctl is the operator's command line for PD: a noun-first cobra
// tree (`pdctl namespace set logs eventual`, `pdctl store list`) that prints
// a table or JSON (-o json, one document per command, snake_case fields,
// numbers as numbers) and exits non-zero on every error: 1 when the request
// failed, 2 when the command line is wrong.
package pdctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/store/cmdtree"
	"github.com/rdb-project/rdb/store/security"
)

// EndpointsEnv names the environment variable that, when set, is --pd's
// default (as ETCDCTL_ENDPOINTS is etcdctl's).
const EndpointsEnv = "RDB_PD"

// Exit codes.
const (
	ExitOK    = cmdtree.ExitOK
	ExitError = cmdtree.ExitError // the request failed
	ExitUsage = cmdtree.ExitUsage // the command line is wrong
)

// Run runs pdctl with args (without the program name) and returns its exit
// code. Errors are printed to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	defer a.close()
	return cmdtree.Execute(ctx, a.rootCommand(), args, stdout, stderr, message)
}

// message is what the user reads for err: a gRPC status is shown by its
// message alone, which PD writes for people.
func message(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// runError marks an error of a request, as opposed to one of the command
// line (cobra's own errors: unknown command, bad flag, wrong arguments).
type runError = cmdtree.RunError

// app holds the global flags and the client of one invocation.
type app struct {
	stdout, stderr io.Writer
	endpoints      string
	output         string
	requestTimeout time.Duration
	tls            security.Files
	client         *pdclient.Client
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "pdctl",
		Short: "Operate the rdb placement driver (PD)",
		Long: `pdctl reads and changes the rdb cluster's namespace -> mode table and shows
the PD members and the stores, through any PD member (--pd lists several; the
first that answers serves). Without --pd, pdctl uses $RDB_PD, a list in the
same form, and else 127.0.0.1:2379.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE:          helpOnly,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return fmt.Errorf("-o must be json or table, not %q", a.output)
			}
			if a.requestTimeout <= 0 {
				return fmt.Errorf("--request-timeout must be positive")
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	endpoints := pdclient.DefaultEndpoint
	if env := strings.TrimSpace(os.Getenv(EndpointsEnv)); env != "" {
		endpoints = env
	}
	pf.StringVar(&a.endpoints, "pd", endpoints, "PD endpoints, comma-separated host:port, http://host:port or https://host:port; $"+EndpointsEnv+" sets the default")
	pf.StringVar(&a.tls.TrustedCAFile, "cacert", "", "CA of a PD that runs with TLS (with --cert and --key, as etcdctl)")
	pf.StringVar(&a.tls.CertFile, "cert", "", "client certificate for a PD with TLS: an admin's (CN admin) to change modes")
	pf.StringVar(&a.tls.KeyFile, "key", "", "the certificate's key")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&a.requestTimeout, "request-timeout", 10*time.Second, "how long one request may take, failover included")
	root.AddCommand(a.namespaceCommand(), a.storeCommand(), a.memberCommand(), a.clusterCommand(), a.certCommand())
	return root
}

// group is a noun: it only holds subcommands. Alone it prints its help; with
// an unknown subcommand it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: helpOnly}
	c.AddCommand(subs...)
	return c
}

// helpOnly is the action of a command that only holds others. (Without an
// action, cobra would print the help for an unknown subcommand too.)
func helpOnly(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// action is a command's work: it gets the PD client and a context bounded by
// --request-timeout, and its errors count as request errors.
func (a *app) action(f func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := a.tls.Check(""); err != nil {
			return runError{Err: errors.New("--cacert, --cert and --key go together")}
		}
		creds, err := a.tls.ClientCredentials()
		if err != nil {
			return runError{Err: err}
		}
		pd, err := pdclient.New(a.endpoints, pdclient.WithAttemptTimeout(3*time.Second), pdclient.WithCredentials(creds))
		if err != nil {
			return runError{Err: err}
		}
		a.client = pd
		ctx, cancel := context.WithTimeout(cmd.Context(), a.requestTimeout)
		defer cancel()
		if err := f(ctx, pd, cmd, args); err != nil {
			return runError{Err: err}
		}
		return nil
	}
}

func (a *app) close() {
	if a.client != nil {
		a.client.Close()
	}
}

func (a *app) json() bool { return a.output == "json" }

func joinOrDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
