package revoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// FileStore keeps revocations in one JSON file, so they survive restarts of
// a single replica. Writes are atomic (temporary file, fsync, rename, fsync
// of the directory): a crash leaves the old or the new list, never half of
// one. The file is watched, so an edit on disk (a config management run, a
// restore) takes effect without a restart; an unreadable or deleted file
// keeps the last good list rather than dropping every revocation.
type FileStore struct {
	list
	path string
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex // serializes writes and reloads
	closed bool
	w      *fsnotify.Watcher
	done   chan struct{}
	wg     sync.WaitGroup
}

// fileFormat is the on-disk document.
type fileFormat struct {
	Version     int     `json:"version"`
	Revocations []Entry `json:"revocations"`
}

const fileVersion = 1

// OpenFile loads the list at path (a missing file is an empty list; a
// corrupt one is an error, so Warden does not start with its kill switch
// silently emptied) and watches it for changes. log nil discards; now nil
// is time.Now.
func OpenFile(path string, log *slog.Logger, now func() time.Time) (*FileStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	path = filepath.Clean(path)
	s := &FileStore{path: path, log: log, now: now, done: make(chan struct{})}
	s.init()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("revoke: create directory for %s: %w", path, err)
	}
	m, err := readFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.replace(m)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("revoke: watch %s: %w", path, err)
	}
	// Watch the directory: an atomic replace (ours or an editor's) swaps
	// the file's inode, which a watch on the file itself would lose.
	if err := w.Add(filepath.Dir(path)); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("revoke: watch %s: %w", filepath.Dir(path), err)
	}
	s.w = w
	s.wg.Add(1)
	go s.watch()
	return s, nil
}

// readFile parses the list; a missing file yields an empty map and an
// error wrapping fs.ErrNotExist.
func readFile(path string) (map[string]Entry, error) {
	m := map[string]Entry{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("revoke: read %s: %w", path, err)
	}
	var doc fileFormat
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("revoke: parse %s: %w", path, err)
	}
	if doc.Version != fileVersion {
		return nil, fmt.Errorf("revoke: %s: unsupported version %d (want %d)", path, doc.Version, fileVersion)
	}
	for _, e := range doc.Revocations {
		if err := validate(e.SpiffeID); err != nil {
			return nil, fmt.Errorf("revoke: %s: %w", path, err)
		}
		m[e.SpiffeID] = e
	}
	return m, nil
}

func (s *FileStore) watch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case ev, ok := <-s.w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) != s.path {
				continue
			}
			s.reload()
		case err, ok := <-s.w.Errors:
			if !ok {
				return
			}
			s.log.Warn("revoke: file watch error", "path", s.path, "error", err)
		}
	}
}

// reload re-reads the file after a change on disk and notifies what
// differs; our own writes reload to the same list and notify nothing.
func (s *FileStore) reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	m, err := readFile(s.path)
	if err != nil {
		// Half-written by a non-atomic editor, or deleted: keep the last
		// good list (fail closed); the next event retries.
		s.log.Warn("revoke: keeping the last good revocation list", "path", s.path, "error", err)
		return
	}
	changes := s.replace(m)
	if len(changes) > 0 {
		s.log.Info("revoke: reloaded revocation list from disk", "path", s.path, "changes", len(changes))
	}
	s.notify(changes)
}

// Revoke implements Store.
func (s *FileStore) Revoke(ctx context.Context, e Entry) error {
	if err := validate(e.SpiffeID); err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = e.At.UTC()
	return s.update(e, true)
}

// Unrevoke implements Store.
func (s *FileStore) Unrevoke(ctx context.Context, spiffeID string) error {
	if err := validate(spiffeID); err != nil {
		return err
	}
	e, ok := s.lookup(spiffeID)
	if !ok {
		return nil
	}
	return s.update(e, false)
}

func (s *FileStore) update(e Entry, revoked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	next := s.with(e, revoked)
	if err := writeFile(s.path, next); err != nil {
		return err
	}
	s.notify(s.replace(next))
	return nil
}

// writeFile replaces path atomically and durably.
func writeFile(path string, m map[string]Entry) error {
	doc := fileFormat{Version: fileVersion, Revocations: sortedEntries(m)}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("revoke: encode: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("revoke: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("revoke: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("revoke: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("revoke: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("revoke: rename to %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("revoke: open %s for fsync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("revoke: fsync %s: %w", dir, err)
	}
	return nil
}

func sortedEntries(m map[string]Entry) []Entry {
	var l list
	l.init()
	l.entries.Store(&m)
	return l.sorted()
}

// Lookup implements Store. The file store's list is always known, so it
// never returns an error.
func (s *FileStore) Lookup(spiffeID string) (Entry, bool, error) {
	e, ok := s.lookup(spiffeID)
	return e, ok, nil
}

// List implements Store.
func (s *FileStore) List(ctx context.Context) ([]Entry, error) { return s.sorted(), nil }

// Close stops watching the file.
func (s *FileStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	err := s.w.Close()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("revoke: close watcher: %w", err)
	}
	return nil
}
