package store_test

// A store reports a switch step only once it is durable: a store that said
// it had stopped raw writes for a namespace (fenced) must, after a crash
// that loses everything it had not synced, still refuse raw writes there.
// Otherwise a raw write accepted after the crash is seen by no merge.

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
	"github.com/rdb-project/rdb/store/transport"
)

// cutOff is a transport.Faults that partitions every link.
type cutOff struct{}

func (cutOff) Link(uint64) transport.LinkFault { return transport.LinkFault{Partitioned: true} }

func TestFencedReportSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	var cfg3 store.Config
	c := storetest.NewCluster(t, 3, storetest.Options{
		NamespaceModes: map[string]string{"flip": "strong"},
		Configure: func(i int, cfg *store.Config) {
			if i == 2 {
				cfg.FS, cfg.DataDir = fs, "/store-3"
				cfg3 = *cfg
			}
		},
	})
	setMode := func(mode string) uint64 {
		t.Helper()
		resp, err := c.Modes(0).UpdateNamespaceMode(ctxT(t, 10*time.Second), &raftpb.UpdateNamespaceModeRequest{Namespace: "flip", Mode: mode})
		if err != nil {
			t.Fatalf("set flip %s: %v", mode, err)
		}
		return resp.GetVersion()
	}
	// strong -> eventual, to completion: flip now has a group, so the next
	// switch to strong creates nothing on disk.
	setMode("eventual")
	storetest.Eventually(t, 20*time.Second, func() error {
		for i := range 3 {
			m, err := c.Modes(i).GetMode(ctxT(t, time.Second), &raftpb.GetModeRequest{Namespace: "flip"})
			if err != nil {
				return err
			}
			if m.GetMode() != "eventual" || m.GetState() != "active" {
				return fmt.Errorf("store %d: %v", i+1, m)
			}
		}
		return nil
	}, "flip is eventual everywhere")

	// Store 2 unreachable: the switch back to strong is held (the driver
	// waits for every store to fence), while stores 1 and 3 apply the row.
	c.Links.Isolate(2, 3)
	version := setMode("strong")
	storetest.Eventually(t, 10*time.Second, func() error {
		if row, ok := c.Store(2).NamespaceRow("flip"); !ok || row.GetVersion() < version {
			return fmt.Errorf("store 3 has %v", row)
		}
		return nil
	}, "store 3 applies the strong row")
	ic := internalClient(t, c, 2)
	st, err := ic.SwitchStatus(ctxT(t, 5*time.Second), &storepb.SwitchStatusRequest{Namespace: "flip"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetFenced() || st.GetRecord().GetVersion() < version {
		t.Fatalf("store 3 reports %v, want fenced at version %d", st, version)
	}

	// Crash store 3: only what it synced survives.
	var image *vfs.MemFS
	c.Store(2).Kill(func() { image = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}) })
	c.Stop(2)
	cfg := cfg3
	cfg.FS, cfg.Addr, cfg.AdvertiseAddr = image, storetest.FreeAddr(t), ""
	cfg.Faults = cutOff{}
	cfg.OnFatal = func(err error) { t.Errorf("restarted store 3: %v", err) }
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if row, _ := s.NamespaceRow("flip"); row.GetMode() == "eventual" {
		t.Logf("restarted store 3 holds the eventual row %v", row)
	}
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := kvrpc.NewKvRawClient(conn)
	_, err = raw.RawPut(ctxT(t, 5*time.Second), &kvrpc.RawPutRequest{Namespace: "flip", Key: "lost", Value: "v"})
	if err == nil {
		t.Fatal("after reporting flip fenced and crashing, store 3 accepted a raw write to it")
	}
	t.Logf("raw write after the crash: %v", err)
}
