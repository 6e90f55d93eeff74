//go:build rdb_unsafe_reads

package chaos

// unsafeReads: the stores were built with the test-only switch that lets
// them serve reads without ReadIndex.
const unsafeReads = true
