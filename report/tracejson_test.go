package report

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/pathtrace/pathtrace/analysis"
	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// stdTrace is what encoding/json writes for t at depth 2 (the reference).
func stdTrace(t *testing.T, tr correlate.Trace) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "  ")
	if err := enc.Encode(normTrace(tr)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func checkTrace(t *testing.T, what string, tr *correlate.Trace) {
	t.Helper()
	want := stdTrace(t, *tr)
	if got := appendTrace(nil, tr, 2); !bytes.Equal(got, want) {
		t.Fatalf("%s: trace %d differs from encoding/json:\ngot:\n%s\nwant:\n%s", what, tr.N, got, want)
	}
}

// TestTraceJSONMatchesEncodingJSON: every trace of every real capture in
// testdata, and traces with every odd field, encode byte for byte as
// encoding/json encodes them.
func TestTraceJSONMatchesEncodingJSON(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*"))
	n := 0
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		_, err := analysis.Run(context.Background(), analysis.Options{
			Inputs: []capture.Input{{Path: d}},
			Sink:   func(tr *correlate.Trace) { checkTrace(t, d, tr); n++ },
		})
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	if n < 100 {
		t.Fatalf("only %d traces from testdata", n)
	}
	odd := correlate.Trace{
		N: 7, Protocol: "tcp", Type: "syn-ack", Direction: "reverse",
		SrcIP:   correlate.OptAddr{V: netip.MustParseAddr("fd00::1")},
		SrcPort: correlate.OptUint{V: 443, Valid: true}, ID: correlate.OptUint{V: 0, Valid: true},
		Hops: []correlate.Hop{{Point: `we"ird\ point ✓ <&> ` + "\t\x01\u2028", Time: -5, DeltaNs: -3,
			SrcMAC: correlate.OptMAC{V: correlate.MAC{0xff, 0, 1, 0xab, 0xcd, 0xef}, Valid: true}, Dir: "in", Reflection: true}},
		LostAfter: "cni0", Missing: []string{"a", "b\n"},
		Rewrites: []correlate.Rewrite{{Point: "x", Field: "ttl", From: "64", To: "63"}},
		ReplyTo:  correlate.OptInt{V: 3, Valid: true},
		RTT:      &correlate.RTT{TotalNs: 1, ForwardNs: 2, TurnaroundNs: 3, ReverseNs: -4},
		Flags:    []string{"lost", "gap"},
	}
	checkTrace(t, "odd", &odd)
	checkTrace(t, "empty", &correlate.Trace{})
}

func BenchmarkTraceJSON(b *testing.B) {
	tr := correlate.Trace{N: 1, Protocol: "icmp", Type: "echo-request", Direction: "forward",
		Seq: correlate.OptUint{V: 1, Valid: true}, Hops: make([]correlate.Hop, 5)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendTrace(buf[:0], &tr, 2)
	}
}
