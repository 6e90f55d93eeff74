package storetest

// Waiting for a condition with a bound, never a bare sleep, and loopback
// addresses for servers under test.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rdb-project/rdb/store/testport"
)

// Eventually polls cond until it returns nil or the timeout passes, then
// fails the test with the last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error, format string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := Poll(ctx, cond); err != nil {
		t.Fatalf("%s: not true after %v: %v", fmt.Sprintf(format, args...), timeout, err)
	}
}

// Poll calls cond, backing off from 5ms to 100ms, until it returns nil
// or ctx ends; then it returns ctx's error joined with cond's last one. It
// is Eventually for code that runs off the test goroutine.
func Poll(ctx context.Context, cond func() error) error {
	wait := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// Consistently checks cond repeatedly for d and fails the test the first
// time it returns an error: for things that must not happen.
func Consistently(t testing.TB, d time.Duration, cond func() error, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
}

// freeAddr picks a port below the ephemeral range: a store restarted on
// its address must not find it taken by an outgoing connection (testport).
func freeAddr() (string, error) { return testport.Free() }
