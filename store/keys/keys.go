// Package keys defines every key a store writes to its pebble DB. Nobody
// builds a storage key by hand anywhere else.
//
// The DB holds four kinds of data, each under its own one-byte prefix so a
// kind can be scanned or cleared with one range:
//
//	m/ident                        store identity (storepb.StoreInfo)
//	m/cluster                      this store's cluster id (8 bytes; absent: not known yet)
//	m/mode                         "static" or "pd": the mode that created the data dir
//	m/hlc                          upper bound of the HLC wall time handed out
//	m/pdtable/<ns>                 mode table row applied from PD (PD mode)
//	m/pdrev                        PD table revision applied (PD mode)
//	m/pdstore/<id:8>               a store's address as PD last said (PD mode)
//	m/tomb/<group:8>               a group whose replica here was destroyed (never bootstrapped again)
//	m/filled/<ns>                  this store has filled its new replica of an eventual namespace (PD mode)
//	r/<group:8>/hs                 Raft HardState of a group
//	r/<group:8>/trunc              index and term of the last compacted entry
//	r/<group:8>/applied            applied index, term and ConfState
//	r/<group:8>/log/<index:8>      Raft log entry
//	s/<group:8>/<sub>              a group's state machine (see below)
//	e/<ns>/<key>                   LWW record of an eventual namespace
//
// Numbers are big-endian so that keys sort numerically. Namespace names
// never contain '/', so e/<ns>/ is a prefix of exactly one namespace.
//
// State machine keys (everything a snapshot of the group carries):
//
//	s/<1:8>/store/<id:8>           meta group: a store's address
//	s/<1:8>/ns/<ns>                meta group: a NamespaceRecord
//	s/<1:8>/next_group             meta group: next namespace group id
//	s/<1:8>/cluster_id             meta group: the cluster's id (8 bytes), set at bootstrap
//	s/<g:8>/state                  namespace group: GroupState
//	s/<g:8>/k/<key>                namespace group: version and value
package keys

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// MetaGroupID is the group that replicates the mode table and membership
// in static mode. Namespace groups get ids above it.
const MetaGroupID uint64 = 1

var (
	pdStoreNS  = []byte("m/pdstore/")
	identKey   = []byte("m/ident")
	clusterKey = []byte("m/cluster")
	modeKey    = []byte("m/mode")
	hlcKey     = []byte("m/hlc")
	pdRevKey   = []byte("m/pdrev")
	pdTableNS  = []byte("m/pdtable/")
	tombNS     = []byte("m/tomb/")
	filledNS   = []byte("m/filled/")
)

// Ident is the key of the store's identity.
func Ident() []byte { return identKey }

// Cluster is the key of this store's cluster id.
func Cluster() []byte { return clusterKey }

// Mode is the key of the mode that created the data dir.
func Mode() []byte { return modeKey }

// The values of Mode.
const (
	ModeStatic = "static"
	ModePD     = "pd"
)

// HLCUpper is the key of the persisted upper bound of HLC wall time.
func HLCUpper() []byte { return hlcKey }

// PDRevision is the key of the PD table revision applied (PD mode).
func PDRevision() []byte { return pdRevKey }

// PDTableRow is m/pdtable/<ns>.
func PDTableRow(ns string) []byte { return appendStr(clone(pdTableNS), ns) }

// PDTablePrefix is m/pdtable/, the prefix of every PDTableRow.
func PDTablePrefix() []byte { return clone(pdTableNS) }

// PDStore is m/pdstore/<id>.
func PDStore(id uint64) []byte { return binary.BigEndian.AppendUint64(clone(pdStoreNS), id) }

// Tombstone is m/tomb/<group>: this store's replica of the group was
// destroyed, so the store never bootstraps it again (a replica it gets
// back later starts empty and catches up from the leader).
func Tombstone(group uint64) []byte { return binary.BigEndian.AppendUint64(clone(tombNS), group) }

// Filled is m/filled/<ns>: this store has filled its new replica of an
// eventual namespace from a complete one.
func Filled(ns string) []byte { return appendStr(clone(filledNS), ns) }

// PDStorePrefix is m/pdstore/.
func PDStorePrefix() []byte { return clone(pdStoreNS) }

func groupKey(prefix byte, group uint64, suffix string) []byte {
	k := make([]byte, 0, 2+8+1+len(suffix)+8)
	k = append(k, prefix, '/')
	k = binary.BigEndian.AppendUint64(k, group)
	k = append(k, '/')
	return append(k, suffix...)
}

// SnapshotMarkSuffix is the suffix of SnapshotMark.
const SnapshotMarkSuffix = "\x00snap"

// SnapshotMark is s/<group>/\x00snap: the index, term and configuration of
// the snapshot that last replaced the group's state (raftstore). It sorts
// before every other key of the state, and no state machine uses a key
// that starts with a zero byte.
func SnapshotMark(group uint64) []byte { return groupKey('s', group, SnapshotMarkSuffix) }

// HardState is r/<group>/hs.
func HardState(group uint64) []byte { return groupKey('r', group, "hs") }

// Truncated is r/<group>/trunc.
func Truncated(group uint64) []byte { return groupKey('r', group, "trunc") }

// Applied is r/<group>/applied.
func Applied(group uint64) []byte { return groupKey('r', group, "applied") }

// LogPrefix is r/<group>/log/.
func LogPrefix(group uint64) []byte { return groupKey('r', group, "log/") }

// LogEntry is r/<group>/log/<index>.
func LogEntry(group, index uint64) []byte {
	return binary.BigEndian.AppendUint64(LogPrefix(group), index)
}

// LogIndex decodes the index of a LogEntry key.
func LogIndex(key []byte) (uint64, error) {
	if len(key) < 8 {
		return 0, fmt.Errorf("keys: log key %q too short", key)
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

// RaftPrefix is r/<group>/, everything Raft keeps of a group.
func RaftPrefix(group uint64) []byte { return groupKey('r', group, "") }

// RaftGroupsStart and RaftGroupsEnd bound every r/ key; they let a store
// find its groups at start-up.
func RaftGroupsStart() []byte { return []byte("r/") }
func RaftGroupsEnd() []byte   { return []byte("r0") }

// GroupOfRaftKey returns the group of an r/<group>/... key.
func GroupOfRaftKey(key []byte) (uint64, bool) {
	if len(key) < 11 || key[0] != 'r' || key[1] != '/' {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[2:10]), true
}

// StatePrefix is s/<group>/: a group's whole state machine.
func StatePrefix(group uint64) []byte { return groupKey('s', group, "") }

// MetaStore is s/<1>/store/<id>.
func MetaStore(id uint64) []byte {
	return binary.BigEndian.AppendUint64(groupKey('s', MetaGroupID, "store/"), id)
}

// MetaStorePrefix is s/<1>/store/.
func MetaStorePrefix() []byte { return groupKey('s', MetaGroupID, "store/") }

// MetaNamespace is s/<1>/ns/<ns>.
func MetaNamespace(ns string) []byte { return appendStr(groupKey('s', MetaGroupID, "ns/"), ns) }

// MetaNamespacePrefix is s/<1>/ns/.
func MetaNamespacePrefix() []byte { return groupKey('s', MetaGroupID, "ns/") }

// MetaNextGroup is s/<1>/next_group.
func MetaNextGroup() []byte { return groupKey('s', MetaGroupID, "next_group") }

// MetaClusterID is s/<1>/cluster_id.
func MetaClusterID() []byte { return groupKey('s', MetaGroupID, "cluster_id") }

// GroupState is s/<group>/state.
func GroupState(group uint64) []byte { return groupKey('s', group, "state") }

// StrongPrefix is s/<group>/k/: the keys of a strong namespace.
func StrongPrefix(group uint64) []byte { return groupKey('s', group, "k/") }

// StrongKey is s/<group>/k/<key>.
func StrongKey(group uint64, key []byte) []byte { return append(StrongPrefix(group), key...) }

// LWWPrefix is e/<ns>/: every record of one eventual namespace.
func LWWPrefix(ns string) []byte {
	k := make([]byte, 0, 3+len(ns))
	k = append(k, 'e', '/')
	k = append(k, ns...)
	return append(k, '/')
}

// LWWKey is e/<ns>/<key>.
func LWWKey(ns string, key []byte) []byte { return append(LWWPrefix(ns), key...) }

// LWWAllStart and LWWAllEnd bound every e/ key.
func LWWAllStart() []byte { return []byte("e/") }
func LWWAllEnd() []byte   { return []byte("e0") }

// SplitLWWKey splits e/<ns>/<key> into its namespace and user key.
func SplitLWWKey(k []byte) (ns string, key []byte, ok bool) {
	if len(k) < 3 || k[0] != 'e' || k[1] != '/' {
		return "", nil, false
	}
	rest := k[2:]
	i := bytes.IndexByte(rest, '/')
	if i <= 0 {
		return "", nil, false
	}
	return string(rest[:i]), rest[i+1:], true
}

// PrefixEnd returns the first key after every key with the given prefix.
func PrefixEnd(prefix []byte) []byte {
	end := clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // the prefix is all 0xff: no upper bound
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func appendStr(b []byte, s string) []byte { return append(b, s...) }
