package cli

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// minMemoryLimit is the smallest --memory-limit accepted: below it a store
// would spend its time collecting garbage.
const minMemoryLimit = 64 << 20

// ParseMemoryLimit parses --memory-limit: a number of bytes with an
// optional unit, B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB
// (powers of 1000), as Kubernetes and GOMEMLIMIT write them ("1536MiB",
// "1.5GiB", "2GB"). Empty means no limit (0).
func ParseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := s, 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("--memory-limit %q: want a size such as 1536MiB, 1.5GiB or 2GB", s)
	}
	b := f * mult
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("--memory-limit %q is too large", s)
	}
	if b < minMemoryLimit {
		return 0, fmt.Errorf("--memory-limit %q is below the least a store can run in, 64MiB", s)
	}
	return int64(b), nil
}

// setMemoryLimit makes limit the Go runtime's soft memory limit and, unless
// GOGC is set in the environment, turns off the collector's proportional
// pacing, so that it runs when the heap nears the limit rather than each
// time the heap doubles. A store holding many namespaces keeps a large live
// heap (about 3.5 KiB per strong namespace) that every cycle marks; the
// memory it is given is what spaces the cycles out. It reports whether the
// pacing was turned off.
func setMemoryLimit(limit int64) bool {
	debug.SetMemoryLimit(limit)
	if _, ok := os.LookupEnv("GOGC"); ok {
		return false
	}
	debug.SetGCPercent(-1)
	return true
}
