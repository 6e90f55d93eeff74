package cmdtree

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestExitCodes(t *testing.T) {
	root := func() *cobra.Command {
		c := &cobra.Command{Use: "tool"}
		c.AddCommand(&cobra.Command{Use: "ok", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.Println("done")
			return nil
		}})
		c.AddCommand(&cobra.Command{Use: "fail", RunE: func(*cobra.Command, []string) error {
			return RunError{Err: errors.New("raw text")}
		}})
		c.AddCommand(&cobra.Command{Use: "check", RunE: func(*cobra.Command, []string) error {
			return errors.New("--n must be positive")
		}})
		return c
	}
	shout := func(err error) string { return strings.ToUpper(err.Error()) }
	for _, tc := range []struct {
		args           []string
		message        func(error) string
		code           int
		stdout, stderr string
	}{
		{[]string{"ok"}, nil, ExitOK, "done\n", ""},
		{[]string{"fail"}, nil, ExitError, "", "Error: raw text\n"},
		{[]string{"fail"}, shout, ExitError, "", "Error: RAW TEXT\n"},
		{[]string{"check"}, shout, ExitUsage, "", "Error: --n must be positive\nRun 'tool --help' for usage.\n"},
		{[]string{"ok", "extra"}, nil, ExitUsage, "", "Error: unknown command \"extra\" for \"tool ok\"\nRun 'tool --help' for usage.\n"},
		{[]string{"ok", "--bad"}, nil, ExitUsage, "", "Error: unknown flag: --bad\nRun 'tool --help' for usage.\n"},
	} {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), root(), tc.args, &out, &errOut, tc.message)
		if code != tc.code || out.String() != tc.stdout || errOut.String() != tc.stderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}
