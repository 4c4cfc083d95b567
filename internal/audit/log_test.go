package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/jsonstrict"
)

// records reads every record of the chain in dir as parsed JSON objects.
func records(t testing.TB, dir string) []map[string]any {
	t.Helper()
	files, err := Expand(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, f := range files {
		for _, line := range readLines(t, f) {
			v, err := jsonstrict.Parse([]byte(line), jsonstrict.Options{})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, v.(map[string]any))
		}
	}
	return out
}

func TestAppendConcurrent(t *testing.T) {
	for _, mode := range []string{"strict", "batched"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, func(c *config.Audit) { c.Mode = mode; c.MaxDelay = time.Millisecond }, Options{})
			const workers, each = 8, 100
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						r := &Record{Event: EventDecision, RequestID: fmt.Sprintf("w%d-%d", w, i), Decision: DecisionDeny, Status: 403}
						if err := l.Append(context.Background(), r); err != nil {
							t.Error(err)
							return
						}
						if mode == "strict" && (r.Seq == 0 || len(r.Hash) != 64 || len(r.PrevHash) != 64) {
							t.Errorf("strict Append left chain fields empty: %+v", r)
						}
					}
				})
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, dir)
			if rep.Records != workers*each {
				t.Fatalf("records = %d", rep.Records)
			}
			seen := map[string]int{}
			for _, r := range records(t, dir) {
				seen[r["request_id"].(string)]++
			}
			if len(seen) != workers*each {
				t.Errorf("%d distinct request ids", len(seen))
			}
		})
	}
}

func TestStrictChainFieldsMatchFile(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, nil, Options{})
	r1, r2 := sample(0), sample(1)
	for _, r := range []*Record{r1, r2} {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if seq, h := l.Head(); seq != 2 || h != r2.Hash {
		t.Errorf("Head = %d %s, want 2 %s", seq, h, r2.Hash)
	}
	l.Close()
	recs := records(t, dir)
	if recs[1]["hash"] != r2.Hash || recs[1]["prev"] != r1.Hash || r2.PrevHash != r1.Hash || r1.PrevHash != strings.Repeat("0", 64) {
		t.Errorf("chain fields: r1 %s→%s r2 %s→%s file %v", r1.PrevHash, r1.Hash, r2.PrevHash, r2.Hash, recs[1])
	}
}

// TestGoldenRecord freezes the encoding of a record with every field set.
func TestGoldenRecord(t *testing.T) {
	r := &Record{
		Time: t0.Add(123456789), Event: EventDecision, RequestID: "01J9ZK", SpiffeID: "spiffe://warden.test/agent/a",
		AuthMethod: "jwt", Listener: "agents", Route: "mcp/", Backend: "tools", Kind: "mcp",
		Resource: map[string]any{"tool": "search", "kind": "mcp", "n": jsonstrict.Number("1e3")}, Action: "invoke", Operation: "tools/call",
		Decision: DecisionDeny, Reasons: []string{"tool not allowed", "é\u2028"}, Obligations: []string{"redact"},
		Status: 403, LatencyMS: 1.23456789, BytesIn: 10, BytesOut: 20,
		Protocol: map[string]any{"guard": map[string]any{"findings": []any{"pii"}}}, Error: "policy_denied",
	}
	body, err := appendBody(nil, r, r.Time)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := newHasher(nil).appendLine(nil, 1, genesis, body)
	golden := filepath.Join("testdata", "golden", "full_record.jsonl")
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, line, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(line)); diff != "" {
		t.Errorf("encoding changed (-golden +got):\n%s", diff)
	}
	mustVerify(t, golden)
}

func TestEncodeAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	plain := sample(0)
	plain.Resource = nil
	if n := testing.AllocsPerRun(100, func() { buf, _ = appendBody(buf[:0], plain, plain.Time) }); n != 0 {
		t.Errorf("appendBody without maps: %v allocs", n)
	}
	withMaps := sample(1)
	// jsonstrict sorts map keys into one slice per map.
	if n := testing.AllocsPerRun(100, func() { buf, _ = appendBody(buf[:0], withMaps, withMaps.Time) }); n > 1 {
		t.Errorf("appendBody with one map: %v allocs, budget 1", n)
	}
	h := newHasher(nil)
	var line []byte
	if n := testing.AllocsPerRun(100, func() { line, _ = h.appendLine(line[:0], 7, genesis, buf) }); n != 0 {
		t.Errorf("appendLine: %v allocs", n)
	}
}

func TestRotationPreservesChain(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, func(c *config.Audit) { c.Mode = "batched"; c.RotateBytes = 4096; c.MaxBatch = 8 }, Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { appendN(t, l, w*50, 50) })
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Expand(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("%d files, want rotation", len(files))
	}
	rep := mustVerify(t, dir)
	for i, f := range files[1:] {
		first := readLines(t, f)[0]
		if !strings.Contains(first, `"event":"rotate","protocol":{"previous_file":"`+filepath.Base(files[i])+`"}`) {
			t.Errorf("%s starts with %s", f, first)
		}
		p, _ := parseLine([]byte(first))
		if want := rotatedName(dir, p.seq); i+1 < len(files)-1 && f != want {
			t.Errorf("rotated file %s, want name %s", f, want)
		}
	}
	if rep.Records != 200+int64(len(files)-1) {
		t.Errorf("records = %d, want 200 + %d rotate records", rep.Records, len(files)-1)
	}
}

func TestResume(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, nil, Options{})
	appendN(t, l, 0, 3)
	seq, h := l.Head()
	l.Close()

	l = openLog(t, dir, func(c *config.Audit) { c.Mode = "batched" }, Options{})
	if s2, h2 := l.Head(); s2 != seq || h2 != h {
		t.Fatalf("resumed head %d %s, want %d %s", s2, h2, seq, h)
	}
	appendN(t, l, 3, 3)
	l.Close()
	rep := mustVerify(t, dir)
	if rep.Records != 6 || rep.LastSeq != 6 {
		t.Fatalf("report %s", rep.String())
	}
}

// TestResumeAfterRotationCrash simulates a crash after the live file was
// renamed and before the new one was created.
func TestResumeAfterRotationCrash(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 6, 1200)
	live := filepath.Join(dir, "audit.jsonl")
	p, err := parseLine([]byte(readLines(t, live)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(live, rotatedName(dir, p.seq)); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, dir, nil, Options{})
	appendN(t, l, 6, 2)
	l.Close()
	rep := mustVerify(t, dir)
	first := readLines(t, live)[0]
	if !strings.Contains(first, `"event":"rotate"`) || !strings.Contains(first, filepath.Base(rotatedName(dir, p.seq))) {
		t.Errorf("new live file starts with %s", first)
	}
	if rep.FirstSeq != 1 {
		t.Errorf("report %s", rep.String())
	}
}

func TestTornTailRepair(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 5, -1)
	live := filepath.Join(dir, "audit.jsonl")
	torn := `{"seq":6,"prev":"ab`
	f, err := os.OpenFile(live, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(torn)
	f.Close()

	rep, err := Verify(live)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.Problem.Reason, "incomplete final line") {
		t.Fatalf("verify accepted a torn tail: %s", rep.String())
	}

	l := openLog(t, dir, nil, Options{})
	appendN(t, l, 5, 1)
	l.Close()
	rep = mustVerify(t, live)
	if rep.Records != 7 {
		t.Fatalf("records = %d, want 5 + repair + 1", rep.Records)
	}
	recs := records(t, dir)
	rp := recs[5]
	if rp["event"] != EventRepair {
		t.Fatalf("record 6 is %v, want repair", rp)
	}
	proto := rp["protocol"].(map[string]any)
	if proto["dropped_bytes"] != jsonstrict.Number(fmt.Sprint(len(torn))) || proto["torn_line"] != jsonstrict.Number("6") {
		t.Errorf("repair record %v", proto)
	}
}

func TestOpenRefusesBrokenLog(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 4, -1)
	edit(func(l []string) []string {
		l[1] = strings.Replace(l[1], "200", "500", 1)
		return l
	})(t, dir)
	_, err := OpenWith(config.Audit{Path: "audit.jsonl"}, dir, Options{})
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "audit.jsonl:2: seq 2: hash mismatch") {
		t.Fatalf("Open of an edited log: %v", err)
	}
}

func TestOpenRefusesUnwritablePath(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o600)
	os.Mkdir(filepath.Join(dir, "isdir"), 0o700)
	cases := map[string]string{
		"path is a directory": filepath.Join(dir, "isdir"),
		"parent is a file":    filepath.Join(notDir, "audit.jsonl"),
		"read-only fs":        "/proc/self/audit.jsonl",
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			l, err := Open(config.Audit{Path: p}, "", nil, nil, nil)
			if err == nil {
				l.Close()
				t.Fatalf("Open(%s) succeeded", p)
			}
			if !strings.HasPrefix(err.Error(), "audit: ") {
				t.Errorf("error %q does not say it is the audit log", err)
			}
		})
	}
	if _, err := Open(config.Audit{}, dir, nil, nil, nil); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := Open(config.Audit{Path: "a.jsonl", Mode: "sometimes"}, dir, nil, nil, nil); err == nil {
		t.Error("unknown mode accepted")
	}
}

func faultyOpener(fw, fs *atomic.Bool, gate chan struct{}, last *atomic.Pointer[os.File]) func(string) (file, error) {
	return func(p string) (file, error) {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		if last != nil {
			last.Store(f)
		}
		return &faultFile{File: f, failWrite: fw, failSync: fs, gate: gate}, nil
	}
}

func TestWriteFailureStrict(t *testing.T) {
	for _, which := range []string{"write", "fsync"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			var fw, fs atomic.Bool
			reg := prometheus.NewRegistry()
			l := openLog(t, dir, nil, Options{Registerer: reg, openFile: faultyOpener(&fw, &fs, nil, nil)})
			appendN(t, l, 0, 2)
			if which == "write" {
				fw.Store(true)
			} else {
				fs.Store(true)
			}
			err := l.Append(context.Background(), sample(2))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Append on a failing disk: %v", err)
			}
			if got := value(t, l.m.failures); got < 1 {
				t.Errorf("failures metric = %v", got)
			}
			fw.Store(false)
			fs.Store(false)
			appendN(t, l, 3, 2)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			rep := mustVerify(t, dir)
			if rep.Records != 4 {
				t.Errorf("records = %d, want 4 (the failed one is not in the log)", rep.Records)
			}
		})
	}
}

func TestWriteFailureBatched(t *testing.T) {
	dir := t.TempDir()
	var fw atomic.Bool
	l := openLog(t, dir, func(c *config.Audit) { c.Mode = "batched"; c.MaxDelay = time.Millisecond }, Options{openFile: faultyOpener(&fw, nil, nil, nil)})
	var acked []string
	add := func(i int) error {
		r := &Record{Event: EventDecision, RequestID: fmt.Sprint("r", i)}
		err := l.Append(context.Background(), r)
		if err == nil {
			acked = append(acked, r.RequestID)
		}
		return err
	}
	for i := range 3 {
		if err := add(i); err != nil {
			t.Fatal(err)
		}
	}
	fw.Store(true)
	i := 3
	var err error
	for ; i < 10000 && err == nil; i++ {
		err = add(i)
		time.Sleep(100 * time.Microsecond)
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Append while the disk is full: %v", err)
	}
	fw.Store(false)
	for err != nil && i < 100000 {
		err = add(i)
		i++
		time.Sleep(100 * time.Microsecond)
	}
	if err != nil {
		t.Fatalf("log did not recover: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir)
	got := map[string]bool{}
	for _, r := range records(t, dir) {
		got[r["request_id"].(string)] = true
	}
	for _, id := range acked {
		if !got[id] {
			t.Errorf("acknowledged record %s lost", id)
		}
	}
}

// TestFDClosedUnderWriter closes the live file's descriptor behind the
// writer's back: the next Append fails closed, then the log reopens.
func TestFDClosedUnderWriter(t *testing.T) {
	dir := t.TempDir()
	var last atomic.Pointer[os.File]
	l := openLog(t, dir, nil, Options{openFile: faultyOpener(nil, nil, nil, &last)})
	appendN(t, l, 0, 2)
	last.Load().Close()
	if err := l.Append(context.Background(), sample(2)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append on a closed fd: %v", err)
	}
	appendN(t, l, 3, 1)
	l.Close()
	if rep := mustVerify(t, dir); rep.Records != 3 {
		t.Errorf("records = %d", rep.Records)
	}
}

func TestQueueFull(t *testing.T) {
	dir := t.TempDir()
	gate := make(chan struct{})
	l := openLog(t, dir, func(c *config.Audit) {
		c.Mode = "batched"
		c.MaxBatch = 1
		c.QueueTimeout = 20 * time.Millisecond
	}, Options{openFile: faultyOpener(nil, nil, gate, nil)})
	var err error
	n := 0
	for ; n < 100 && err == nil; n++ {
		err = l.Append(context.Background(), sample(n))
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "queue full") {
		t.Fatalf("Append with a stuck writer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Append(ctx, sample(0)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: %v", err)
	}
	close(gate)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, dir); rep.Records != int64(n-1) {
		t.Errorf("records = %d, want %d accepted", rep.Records, n-1)
	}
}

func TestAppendRefusals(t *testing.T) {
	l := openLog(t, t.TempDir(), nil, Options{})
	for _, ev := range []string{"", "Decision", "decision!", strings.Repeat("a", 33)} {
		if err := l.Append(context.Background(), &Record{Event: ev}); err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("event %q: %v", ev, err)
		}
	}
	if err := l.Append(context.Background(), &Record{Event: EventAlert, Error: "\xff"}); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
	if err := l.Append(context.Background(), &Record{Event: EventAlert, Protocol: map[string]any{"x": strings.Repeat("a", MaxLineBytes)}}); err == nil {
		t.Error("oversized record accepted")
	}
	l.Close()
	err := l.Append(context.Background(), sample(0))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	l := openLog(t, dir, nil, Options{Registerer: reg})
	appendN(t, l, 0, 5)
	if got := value(t, l.m.records.WithLabelValues(EventDecision)); got != 3 {
		t.Errorf("decision records = %v", got)
	}
	if got := value(t, l.m.records.WithLabelValues(EventOutcome)); got != 2 {
		t.Errorf("outcome records = %v", got)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	want := []string{"warden_audit_failures_total", "warden_audit_head_seq", "warden_audit_queue_depth", "warden_audit_records_total", "warden_audit_write_seconds"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
	if got := value(t, l.m.headSeq); got != 5 {
		t.Errorf("head seq = %v", got)
	}
	// A second log on the same registry is refused, not silently unmetered.
	if _, err := OpenWith(config.Audit{Path: "other.jsonl"}, dir, Options{Registerer: reg}); err == nil {
		t.Error("duplicate registration accepted")
	}
	l.Close()
}

func TestHashIsOverLineWithoutHash(t *testing.T) {
	// The documented recipe: strip `,"hash":"…"` and SHA-256 the rest.
	dir := t.TempDir()
	buildLog(t, dir, 1, -1)
	line := readLines(t, filepath.Join(dir, "audit.jsonl"))[0]
	i := strings.LastIndex(line, `,"hash":"`)
	sum := newHasher(nil).sum([]byte(line[:i] + "}"))
	if want := line[i+9 : i+9+64]; hex.EncodeToString(sum[:]) != want {
		t.Errorf("hash %x, line says %s", sum, want)
	}
}

// value reads a counter or gauge.
func value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestStrictGroupCommit holds the first fsync's write, queues ten more
// strict appends behind it, and checks they share the next fsync.
func TestStrictGroupCommit(t *testing.T) {
	dir := t.TempDir()
	gate, writing := make(chan struct{}), make(chan struct{})
	var syncs atomic.Int64
	opener := func(p string) (file, error) {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		return &faultFile{File: f, gate: gate, writing: writing, syncs: &syncs}, nil
	}
	l := openLog(t, dir, nil, Options{openFile: opener})
	var wg sync.WaitGroup
	wg.Go(func() { appendN(t, l, 0, 1) })
	<-writing // the writer is in the first batch's Write
	for i := range 10 {
		wg.Go(func() { appendN(t, l, 1+i, 1) })
	}
	for len(l.queue) < 10 {
		time.Sleep(time.Millisecond)
	}
	gate <- struct{}{} // release the first batch
	<-writing          // the second batch
	gate <- struct{}{}
	wg.Wait()
	if got := syncs.Load(); got != 2 {
		t.Errorf("%d fsyncs for 11 strict records, want 2", got)
	}
	l.Close()
	if rep := mustVerify(t, dir); rep.Records != 11 {
		t.Errorf("records = %d", rep.Records)
	}
}

// TestBatchedCommitsWithoutClose: a batched record reaches the file on its
// own (MaxDelay), not only at Close.
func TestBatchedCommitsWithoutClose(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, func(c *config.Audit) { c.Mode = "batched" }, Options{})
	defer l.Close()
	appendN(t, l, 0, 3)
	deadline := time.Now().Add(10 * time.Second)
	for seq, _ := l.Head(); seq < 3; seq, _ = l.Head() {
		if time.Now().After(deadline) {
			t.Fatal("batched records not committed without Close")
		}
		time.Sleep(time.Millisecond)
	}
	if n := countLines(filepath.Join(dir, "audit.jsonl")); n != 3 {
		t.Errorf("%d lines on disk at head seq 3", n)
	}
}

func TestOneWriterPerLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, nil, Options{})
	_, err := OpenWith(config.Audit{Path: "audit.jsonl"}, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "in use by another writer") {
		t.Fatalf("second writer on one log: %v", err)
	}
	l.Close()
	l = openLog(t, dir, nil, Options{})
	l.Close()
	if files, _ := Expand(dir); len(files) != 1 {
		t.Errorf("Expand lists the lock file: %v", files)
	}
}

// TestHeadInApplicationLog: open, rotate and close log the head, an anchor
// outside the audit files; the application log never gets record contents.
func TestHeadInApplicationLog(t *testing.T) {
	dir := t.TempDir()
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	l := openLog(t, dir, func(c *config.Audit) { c.RotateBytes = 1200 }, Options{Logger: logger})
	appendN(t, l, 0, 6)
	seq, h := l.Head()
	l.Close()
	out := buf.String()
	for _, want := range []string{"audit log open", "audit log rotated", "audit log closed", "head_seq=" + fmt.Sprint(seq) + " head_hash=" + h} {
		if !strings.Contains(out, want) {
			t.Errorf("application log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "spiffe://") || strings.Contains(out, "req-") {
		t.Errorf("application log carries record contents:\n%s", out)
	}
	if _, err := ParseAnchor(fmt.Sprintf("%d:%s", seq, h)); err != nil {
		t.Error(err)
	}
}
