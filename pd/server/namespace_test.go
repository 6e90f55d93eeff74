package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/proto/pdpb"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSetGetList(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	cli := c.Client()
	ctx := testContext(t)

	resp, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: "logs", Mode: "eventual"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetChanged() || resp.GetRecord().GetMode() != "eventual" || resp.GetRecord().GetVersion() == 0 {
		t.Fatalf("set: %v", resp)
	}
	st, err := cli.GetNamespace(ctx, "logs", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", st)
	list, err := cli.ListNamespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", list)
}
