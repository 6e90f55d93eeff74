package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/security"
	"github.com/rdb-project/rdb/store/testport"
)

// startStore starts a one-store cluster in this process, with "logs" an
// eventual namespace, and returns its address and how to stop it.
func startStore() (string, func()) {
	addr, err := testport.Free()
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "rdb-example-")
	if err != nil {
		log.Fatal(err)
	}
	s, err := store.Open(store.Config{
		StoreID: 1, Addr: addr, DataDir: dir,
		NamespaceModes: map[string]string{"logs": "eventual"},
		TickInterval:   10 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	return addr, func() {
		s.Stop()
		_ = os.RemoveAll(dir)
	}
}

// startClient starts a one-store cluster and a client of it.
func startClient() (*client.Client, func()) {
	addr, stop := startStore()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	return c, func() {
		_ = c.Close()
		stop()
	}
}

func Example() {
	addr, stop := startStore()
	defer stop()

	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// A strong namespace: compare-and-swap, linearizable reads.
	res, err := c.CompareAndSwap(ctx, "default", "greeting", "hello", 0) // 0: must not exist
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", res.Success)
	res, err = c.CompareAndSwap(ctx, "default", "greeting", "bonjour", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("created again: %v (current value %q)\n", res.Success, res.Value)
	res, err = c.CompareAndSwap(ctx, "default", "greeting", "bonjour", res.Version)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("replaced:", res.Success)
	got, err := c.Get(ctx, "default", "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("get:", got.Found, got.Value)

	// An eventual namespace: raw writes, last writer wins.
	if _, err := c.RawPut(ctx, "logs", "line-1", "started"); err != nil {
		log.Fatal(err)
	}
	v, found, err := c.RawGet(ctx, "logs", "line-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("raw get:", found, v)

	// Each API fits one mode.
	_, err = c.RawPut(ctx, "default", "greeting", "hi")
	fmt.Println("raw write to a strong namespace:", errors.Is(err, client.ErrWrongMode))

	m, err := c.GetMode(ctx, "logs")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mode of logs:", m.Mode)
	// Output:
	// created: true
	// created again: false (current value "hello")
	// replaced: true
	// get: true bonjour
	// raw get: true started
	// raw write to a strong namespace: true
	// mode of logs: eventual
}

func ExampleClient_Scan() {
	c, stop := startClient()
	defer stop()
	ctx := context.Background()
	for _, k := range []string{"user/ada", "user/bob", "user/cy", "users", "team/x"} {
		if _, err := c.CompareAndSwap(ctx, "default", k, "v", 0); err != nil {
			log.Fatal(err)
		}
	}

	// Every key with the prefix "user/", two per call to the store.
	for kv, err := range c.Scan(ctx, "default", "user/", client.PrefixEnd("user/"), client.PageSize(2)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(kv.Key)
	}
	// Output:
	// user/ada
	// user/bob
	// user/cy
}

// A write whose outcome is unknown is not retried by the client: read the
// key to find out whether it was applied.
func ExampleClient_CompareAndSwap() {
	c, err := client.New([]string{"127.0.0.1:20160", "127.0.0.1:20161", "127.0.0.1:20162"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	res, err := c.CompareAndSwap(ctx, "default", "job/42", "claimed-by-me", 0)
	switch {
	case errors.Is(err, client.ErrOutcomeUnknown):
		got, rerr := c.Get(ctx, "default", "job/42")
		if rerr == nil && got.Found && got.Value == "claimed-by-me" {
			fmt.Println("claimed (the write was applied)")
		}
	case errors.Is(err, client.ErrUnavailable):
		fmt.Println("not claimed: no store could take the write; nothing was applied")
	case err != nil:
		log.Fatal(err)
	case res.Success:
		fmt.Println("claimed")
	default:
		fmt.Printf("taken: %q\n", res.Value)
	}
}

// A cluster that runs with TLS: the client's certificate, its key and the
// cluster's CA, as rdb's command lines name them.
func ExampleWithTLSFiles() {
	c, err := client.New([]string{"store1.example:20160"}, client.WithTLSFiles(security.Files{
		CertFile:      "client.app.crt",
		KeyFile:       "client.app.key",
		TrustedCAFile: "ca.crt",
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}
