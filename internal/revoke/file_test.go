package revoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func openFile(t *testing.T, path string) *FileStore {
	t.Helper()
	s, err := OpenFile(path, nil, fixedNow)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// recorder collects Subscribe calls for polling with a deadline.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) fn(e Entry, revoked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf("%v %s", revoked, e.SpiffeID))
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFilePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "revocations.json")
	s := openFile(t, path)
	rec := &recorder{}
	cancel := s.Subscribe(rec.fn)
	a := Entry{SpiffeID: "spiffe://warden.test/agent/a", Reason: "leaked key", By: "spiffe://warden.test/admin"}
	b := Entry{SpiffeID: "spiffe://warden.test/agent/b", Reason: "test", By: "ops", At: t0.Add(-time.Hour)}
	for _, e := range []Entry{a, b} {
		if err := s.Revoke(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Unrevoke(ctx, b.SpiffeID); err != nil {
		t.Fatal(err)
	}
	if err := s.Unrevoke(ctx, "spiffe://warden.test/never-revoked"); err != nil {
		t.Errorf("Unrevoke of an unknown ID: %v", err)
	}
	want := []string{"true " + a.SpiffeID, "true " + b.SpiffeID, "false " + b.SpiffeID}
	if d := cmp.Diff(want, rec.events()); d != "" {
		t.Errorf("notifications (-want +got):\n%s", d)
	}
	cancel()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openFile(t, path)
	a.At = t0 // defaulted from the injected clock
	got, err := s2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Entry{a}, got); d != "" {
		t.Errorf("after reopen (-want +got):\n%s", d)
	}
	if e, ok, err := s2.Lookup(a.SpiffeID); !ok || err != nil || e.Reason != "leaked key" {
		t.Errorf("Lookup(a) = %+v, %v, %v", e, ok, err)
	}
	if _, ok, _ := s2.Lookup(b.SpiffeID); ok {
		t.Errorf("unrevoked ID still revoked after reopen")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("file mode %v readable by others", fi.Mode())
	}
}

func TestFileRejectsInvalidIDs(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "r.json"))
	for _, id := range []string{"", "agent/a", "https://warden.test/a", "spiffe://"} {
		if err := s.Revoke(context.Background(), Entry{SpiffeID: id}); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Revoke(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func TestFileConcurrentRevokeUnrevoke(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.json")
	s := openFile(t, path)
	id := func(g, i int) string { return fmt.Sprintf("spiffe://warden.test/g%d/a%d", g, i) }
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if err := s.Revoke(ctx, Entry{SpiffeID: id(g, i)}); err != nil {
					t.Error(err)
				}
				if i%2 == 0 {
					if err := s.Unrevoke(ctx, id(g, i)); err != nil {
						t.Error(err)
					}
				}
				if _, ok, _ := s.Lookup(id(g, 9)); ok && i < 9 {
					t.Errorf("%s revoked before its turn", id(g, 9))
				}
			}
		}()
	}
	wg.Wait()
	var want []string
	for g := range 4 {
		for i := 1; i < 10; i += 2 {
			want = append(want, id(g, i))
		}
	}
	check := func(s *FileStore) {
		t.Helper()
		l, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range l {
			got = append(got, e.SpiffeID)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("revoked IDs (-want +got):\n%s", d)
		}
	}
	check(s)
	_ = s.Close()
	check(openFile(t, path))
}

func TestFileReloadsChangesOnDisk(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.json")
	s := openFile(t, path)
	if err := s.Revoke(ctx, Entry{SpiffeID: "spiffe://warden.test/a"}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s.Subscribe(rec.fn)

	// Another process (or an operator's restore) replaces the file.
	other := map[string]Entry{"spiffe://warden.test/b": {SpiffeID: "spiffe://warden.test/b", Reason: "from disk", At: t0}}
	if err := writeFile(path, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change on disk to be applied", func() bool {
		_, okB, _ := s.Lookup("spiffe://warden.test/b")
		_, okA, _ := s.Lookup("spiffe://warden.test/a")
		return okB && !okA
	})
	waitFor(t, "both notifications", func() bool { return len(rec.events()) == 2 })

	// A corrupt or deleted file keeps the last good list.
	if err := os.WriteFile(path, []byte(`{"version":1,"revocations":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// Then a good write proves the watcher still runs and saw the bad ones.
	other["spiffe://warden.test/c"] = Entry{SpiffeID: "spiffe://warden.test/c", At: t0}
	if err := writeFile(path, other); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to be applied", func() bool { _, ok, _ := s.Lookup("spiffe://warden.test/c"); return ok })
	if _, ok, _ := s.Lookup("spiffe://warden.test/b"); !ok {
		t.Errorf("b lost after a corrupt and a deleted file")
	}
}

func TestFileOpenRejectsCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	for _, content := range []string{`{"version":1,"revocations":[`, `{"version":2,"revocations":[]}`, `{"version":1,"revocations":[{"spiffe_id":"nope"}]}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := OpenFile(path, nil, nil); err == nil {
			_ = s.Close()
			t.Errorf("OpenFile accepted %s", content)
		}
	}
}
