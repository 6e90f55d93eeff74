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

func TestOutput(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, map[string]any{"value": "<a&b>", "n": 3}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"n\": 3,\n  \"value\": \"<a&b>\"\n}\n"; b.String() != want {
		t.Errorf("WriteJSON = %q, want %q", b.String(), want)
	}
	b.Reset()
	if err := WriteTable(&b, []string{"KEY", "VALUE"}, [][]string{{"a", "1"}, {"longer", "2"}}); err != nil {
		t.Fatal(err)
	}
	if want := "KEY     VALUE\na       1\nlonger  2\n"; b.String() != want {
		t.Errorf("WriteTable = %q, want %q", b.String(), want)
	}
}

func TestStoreEndpoints(t *testing.T) {
	t.Setenv(StoreEndpointsEnv, " ")
	if got := StoreEndpoints(); got != DefaultStoreEndpoint {
		t.Errorf("StoreEndpoints without $%s = %q, want %q", StoreEndpointsEnv, got, DefaultStoreEndpoint)
	}
	t.Setenv(StoreEndpointsEnv, " 10.0.0.1:1,10.0.0.2:1 ")
	if got := StoreEndpoints(); got != "10.0.0.1:1,10.0.0.2:1" {
		t.Errorf("StoreEndpoints = %q, want $%s's list", got, StoreEndpointsEnv)
	}
}
