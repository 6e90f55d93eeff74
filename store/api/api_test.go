package api

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestValidateNamespace(t *testing.T) {
	for _, tc := range []struct {
		ns string
		ok bool
	}{
		{"default", true},
		{"logs", true},
		{"a", true},
		{"a_b-9", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"Logs", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
	} {
		err := ValidateNamespace(tc.ns)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateNamespace(%q) = %v, want ok=%v", tc.ns, err, tc.ok)
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Errorf("ValidateNamespace(%q) code = %v, want InvalidArgument", tc.ns, status.Code(err))
		}
	}
}

func TestValidateWrite(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ns, key, val  string
		ok            bool
		msgContaining string
	}{
		{"ok", "default", "a", "b", true, ""},
		{"empty value ok", "default", "a", "", true, ""},
		{"empty key", "default", "", "b", false, "key is empty"},
		{"max key", "default", strings.Repeat("k", MaxKeyBytes), "b", true, ""},
		{"oversize key", "default", strings.Repeat("k", MaxKeyBytes+1), "b", false, "maximum is 4096"},
		{"max value", "default", "a", strings.Repeat("v", MaxValueBytes), true, ""},
		{"oversize value", "default", "a", strings.Repeat("v", MaxValueBytes+1), false, "1 MiB"},
		{"bad namespace", "NS", "a", "b", false, "namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateWrite(tc.ns, tc.key, tc.val)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("code = %v", status.Code(err))
				}
				if !strings.Contains(err.Error(), tc.msgContaining) {
					t.Fatalf("message %q does not say %q", err, tc.msgContaining)
				}
			}
		})
	}
}

func TestValidateScan(t *testing.T) {
	if n, err := ValidateScan("default", "", "", 0); err != nil || n != DefaultScan {
		t.Fatalf("default limit = %d, %v", n, err)
	}
	if n, err := ValidateScan("default", "a", "b", 7); err != nil || n != 7 {
		t.Fatalf("limit = %d, %v", n, err)
	}
	if _, err := ValidateScan("default", "b", "a", 0); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("reversed range: %v", err)
	}
	if _, err := ValidateScan("default", "", "", MaxScan+1); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("oversize limit: %v", err)
	}
}

func TestModeErrorsNameTheOtherAPI(t *testing.T) {
	if err := ErrWrongModeForRaw("x"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "KvCas") {
		t.Fatalf("ErrWrongModeForRaw = %v", err)
	}
	if err := ErrWrongModeForCas("x"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "KvRaw") {
		t.Fatalf("ErrWrongModeForCas = %v", err)
	}
	if err := ErrSwitching("x", "strong"); status.Code(err) != codes.Aborted {
		t.Fatalf("ErrSwitching = %v", err)
	}
}
