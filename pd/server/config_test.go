package server_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/server"
)

func TestParseFlags(t *testing.T) {
	cfg, err := server.ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "pd1" || cfg.DataDir != "pd1.data" || cfg.ClientURLs[0] != "http://127.0.0.1:2379" ||
		cfg.PeerURLs[0] != "http://127.0.0.1:2380" || cfg.InitialCluster != "pd1=http://127.0.0.1:2380" ||
		cfg.InitialClusterState != "new" || cfg.AdvertiseClientURLs[0] != "http://127.0.0.1:2379" ||
		cfg.FormSettle != 2*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}

	cfg, err = server.ParseFlags([]string{
		"--name", "pd2", "--client-urls", "http://0.0.0.0:3379", "--advertise-client-urls", "http://pd2:3379",
		"--peer-urls", "http://0.0.0.0:3380", "--advertise-peer-urls", "http://pd2:3380",
		"--initial-cluster", "pd1=http://pd1:3380,pd2=http://pd2:3380", "--initial-cluster-state", "existing",
		"--log-level", "warn", "--leader-lease", "5s", "--store-down-after", "10s", "--form-settle", "0s",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "pd2" || cfg.DataDir != "pd2.data" || cfg.AdvertiseClientURLs[0] != "http://pd2:3379" ||
		cfg.InitialClusterState != "existing" || cfg.LogLevel != "warn" || cfg.LeaderLease != 5*time.Second ||
		cfg.StoreDownAfter != 10*time.Second || cfg.FormSettle != 0 {
		t.Fatalf("parsed: %+v", cfg)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--name", ""}, "--name must not be empty"},
		{[]string{"--initial-cluster-state", "old"}, `"new" or "existing"`},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--client-urls", "https://127.0.0.1:2379"}, "want http://host:port"},
		{[]string{"--peer-urls", "127.0.0.1:2380"}, "want http://host:port"},
		{[]string{"--client-urls", ""}, "--client-urls must not be empty"},
		{[]string{"--leader-lease", "100ms"}, "at least 1s"},
		{[]string{"--store-down-after", "0s"}, "must be positive"},
		{[]string{"--form-settle", "-1s"}, "--form-settle must not be negative"},
	} {
		_, err := server.ParseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseFlags(%q) = %v, want an error with %q", tc.args, err, tc.msg)
		}
	}
	var usage strings.Builder
	if _, err := server.ParseFlags([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "--initial-cluster") && !strings.Contains(usage.String(), "-initial-cluster") {
		t.Fatalf("-h: %v, %q", err, usage.String())
	}
}
