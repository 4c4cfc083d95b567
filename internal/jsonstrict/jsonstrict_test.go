package jsonstrict

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// corpusCase is one file of testdata/corpus: a "# want: ok|<Msg>" line,
// then the document bytes.
type corpusCase struct {
	name string
	want string
	doc  []byte
}

func loadCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	files, err := filepath.Glob("testdata/corpus/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus: %v", err)
	}
	var cases []corpusCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		head, doc, ok := bytes.Cut(b, []byte("\n"))
		want, ok2 := strings.CutPrefix(string(head), "# want: ")
		if !ok || !ok2 {
			tb.Fatalf("%s: missing '# want:' header line", f)
		}
		cases = append(cases, corpusCase{name: filepath.Base(f), want: want, doc: doc})
	}
	return cases
}

func TestCorpus(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.name, func(t *testing.T) {
			v, err := Parse(c.doc, Options{})
			if c.want == "ok" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				checkRoundTrip(t, v)
				return
			}
			var je *Error
			if !errors.As(err, &je) {
				t.Fatalf("Parse = %v, %v; want *Error %q", v, err, c.want)
			}
			if je.Msg != c.want {
				t.Fatalf("Msg = %q, want %q", je.Msg, c.want)
			}
			if je.Offset < 0 || je.Offset > int64(len(c.doc)) {
				t.Errorf("Offset %d outside document of %d bytes", je.Offset, len(c.doc))
			}
		})
	}
}

// checkRoundTrip asserts Marshal output parses back to the same tree and is
// a fixed point of Parse→Marshal.
func checkRoundTrip(t testing.TB, v any) {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	v2, err := Parse(b, Options{MaxDepth: 1 << 20, MaxBytes: 1 << 40})
	if err != nil {
		t.Fatalf("Parse(Marshal(v)): %v\n%s", err, b)
	}
	if d := cmp.Diff(v, v2); d != "" {
		t.Fatalf("round trip changed the tree (-want +got):\n%s", d)
	}
	b2, err := Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("Marshal is not a fixed point:\n%s\n%s", b, b2)
	}
}

func TestParseTree(t *testing.T) {
	v, err := Parse([]byte(`{"id":123456789012345678901234567890,"a":[true,false,null,"x",1.5e3]}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": Number("123456789012345678901234567890"),
		"a":  []any{true, false, nil, "x", Number("1.5e3")},
	}
	if d := cmp.Diff(want, v); d != "" {
		t.Fatalf("tree (-want +got):\n%s", d)
	}
}

func TestMarshalCanonical(t *testing.T) {
	v, err := Parse([]byte(` { "b" : "<&>\u2028" , "a" : [ 1 , {"z":null,"y":1.0} ] } `), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"a\":[1,{\"y\":1.0,\"z\":null}],\"b\":\"<&>\u2028\"}"
	if string(got) != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}

func TestMarshalGoTypes(t *testing.T) {
	got, err := Marshal(map[string]any{"i": 3, "f": 0.5, "big": 1e300, "s": []string{"a"}, "m": map[string]string{"k": "v"}, "n": int64(-2)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"big":1e+300,"f":0.5,"i":3,"m":{"k":"v"},"n":-2,"s":["a"]}`
	if string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
	for _, bad := range []any{Number("01"), Number("1."), "\xff", struct{}{}, map[string]any{"x": Number("NaN")}} {
		if b, err := Marshal(bad); err == nil {
			t.Errorf("Marshal(%#v) = %s, want error", bad, b)
		}
	}
}

func TestLimits(t *testing.T) {
	doc := []byte(`{"a":[[1]]}`)
	if _, err := Parse(doc, Options{MaxDepth: 3}); err != nil {
		t.Fatalf("depth 3 under MaxDepth 3: %v", err)
	}
	if _, err := Parse(doc, Options{MaxDepth: 2}); err == nil || err.(*Error).Msg != MsgTooDeep {
		t.Fatalf("depth 3 under MaxDepth 2: %v", err)
	}
	if _, err := Parse(doc, Options{MaxBytes: int64(len(doc))}); err != nil {
		t.Fatalf("at MaxBytes: %v", err)
	}
	if _, err := Parse(doc, Options{MaxBytes: int64(len(doc) - 1)}); err == nil || err.(*Error).Msg != MsgTooLarge {
		t.Fatalf("over MaxBytes: %v", err)
	}
}

func TestErrorNeverQuotesInput(t *testing.T) {
	secret := "sk-SECRET"
	for _, doc := range []string{
		`{"` + secret + `":1,"` + secret + `":2}`,
		`{"a":"` + secret + "\xff" + `"}`,
		`{"a":` + secret + `}`,
		`{"a":"\u` + secret + `"}`,
	} {
		_, err := Parse([]byte(doc), Options{})
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", doc)
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "sk-") {
			t.Errorf("error leaks input: %v", err)
		}
	}
}

func TestFoldKey(t *testing.T) {
	pairs := [][2]string{{"model", "MODEL"}, {"stream", "ſtream"}, {"kind", "\u212aind"}, {"σ", "ς"}}
	for _, p := range pairs {
		if !strings.EqualFold(p[0], p[1]) {
			t.Fatalf("test pair %q %q not EqualFold", p[0], p[1])
		}
		if foldKey(p[0]) != foldKey(p[1]) {
			t.Errorf("foldKey(%q)=%q != foldKey(%q)=%q", p[0], foldKey(p[0]), p[1], foldKey(p[1]))
		}
	}
	if foldKey("model") == foldKey("modem") {
		t.Error("distinct keys fold together")
	}
}

func TestFoldVariantsLargeObject(t *testing.T) {
	// Past foldIndexThreshold the map-based check must agree with EqualFold.
	var b strings.Builder
	b.WriteString("{")
	for i := range 20 {
		b.WriteString(`"k` + string(rune('a'+i)) + `":1,`)
	}
	b.WriteString(`"ſtream":1,"STREAM":2}`)
	_, err := Parse([]byte(b.String()), Options{})
	if err == nil || err.(*Error).Msg != MsgFoldedKey {
		t.Fatalf("got %v, want %s", err, MsgFoldedKey)
	}
}

func TestCheckKeys(t *testing.T) {
	known := []string{"model", "stream"}
	tests := []struct {
		obj  map[string]any
		fail bool
	}{
		{map[string]any{"model": "x", "stream": true, "other": 1}, false},
		{map[string]any{"Model": "x"}, true},
		{map[string]any{"ſtream": true}, true},
		{map[string]any{"model\x00": "x"}, true},
		{map[string]any{"model\x00junk": "x"}, true},
		{map[string]any{"models": "x"}, false},
	}
	for _, tt := range tests {
		err := CheckKeys(tt.obj, known...)
		if (err != nil) != tt.fail {
			t.Errorf("CheckKeys(%v) = %v, want fail=%v", tt.obj, err, tt.fail)
		}
	}
}

func TestGetters(t *testing.T) {
	v, err := Parse([]byte(`{"s":"x","n":42,"f":4.2,"e":1e2,"b":true,"o":{},"a":[],"z":null,"big":99999999999999999999}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if s, ok, err := GetString(m, "s"); s != "x" || !ok || err != nil {
		t.Errorf("GetString = %q %v %v", s, ok, err)
	}
	if _, ok, err := GetString(m, "n"); !ok || err == nil {
		t.Errorf("GetString of number: ok=%v err=%v", ok, err)
	}
	if _, ok, err := GetString(m, "z"); ok || err != nil {
		t.Errorf("GetString of null: ok=%v err=%v", ok, err)
	}
	if _, ok, err := GetString(m, "missing"); ok || err != nil {
		t.Errorf("GetString of missing: ok=%v err=%v", ok, err)
	}
	if n, ok, err := GetInt(m, "n"); n != 42 || !ok || err != nil {
		t.Errorf("GetInt = %d %v %v", n, ok, err)
	}
	for _, k := range []string{"f", "e", "big", "s"} {
		if _, _, err := GetInt(m, k); err == nil {
			t.Errorf("GetInt(%s) accepted", k)
		}
	}
	if b, ok, err := GetBool(m, "b"); !b || !ok || err != nil {
		t.Errorf("GetBool = %v %v %v", b, ok, err)
	}
	if _, _, err := GetBool(m, "s"); err == nil {
		t.Error("GetBool of string accepted")
	}
	if o, ok, err := GetObject(m, "o"); o == nil || !ok || err != nil {
		t.Errorf("GetObject = %v %v %v", o, ok, err)
	}
	if _, _, err := GetObject(m, "a"); err == nil {
		t.Error("GetObject of array accepted")
	}
	if a, ok, err := GetArray(m, "a"); a == nil || !ok || err != nil {
		t.Errorf("GetArray = %v %v %v", a, ok, err)
	}
	if _, _, err := GetArray(m, "o"); err == nil {
		t.Error("GetArray of object accepted")
	}
	if f, ok := Float(m["f"]); !ok || f != 4.2 {
		t.Errorf("Float = %v %v", f, ok)
	}
}

func TestParseMembers(t *testing.T) {
	doc := []byte(`{"data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":3},"model":"m"}`)
	got, err := ParseMembers(doc, Options{}, "usage", "model")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"usage": map[string]any{"prompt_tokens": Number("3")}, "model": "m"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	for _, bad := range []string{`{"usage":1,"usage":2}`, `{"data":[1,}`, `{"usage":{}} x`, `[1]`, `{"data":"\xff"}`, `{"usage":{"a":1,"A":2}}`} {
		if _, err := ParseMembers([]byte(bad), Options{}, "usage"); err == nil {
			t.Errorf("ParseMembers(%q) accepted", bad)
		}
	}
}
