//go:build !rdb_unsafe_reads

package store

// unsafeReadsBuild is false in every build that can ship: the test-only
// switch Config.UnsafeFollowerReads has no effect.
const unsafeReadsBuild = false
