// Package testseed gives randomized tests a fixed seed that a failing run
// logs and -seed replays.
package testseed

import (
	"flag"
	"testing"
)

var seedFlag = flag.Uint64("seed", 0, "replay the randomized tests with this seed (0: each test's fixed seed)")

// For returns the seed of a randomized test: fixed, or the one given with
// -seed. It logs the seed and the flag that replays it.
func For(t testing.TB, fixed uint64) uint64 {
	t.Helper()
	seed := fixed
	if *seedFlag != 0 {
		seed = *seedFlag
	}
	t.Logf("seed %d (replay: -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}
