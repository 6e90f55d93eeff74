package rdbctl

// The JSON documents rdbctl prints, and how values look in its tables.
// The documents are rdbctl's own, not protojson: numbers are JSON numbers
// and every field is present (null where the mode has no such thing).

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rdb-project/rdb/store/client"
)

// getDoc is what get prints.
type getDoc struct {
	Namespace string `json:"namespace"`
	Mode      string `json:"mode"`
	Key       string `json:"key"`
	Found     bool   `json:"found"`
	Value     string `json:"value"`
	// Version is the key's version in a strong namespace (0: not found,
	// and always 0 in an eventual one).
	Version uint64 `json:"version"`
}

// putDoc is what put prints.
type putDoc struct {
	Namespace string   `json:"namespace"`
	Keys      []string `json:"keys"`
	// Timestamp is the first pair's, LastTimestamp the last's (the same
	// for one pair).
	Timestamp     hlcDoc `json:"timestamp"`
	LastTimestamp hlcDoc `json:"last_timestamp"`
}

// casDoc is what cas prints: on success the key's new version and value,
// on a mismatch its current ones (version 0: it does not exist).
type casDoc struct {
	Namespace       string `json:"namespace"`
	Key             string `json:"key"`
	Succeeded       bool   `json:"succeeded"`
	ExpectedVersion uint64 `json:"expected_version"`
	Version         uint64 `json:"version"`
	Value           string `json:"value"`
}

// delDoc is what del prints.
type delDoc struct {
	Namespace string `json:"namespace"`
	Mode      string `json:"mode"`
	Key       string `json:"key"`
	// Deleted: in a strong namespace, the key existed and is gone; in an
	// eventual one, the delete (a tombstone) was written.
	Deleted bool `json:"deleted"`
	// Found: whether the key existed (strong; null in an eventual
	// namespace, where a tombstone is written either way).
	Found *bool `json:"found"`
	// ExpectedVersion is --expect (0: any version).
	ExpectedVersion uint64 `json:"expected_version"`
	// Version and Value are the key's current ones when --expect did not
	// match.
	Version uint64 `json:"version"`
	Value   string `json:"value"`
	// Timestamp is the tombstone's (eventual; null in a strong namespace).
	Timestamp *hlcDoc `json:"timestamp"`
}

// scanDoc is what scan prints.
type scanDoc struct {
	Namespace string  `json:"namespace"`
	Mode      string  `json:"mode"`
	Start     string  `json:"start"`
	End       string  `json:"end"` // "": to the end
	Count     int     `json:"count"`
	More      bool    `json:"more"` // --limit left keys out
	KVs       []kvDoc `json:"kvs"`
}

type kvDoc struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"` // 0 in an eventual namespace
}

// modeDoc is one namespace's mode as a store knows it.
type modeDoc struct {
	Namespace   string `json:"namespace"`
	Mode        string `json:"mode"`
	State       string `json:"state"` // active, or switching
	Version     uint64 `json:"version"`
	FromDefault bool   `json:"from_default"`
	Leader      uint64 `json:"leader"` // the id of the store leading its Raft group (0: none known)
}

func viewMode(m client.NamespaceMode) modeDoc {
	return modeDoc{Namespace: m.Namespace, Mode: m.Mode, State: m.State, Version: m.Version, FromDefault: m.FromDefault, Leader: m.Leader}
}

var modeHeader = []string{"NAMESPACE", "MODE", "STATE", "VERSION", "FROM_DEFAULT", "LEADER"}

func modeRow(m modeDoc) []string {
	leader := "-"
	if m.Leader != 0 {
		leader = fmt.Sprint(m.Leader)
	}
	return []string{m.Namespace, m.Mode, m.State, fmt.Sprint(m.Version), fmt.Sprint(m.FromDefault), leader}
}

// hlcDoc is the hybrid logical clock reading a store stamped a raw write
// with.
type hlcDoc struct {
	WallTime int64  `json:"wall_time"` // nanoseconds since the Unix epoch
	Logical  uint32 `json:"logical"`
	StoreID  uint64 `json:"store_id"`
}

func viewHLC(ts client.Timestamp) hlcDoc {
	return hlcDoc{WallTime: ts.WallTime, Logical: ts.Logical, StoreID: ts.StoreID}
}

// String is the timestamp for people: the wall time in UTC, the logical
// count, and the store.
func (h hlcDoc) String() string {
	return fmt.Sprintf("%s (logical %d) on store %d", time.Unix(0, h.WallTime).UTC().Format(time.RFC3339Nano), h.Logical, h.StoreID)
}

// show is a key or value as a table shows it: as it is, unless it is
// empty or holds a character that would break the table (a tab, a
// newline, any control or non-printing character), then quoted as Go
// quotes strings.
func show(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// brief is a value in a message: quoted, and cut after 100 bytes.
func brief(s string) string {
	const most = 100
	if len(s) <= most {
		return strconv.Quote(s)
	}
	cut := most
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// utf8Start reports whether b begins a UTF-8 character.
func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// versionOrDash is a strong namespace's version, "-" in an eventual one.
func versionOrDash(mode string, v uint64) string {
	if mode != client.Strong {
		return "-"
	}
	return fmt.Sprint(v)
}

// shellWord is s as a shell reads it back: as it is when it is plain,
// else in single quotes.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:@%+=,", r)))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
