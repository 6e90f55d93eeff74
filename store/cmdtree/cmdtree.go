// Package cmdtree runs a cobra command tree the way every rdb command line
// does: errors go to stderr, and the exit code says whose fault it was —
// 1 when the work failed (a request, a run), 2 when the command line is
// wrong (cobra's own errors: an unknown command, a bad flag, wrong
// arguments, and a command's checks of its flags). It also holds what the
// command lines share: how they print (WriteJSON, WriteTable) and which
// stores they talk to by default (StoreEndpoints).
package cmdtree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the work failed
	ExitUsage = 2 // the command line is wrong
)

// StoreEndpointsEnv names the environment variable that, when set, is the
// default of --endpoints, the stores of the command lines that talk to
// them (rdbctl, rdb-bench), as ETCDCTL_ENDPOINTS is etcdctl's.
const StoreEndpointsEnv = "RDB_ENDPOINTS"

// DefaultStoreEndpoint is --endpoints' default without $RDB_ENDPOINTS: the
// first store of `make run`.
const DefaultStoreEndpoint = "127.0.0.1:50051"

// StoreEndpoints is the default of --endpoints: $RDB_ENDPOINTS if set,
// else DefaultStoreEndpoint.
func StoreEndpoints() string {
	if env := strings.TrimSpace(os.Getenv(StoreEndpointsEnv)); env != "" {
		return env
	}
	return DefaultStoreEndpoint
}

// RunError marks an error of the work, as opposed to one of the command
// line. A command returns it from RunE.
type RunError struct{ Err error }

func (e RunError) Error() string { return e.Err.Error() }
func (e RunError) Unwrap() error { return e.Err }

// Execute runs root with args (without the program name), printing to
// stdout and stderr, and returns the exit code. A RunError is printed as
// message says (nil: its text); any other error is a usage error, printed
// with a pointer to the program's --help.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer, message func(error) string) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	root.SilenceUsage = true
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var re RunError
	if errors.As(err, &re) {
		text := re.Err.Error()
		if message != nil {
			text = message(re.Err)
		}
		fmt.Fprintf(stderr, "Error: %s\n", text)
		return ExitError
	}
	fmt.Fprintf(stderr, "Error: %s\nRun '%s --help' for usage.\n", err, root.Name())
	return ExitUsage
}
