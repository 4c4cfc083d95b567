package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenhq/warden/internal/config"
)

// Defaults for config.Audit fields left zero (config.ApplyDefaults sets the
// same values; Open applies them again so tests and tools may pass a bare
// config.Audit).
const (
	DefaultMaxDelay     = 10 * time.Millisecond
	DefaultMaxBatch     = 512
	DefaultRotateBytes  = 100 << 20
	DefaultQueueTimeout = time.Second
)

// rotatedDigits is the width of a rotated file's suffix, the zero-padded
// seq of its first record, so names sort in chain order.
const rotatedDigits = 20

// Options are the optional parts of a Log that config.Audit does not hold.
type Options struct {
	// Logger receives operational messages (never record contents). Nil
	// discards.
	Logger *slog.Logger
	// Registerer gets the warden_audit_* metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Now stamps records whose Time is zero. Nil is time.Now.
	Now func() time.Time
	// Key, when non-empty, makes the chain keyed: each hash is
	// HMAC-SHA256(Key, record) instead of SHA-256(record), so whoever can
	// write the file but does not hold the key cannot recompute the chain
	// after editing it. Verify then needs the same key.
	Key []byte

	// openFile opens the live file for appending; tests inject failures.
	openFile func(path string) (file, error)
}

// file is what the writer needs of the live file. Tests wrap *os.File to
// make writes or fsyncs fail.
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

func openOSFile(path string) (file, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
}

// Log is the hash-chained audit log writer. Append is safe for concurrent
// use; one goroutine owns the file and the chain, so records are chained
// in the order they were enqueued.
type Log struct {
	path         string
	strict       bool
	maxDelay     time.Duration
	maxBatch     int
	rotateBytes  int64
	queueTimeout time.Duration
	log          *slog.Logger
	now          func() time.Time
	openFile     func(string) (file, error)
	m            *metrics
	lock         *os.File

	// mu guards closed and sending on queue, so Close never closes a
	// channel an Append is sending on.
	mu      sync.RWMutex
	closed  bool
	queue   chan *item
	closing chan struct{}
	stopped chan struct{}

	// unhealthy is set while the file cannot be written; in batched mode
	// Append then fails fast instead of queueing records it may lose.
	unhealthy atomic.Bool
	lastErr   atomic.Pointer[error]
	head      atomic.Pointer[head]
	lost      atomic.Int64

	// Writer state: owned by the writer goroutine (and by Open before it
	// starts).
	h         *hasher
	f         file
	size      int64
	seq       uint64
	prev      [32]byte
	fileFirst uint64
	prevFile  string
	buf       []byte
	scratch   []byte
	counters  map[string]prometheus.Counter
}

type head struct {
	seq  uint64
	hash string
}

// item is one record on its way to the file.
type item struct {
	body  []byte
	event string
	// done receives the commit result in strict mode (capacity 1).
	done chan error
	seq  uint64
	prev [32]byte
	hash [32]byte
}

var itemPool = sync.Pool{New: func() any { return &item{done: make(chan error, 1)} }}

func putItem(it *item) {
	if cap(it.body) > 64<<10 {
		it.body = nil
	}
	itemPool.Put(it)
}

// Open opens (creating it and its directory if needed) the audit log at
// cfg.Path, resolved against baseDir when relative, and resumes its chain:
// the live file is verified, a torn final line left by a crash is truncated
// and noted in a repair record, and an empty live file continues from the
// newest rotated file. Open refuses a path it cannot write and a file whose
// chain does not verify (ErrBroken). log, reg and now may be nil.
func Open(cfg config.Audit, baseDir string, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*Log, error) {
	return OpenWith(cfg, baseDir, Options{Logger: log, Registerer: reg, Now: now})
}

// OpenWith is Open with Options, for a keyed chain.
func OpenWith(cfg config.Audit, baseDir string, o Options) (*Log, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: open: no path configured")
	}
	path := cfg.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	switch cfg.Mode {
	case "", "batched", "strict":
	default:
		return nil, fmt.Errorf("audit: open: mode must be strict or batched, not %q", cfg.Mode)
	}
	l := &Log{
		path:         path,
		strict:       cfg.Mode == "strict",
		maxDelay:     cfg.MaxDelay,
		maxBatch:     cfg.MaxBatch,
		rotateBytes:  cfg.RotateBytes,
		queueTimeout: cfg.QueueTimeout,
		log:          o.Logger,
		now:          o.Now,
		openFile:     o.openFile,
		h:            newHasher(o.Key),
		closing:      make(chan struct{}),
		stopped:      make(chan struct{}),
		counters:     map[string]prometheus.Counter{},
	}
	if l.maxDelay <= 0 {
		l.maxDelay = DefaultMaxDelay
	}
	if l.maxBatch <= 0 {
		l.maxBatch = DefaultMaxBatch
	}
	if l.rotateBytes == 0 {
		l.rotateBytes = DefaultRotateBytes
	}
	if l.queueTimeout <= 0 {
		l.queueTimeout = DefaultQueueTimeout
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.openFile == nil {
		l.openFile = openOSFile
	}
	// The queue holds a few batches: enough to absorb a slow fsync, small
	// enough that a stuck disk turns into 503s within QueueTimeout.
	l.queue = make(chan *item, 4*l.maxBatch)
	l.m = newMetrics(l)

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: open: create directory: %w", err)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	l.lock = lock
	if err := l.resume(); err != nil {
		l.closeFiles()
		return nil, err
	}
	if o.Registerer != nil {
		if err := l.m.register(o.Registerer); err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("audit: register metrics: %w", err)
		}
	}
	l.setHead()
	go l.run()
	// The head in the application log is an anchor kept outside the audit
	// files (docs/audit.md): verify --anchor SEQ:HASH.
	seq, head := l.Head()
	l.log.Info("audit log open", "path", path, "mode", modeName(l.strict), "head_seq", seq, "head_hash", head)
	return l, nil
}

func modeName(strict bool) string {
	if strict {
		return "strict"
	}
	return "batched"
}

// resume opens the live file and restores the chain state from it.
func (l *Log) resume() error {
	f, err := l.openFile(l.path)
	if err != nil {
		return fmt.Errorf("audit: open %s: not writable: %w", l.path, err)
	}
	l.f = f
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("audit: open %s: not a regular file", l.path)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	c := newChain(l.h)
	res, err := verifyPath(c, l.path)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	if res.problem != nil {
		return fmt.Errorf("%w: %s", ErrBroken, res.problem)
	}
	var repair *Record
	if res.torn > 0 {
		repair, err = l.repairTail(res)
		if err != nil {
			return err
		}
	}
	l.size = res.good
	if c.records > 0 {
		l.seq, l.prev, l.fileFirst = c.seq, c.prev, c.first
	} else if err := l.resumeRotated(); err != nil {
		return err
	}
	if repair != nil {
		it := &item{event: EventRepair}
		if it.body, err = appendBody(nil, repair, l.now()); err != nil {
			return err
		}
		if err := l.commit([]*item{it}); err != nil {
			return fmt.Errorf("audit: open %s: write repair record: %w", l.path, err)
		}
	}
	return nil
}

func verifyPath(c *chain, path string) (fileResult, error) {
	rf, err := os.Open(path)
	if err != nil {
		return fileResult{}, err
	}
	defer rf.Close()
	return c.verifyFile(rf, path)
}

// repairTail truncates the torn final line a crash left behind and returns
// the note to append. The dropped bytes were never acknowledged: a record
// is acknowledged only after its whole line, newline included, is synced.
func (l *Log) repairTail(res fileResult) (*Record, error) {
	rf, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("audit: repair %s: %w", l.path, err)
	}
	h := sha256.New()
	_, err = io.Copy(h, io.NewSectionReader(rf, res.good, res.torn))
	rf.Close()
	if err != nil {
		return nil, fmt.Errorf("audit: repair %s: %w", l.path, err)
	}
	if err := l.f.Truncate(res.good); err != nil {
		return nil, fmt.Errorf("audit: repair %s: truncate: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return nil, fmt.Errorf("audit: repair %s: sync: %w", l.path, err)
	}
	l.log.Warn("audit log: truncated torn final line", "path", l.path, "line", res.lines+1, "bytes", res.torn)
	return &Record{
		Event: EventRepair,
		Protocol: map[string]any{
			"torn_line":      int64(res.lines + 1),
			"dropped_bytes":  res.torn,
			"dropped_sha256": hex.EncodeToString(h.Sum(nil)),
		},
		Error: "torn final line truncated on open (crash during write)",
	}, nil
}

// resumeRotated continues the chain from the newest rotated file when the
// live file is empty (first start, or a crash between rotation steps).
func (l *Log) resumeRotated() error {
	names, err := filepath.Glob(l.path + ".*")
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	var newest string
	var newestSeq uint64
	for _, n := range names {
		if base, seq, ok := splitRotated(filepath.Base(n)); ok && base == filepath.Base(l.path) && seq != ^uint64(0) && seq >= newestSeq {
			newest, newestSeq = n, seq
		}
	}
	if newest == "" {
		l.fileFirst = 1
		return nil
	}
	c := newChain(l.h)
	res, err := verifyPath(c, newest)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", newest, err)
	}
	if res.problem == nil && res.torn > 0 {
		res.problem = &Problem{File: newest, Line: res.lines + 1, Reason: "incomplete final line in a rotated file"}
	}
	if res.problem == nil && c.records == 0 {
		res.problem = &Problem{File: newest, Line: 1, Reason: "rotated file is empty"}
	}
	if res.problem != nil {
		return fmt.Errorf("%w: %s", ErrBroken, res.problem)
	}
	l.seq, l.prev = c.seq, c.prev
	l.fileFirst = l.seq + 1
	l.prevFile = filepath.Base(newest)
	return nil
}

// Path is the live file's path: what `warden audit verify` needs, with its
// directory for the rotated files.
func (l *Log) Path() string { return l.path }

// Head returns the seq and hash of the last record made durable. Export it
// periodically (application log, another system) and pass it back to
// `warden audit verify --anchor SEQ:HASH`: that is what detects a tail cut
// off or rewritten with recomputed hashes.
func (l *Log) Head() (seq uint64, hash string) {
	h := l.head.Load()
	return h.seq, h.hash
}

func (l *Log) setHead() {
	h := &head{seq: l.seq}
	if l.seq > 0 {
		h.hash = hex.EncodeToString(l.prev[:])
	}
	l.head.Store(h)
}

// Append adds r to the log. In strict mode it returns once r is written and
// fsynced (records appended concurrently share one fsync), and fills in
// r.Seq, r.PrevHash and r.Hash. In batched mode it returns once r is
// queued; the writer commits it within MaxDelay. Append encodes r before
// returning, so the caller may reuse r.
//
// Any failure of the log wraps ErrUnavailable: the gateway must then refuse
// the request (503) rather than forward it unaudited. ctx bounds the wait
// for queue space and, in strict mode, for the commit; a strict record
// abandoned by ctx may still be written.
func (l *Log) Append(ctx context.Context, r *Record) error {
	if !validEvent(r.Event) {
		return fmt.Errorf("audit: append: invalid event %q", r.Event)
	}
	if !l.strict && l.unhealthy.Load() {
		l.m.failures.Inc()
		return l.unavailable()
	}
	t := r.Time
	if t.IsZero() {
		t = l.now()
	}
	it := itemPool.Get().(*item)
	body, err := appendBody(it.body[:0], r, t)
	if err != nil {
		putItem(it)
		return fmt.Errorf("audit: append: %w", err)
	}
	if len(body) > MaxLineBytes-hashSuffixLen-128 {
		it.body = body
		putItem(it)
		return fmt.Errorf("audit: append: record of %d bytes exceeds %d", len(body), MaxLineBytes)
	}
	it.body, it.event = body, r.Event

	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		putItem(it)
		return fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
	}
	select {
	case l.queue <- it:
	default:
		if err := l.enqueueSlow(ctx, it); err != nil {
			l.mu.RUnlock()
			putItem(it)
			l.m.failures.Inc()
			return err
		}
	}
	l.mu.RUnlock()
	if !l.strict {
		return nil
	}
	select {
	case err = <-it.done:
	case <-ctx.Done():
		// The writer still owns it; let the GC have it.
		return fmt.Errorf("%w: waiting for commit: %w", ErrUnavailable, ctx.Err())
	}
	if err != nil {
		putItem(it)
		return err
	}
	r.Seq = it.seq
	r.PrevHash = hex.EncodeToString(it.prev[:])
	r.Hash = hex.EncodeToString(it.hash[:])
	putItem(it)
	return nil
}

func (l *Log) enqueueSlow(ctx context.Context, it *item) error {
	t := time.NewTimer(l.queueTimeout)
	defer t.Stop()
	select {
	case l.queue <- it:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: queue full for %v", ErrUnavailable, l.queueTimeout)
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for queue: %w", ErrUnavailable, ctx.Err())
	}
}

func (l *Log) unavailable() error {
	if p := l.lastErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, *p)
	}
	return ErrUnavailable
}

// validEvent keeps event names short snake_case, so they are safe as a
// metric label.
func validEvent(e string) bool {
	if e == "" || len(e) > 32 {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// Close stops accepting records, commits those queued and closes the file.
// It returns an error wrapping ErrUnavailable when queued records could not
// be written.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.closing)
	close(l.queue)
	l.mu.Unlock()
	<-l.stopped
	err := l.closeFiles()
	if n := l.lost.Load(); n > 0 {
		return fmt.Errorf("%w: %d queued records lost at close", l.unavailable(), n)
	}
	if err != nil {
		return fmt.Errorf("audit: close %s: %w", l.path, err)
	}
	seq, head := l.Head()
	l.log.Info("audit log closed", "path", l.path, "head_seq", seq, "head_hash", head)
	return nil
}

// closeFiles closes the live file and releases the lock.
func (l *Log) closeFiles() error {
	var err error
	if l.f != nil {
		err = l.f.Close()
		l.f = nil
	}
	if l.lock != nil {
		l.lock.Close()
		l.lock = nil
	}
	return err
}

// run is the writer goroutine: it takes a batch off the queue, commits it
// with one write and one fsync, and reports back.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*item, 0, l.maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		it, ok := <-l.queue
		if !ok {
			return
		}
		batch = append(batch[:0], it)
		open := true
		if l.strict {
			// Group commit: whatever queued up during the last fsync.
		drain:
			for len(batch) < l.maxBatch {
				select {
				case it, ok := <-l.queue:
					if !ok {
						open = false
						break drain
					}
					batch = append(batch, it)
				default:
					break drain
				}
			}
		} else {
			timer.Reset(l.maxDelay)
		collect:
			for len(batch) < l.maxBatch {
				select {
				case it, ok := <-l.queue:
					if !ok {
						open = false
						break collect
					}
					batch = append(batch, it)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		l.flush(batch)
		clear(batch)
		if !open {
			return
		}
	}
}

// flush commits batch. In strict mode a failure is reported to each waiting
// Append (their requests are refused). In batched mode the records were
// already acknowledged, so the writer retries them with backoff while new
// Appends fail fast, until the disk recovers or the log is closed.
func (l *Log) flush(batch []*item) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := l.commit(batch)
		if err == nil {
			if l.unhealthy.Swap(false) {
				l.log.Info("audit log writable again", "path", l.path)
			}
			break
		}
		l.m.failures.Inc()
		l.lastErr.Store(&err)
		if !l.unhealthy.Swap(true) || attempt == 0 {
			l.log.Error("audit log write failed", "path", l.path, "records", len(batch), "err", err)
		}
		if l.strict {
			werr := fmt.Errorf("%w: %w", ErrUnavailable, err)
			for _, it := range batch {
				it.done <- werr
			}
			return
		}
		select {
		case <-l.closing:
			if attempt >= 2 {
				l.lost.Add(int64(len(batch)))
				l.log.Error("audit log: records lost at close", "path", l.path, "records", len(batch))
				for _, it := range batch {
					putItem(it)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	for _, it := range batch {
		if l.strict {
			it.done <- nil
		} else {
			putItem(it)
		}
	}
}

// commit writes batch (preceded by a rotate record when the live file is
// new and continues a chain) with one write and one fsync, and advances the
// chain only if both succeed.
func (l *Log) commit(batch []*item) error {
	start := time.Now()
	if l.f == nil {
		if err := l.reopen(); err != nil {
			return err
		}
	}
	if l.rotateBytes > 0 && l.size >= l.rotateBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	buf := l.buf[:0]
	seq, prev := l.seq, l.prev
	rotated := false
	if l.size == 0 && seq > 0 {
		rec := &Record{Event: EventRotate, Protocol: map[string]any{"previous_file": l.prevFile}}
		var err error
		if l.scratch, err = appendBody(l.scratch[:0], rec, l.now()); err != nil {
			return err
		}
		seq++
		buf, prev = l.h.appendLine(buf, seq, prev, l.scratch)
		rotated = true
	}
	for _, it := range batch {
		seq++
		it.seq, it.prev = seq, prev
		buf, prev = l.h.appendLine(buf, seq, prev, it.body)
		it.hash = prev
	}
	n, err := l.f.Write(buf)
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = l.f.Sync()
	}
	if cap(buf) <= 8<<20 {
		l.buf = buf
	}
	if err != nil {
		// Whatever reached the file is cut off by reopen before the retry.
		l.f.Close()
		l.f = nil
		return fmt.Errorf("audit: write %s: %w", l.path, err)
	}
	l.size += int64(len(buf))
	l.seq, l.prev = seq, prev
	l.setHead()
	l.m.write.Observe(time.Since(start).Seconds())
	if rotated {
		l.counter(EventRotate).Inc()
	}
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].event == batch[i].event {
			j++
		}
		l.counter(batch[i].event).Add(float64(j - i))
		i = j
	}
	return nil
}

func (l *Log) counter(event string) prometheus.Counter {
	c, ok := l.counters[event]
	if !ok {
		c = l.m.records.WithLabelValues(event)
		l.counters[event] = c
	}
	return c
}

// reopen reopens the live file after a failed write and cuts off whatever
// part of the failed batch reached it, so the retry starts on a clean line.
func (l *Log) reopen() error {
	f, err := l.openFile(l.path)
	if err != nil {
		return fmt.Errorf("audit: reopen %s: %w", l.path, err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < l.size {
		err = fmt.Errorf("file shrank from %d to %d bytes under the writer", l.size, st.Size())
	}
	if err == nil && st.Size() > l.size {
		if err = f.Truncate(l.size); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: reopen %s: %w", l.path, err)
	}
	l.f = f
	return nil
}

// rotate renames the live file to its rotated name (suffix: its first seq)
// and starts a new one; commit then writes the rotate record linking to it.
func (l *Log) rotate() error {
	rotated := fmt.Sprintf("%s.%0*d", l.path, rotatedDigits, l.fileFirst)
	if _, err := os.Lstat(rotated); err == nil {
		return fmt.Errorf("audit: rotate %s: %s already exists", l.path, rotated)
	}
	if err := l.f.Close(); err != nil {
		l.f = nil
		return fmt.Errorf("audit: rotate %s: close: %w", l.path, err)
	}
	l.f = nil
	if err := os.Rename(l.path, rotated); err != nil {
		return fmt.Errorf("audit: rotate %s: %w", l.path, err)
	}
	l.size = 0
	l.fileFirst = l.seq + 1
	l.prevFile = filepath.Base(rotated)
	dir := filepath.Dir(l.path)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("audit: rotate %s: %w", l.path, err)
	}
	f, err := l.openFile(l.path)
	if err != nil {
		return fmt.Errorf("audit: rotate %s: %w", l.path, err)
	}
	l.f = f
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("audit: rotate %s: %w", l.path, err)
	}
	l.log.Info("audit log rotated", "path", l.path, "rotated", rotated, "head_seq", l.seq, "head_hash", hex.EncodeToString(l.prev[:]))
	return nil
}

// syncDir makes a create or rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
