package policy

import (
	"context"
	"testing"
)

// TestAllocBudgets pins the per-request allocations Warden controls: the
// input document (with the caller's subject cached) and one batch item.
// OPA's own evaluation is measured by BenchmarkDecide, not pinned here.
func TestAllocBudgets(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	in := benchInput()
	var cache subjectCache
	inputAllocs := testing.AllocsPerRun(200, func() {
		if _, err := in.value(fixedNow, &cache); err != nil {
			t.Fatal(err)
		}
	})
	// About 3 per object member (element, key and value terms): 7
	// top-level, 4 request, 1 header, 5 resource members; the subject is
	// cached. Measured 68.
	if inputAllocs > 72 {
		t.Errorf("building the input: %v allocs; budget 72", inputAllocs)
	}

	e := newEngine(t, config0())
	g, err := e.grants(context.Background(), e.cur.Load(), in.Subject.complete())
	if err != nil || g == nil {
		t.Fatalf("grants: %v, %v", g, err)
	}
	tools := toolInputs(2)
	itemAllocs := testing.AllocsPerRun(200, func() {
		for _, it := range tools {
			if _, err := g.decide(it); err != nil {
				t.Fatal(err)
			}
		}
	})
	// An allow costs its reasons slice and string; a deny nothing but its
	// reasons slice.
	if itemAllocs > 6 {
		t.Errorf("two batch items: %v allocs; budget 6", itemAllocs)
	}
}
