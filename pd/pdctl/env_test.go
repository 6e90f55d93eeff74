package pdctl_test

import (
	"strings"
	"testing"

	"github.com/rdb-project/rdb/pd/pdctl"
	"github.com/rdb-project/rdb/pd/pdtest"
)

// TestEndpointsFromEnvironment: without --pd, pdctl dials $RDB_PD; --pd
// still wins over it.
func TestEndpointsFromEnvironment(t *testing.T) {
	c := pdtest.NewCluster(t, 1)

	// A dead first endpoint, then the member: the list is used as --pd's is.
	t.Setenv(pdctl.EndpointsEnv, "127.0.0.1:1,"+c.Endpoints())
	if out := ok(t, "member", "list"); !strings.Contains(out, "true") {
		t.Fatalf("member list through $%s:\n%s", pdctl.EndpointsEnv, out)
	}
	if out := ok(t, "--help"); !strings.Contains(out, "$"+pdctl.EndpointsEnv) {
		t.Fatalf("--help does not mention $%s:\n%s", pdctl.EndpointsEnv, out)
	}

	t.Setenv(pdctl.EndpointsEnv, "127.0.0.1:1")
	ok(t, "--pd", c.Endpoints(), "member", "list")
	if r := pdctlRun(t, "--request-timeout", "2s", "member", "list"); r.code != pdctl.ExitError {
		t.Fatalf("with only a dead endpoint in $%s: exit %d, want %d", pdctl.EndpointsEnv, r.code, pdctl.ExitError)
	}
}
