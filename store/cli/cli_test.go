package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestParsePeers(t *testing.T) {
	got, err := ParsePeers([]string{"1=127.0.0.1:50051", "2=host:50052"})
	if err != nil || got[1] != "127.0.0.1:50051" || got[2] != "host:50052" {
		t.Fatalf("ParsePeers = %v, %v", got, err)
	}
	for _, bad := range []string{"127.0.0.1:50051", "0=a:1", "x=a:1", "1=", "1=host", "1=host:0", "1=host:70000", "-1=a:1"} {
		if _, err := ParsePeers([]string{bad}); err == nil || !strings.Contains(err.Error(), "ID=HOST:PORT") {
			t.Errorf("ParsePeers(%q) = %v, want a message showing ID=HOST:PORT", bad, err)
		}
	}
	if _, err := ParsePeers([]string{"1=a:1", "1=b:2"}); err == nil {
		t.Error("a store given twice with two addresses was accepted")
	}
}

func TestParseNamespaceModes(t *testing.T) {
	got, err := ParseNamespaceModes([]string{"logs=eventual", "default=strong"})
	if err != nil || got["logs"] != "eventual" || got["default"] != "strong" {
		t.Fatalf("ParseNamespaceModes = %v, %v", got, err)
	}
	for _, bad := range []string{"logs", "logs=fast", "Logs=strong", "=strong", "a/b=strong"} {
		if _, err := ParseNamespaceModes([]string{bad}); err == nil {
			t.Errorf("ParseNamespaceModes(%q) accepted", bad)
		}
	}
}

// TestBadFlagsExitWithAMessage runs the command tree: malformed flags give
// an error to print, not a panic, and no store starts.
func TestBadFlagsExitWithAMessage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--addr", "127.0.0.1:0"}, "--store-id"},
		{[]string{"--store-id", "abc", "--addr", "127.0.0.1:0"}, "store-id"},
		{[]string{"--store-id", "1"}, "--addr"},
		{[]string{"--store-id", "1", "--addr", "127.0.0.1:0", "--peer", "nonsense"}, "ID=HOST:PORT"},
		{[]string{"--store-id", "1", "--addr", "127.0.0.1:0", "--namespace-mode", "logs=fast"}, "strong or eventual"},
		{[]string{"--store-id", "1", "--addr", "127.0.0.1:0", "--log-level", "loud"}, "log-level"},
		{[]string{"--store-id", "1", "--addr", "127.0.0.1:0", "--pd", "a:1", "--peer", "2=b:2"}, "do not go together"},
		{[]string{"--store-id", "1", "--addr", "127.0.0.1:0", "--memory-limit", "2 apples"}, "--memory-limit"},
		{[]string{"--store-id", "1", "--addr", "127.0.0.1:0", "--memory-limit", "1MiB"}, "64MiB"},
		{[]string{"--no-such-flag"}, "unknown flag"},
	} {
		cmd := NewCommand()
		cmd.SetArgs(tc.args)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("rdb-server %v: err = %v, want one saying %q", tc.args, err, tc.says)
		}
	}
}

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"":          0,
		"1536MiB":   1536 << 20,
		"1.5GiB":    3 << 29,
		"2GB":       2e9,
		"2 GiB":     2 << 30,
		"67108864":  64 << 20,
		"100000KiB": 100000 << 10,
	} {
		if got, err := ParseMemoryLimit(in); err != nil || got != want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "1.5", "-1GiB", "1XB", "NaNGiB", "InfMiB", "10MiB", "1e30GiB", "GiB"} {
		if _, err := ParseMemoryLimit(bad); err == nil {
			t.Errorf("ParseMemoryLimit(%q) accepted", bad)
		}
	}
}
