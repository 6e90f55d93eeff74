package pdctl

import (
	"fmt"
	"strings"
	"testing"
)

// TestTableListsAreShort: a list of thousands of names shows ten and a
// count in the table; a short list shows every name.
func TestTableListsAreShort(t *testing.T) {
	var names []string
	for i := range 12618 {
		names = append(names, fmt.Sprintf("ns-%05d", i))
	}
	got := listOrNone(names)
	want := "12618: ns-00000, ns-00001, ns-00002, ns-00003, ns-00004, ns-00005, ns-00006, ns-00007, ns-00008, ns-00009 and 12608 more (-o json lists them all)"
	if got != want {
		t.Fatalf("listOrNone of 12618 names = %q, want %q", got, want)
	}
	for _, n := range []int{0, 1, tableNames} {
		got := listOrNone(names[:n])
		if n == 0 && got != "none" || n > 0 && (strings.Contains(got, "more") || !strings.HasSuffix(got, names[n-1])) {
			t.Errorf("listOrNone of %d names = %q", n, got)
		}
	}
}
