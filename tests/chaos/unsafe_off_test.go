//go:build !rdb_unsafe_reads

package chaos

const unsafeReads = false
