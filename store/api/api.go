// Package api holds the rules every client request is checked against and
// every error a client can see, each with its gRPC code. Handlers return
// these errors unchanged so that a client always gets a message it can act
// on.
package api

import (
	"fmt"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Modes, as they appear on the wire.
const (
	ModeStrong   = "strong"
	ModeEventual = "eventual"
	// DefaultMode is the mode of a namespace nobody configured.
	DefaultMode = ModeStrong
	// DefaultNamespace always exists and is strong unless relaxed.
	DefaultNamespace = "default"
)

// Namespace states reported by GetMode and ListNamespaceModes.
const (
	StateActive    = "active"
	StateSwitching = "switching"
)

// Limits on client input.
const (
	MaxKeyBytes   = 4096
	MaxValueBytes = 1 << 20
	DefaultScan   = 1000
	MaxScan       = 10000
)

var namespaceRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// ValidateNamespace checks a namespace name: 1 to 64 characters of a-z,
// 0-9, '_' and '-'.
func ValidateNamespace(ns string) error {
	if ns == "" {
		return status.Error(codes.InvalidArgument, "namespace is empty: set \"namespace\" (for example \"default\")")
	}
	if !namespaceRE.MatchString(ns) {
		return status.Errorf(codes.InvalidArgument,
			"namespace %q is invalid: use 1 to 64 characters of a-z, 0-9, '_' and '-'", truncate(ns))
	}
	return nil
}

// ValidateMode checks a mode string.
func ValidateMode(mode string) error {
	switch mode {
	case ModeStrong, ModeEventual:
		return nil
	case "":
		return status.Error(codes.InvalidArgument, "mode is empty: use \"strong\" or \"eventual\"")
	}
	return status.Errorf(codes.InvalidArgument, "unknown mode %q: use \"strong\" or \"eventual\"", truncate(mode))
}

// ValidateKey checks a key: 1 to MaxKeyBytes bytes.
func ValidateKey(key string) error {
	if key == "" {
		return status.Error(codes.InvalidArgument, "key is empty: keys are 1 to 4096 bytes")
	}
	if len(key) > MaxKeyBytes {
		return status.Errorf(codes.InvalidArgument, "key is %d bytes: the maximum is %d", len(key), MaxKeyBytes)
	}
	return nil
}

// ValidateValue checks a value: at most MaxValueBytes bytes.
func ValidateValue(value string) error {
	if len(value) > MaxValueBytes {
		return status.Errorf(codes.InvalidArgument, "value is %d bytes: the maximum is %d (1 MiB)", len(value), MaxValueBytes)
	}
	return nil
}

// ValidateWrite checks a namespace, key and value together.
func ValidateWrite(ns, key, value string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	return ValidateValue(value)
}

// ValidateRead checks a namespace and key.
func ValidateRead(ns, key string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return ValidateKey(key)
}

// ValidateScan checks a scan's namespace and bounds and returns the limit
// to use.
func ValidateScan(ns, start, end string, limit uint32) (int, error) {
	if err := ValidateNamespace(ns); err != nil {
		return 0, err
	}
	if len(start) > MaxKeyBytes || len(end) > MaxKeyBytes {
		return 0, status.Errorf(codes.InvalidArgument, "scan bounds are at most %d bytes", MaxKeyBytes)
	}
	if end != "" && end <= start {
		return 0, status.Errorf(codes.InvalidArgument, "end_key %q is not after start_key %q: the range is empty", truncate(end), truncate(start))
	}
	switch {
	case limit == 0:
		return DefaultScan, nil
	case limit > MaxScan:
		return 0, status.Errorf(codes.InvalidArgument, "limit %d is above the maximum of %d", limit, MaxScan)
	}
	return int(limit), nil
}

// ErrWrongModeForRaw answers a KvRaw write on a strong namespace.
func ErrWrongModeForRaw(ns string) error {
	return status.Errorf(codes.FailedPrecondition,
		"namespace %q is strong: write it with kvrpc.KvCas/CompareAndSwap or kvrpc.KvCas/Delete (or switch it with UpdateNamespaceMode)", ns)
}

// ErrWrongModeForCas answers a KvCas call on an eventual namespace.
func ErrWrongModeForCas(ns string) error {
	return status.Errorf(codes.FailedPrecondition,
		"namespace %q is eventual: use kvrpc.KvRaw/RawPut, RawGet, RawDelete or RawScan (or switch it with UpdateNamespaceMode)", ns)
}

// ErrSwitching answers a write (or a read that cannot be served) while the
// namespace's mode is being switched.
func ErrSwitching(ns, to string) error {
	return status.Errorf(codes.Aborted,
		"namespace %q is switching to %s: retry shortly", ns, to)
}

// ErrNoLeader answers when a group has no leader or no quorum.
func ErrNoLeader(what string) error {
	return status.Errorf(codes.Unavailable, "%s has no leader or no quorum yet: retry", what)
}

// ErrTimeout answers a request that did not complete in time; a write may
// or may not have happened.
func ErrTimeout(what string) error {
	return status.Errorf(codes.Unavailable, "%s did not complete in time (no quorum?): retry; a write may have been applied", what)
}

// ErrStopping answers requests that arrive while the store shuts down.
var ErrStopping = status.Error(codes.Unavailable, "store is shutting down: retry on another store")

// Internal wraps an unexpected server-side failure.
func Internal(format string, args ...any) error {
	return status.Error(codes.Internal, fmt.Sprintf(format, args...))
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
