//go:build rdb_unsafe_reads

package store

// unsafeReadsBuild is true only when built with -tags rdb_unsafe_reads,
// which the fault-injection suite uses to prove that its checker catches
// stale reads. Never build a release with this tag.
const unsafeReadsBuild = true
