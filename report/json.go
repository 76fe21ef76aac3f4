package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// JSON writes the whole document: "version", "traces", then the rest of
// the Result ("points", "hop_latency", "anomalies", "warnings", "summary"),
// "pathtrace" (which build wrote it), then "discovery" and "live" for a live
// run. Slices are [] rather than null
// so consumers (jq, dashboards) need no null checks.
func JSON(w io.Writer, d Document) error {
	if d.Result == nil {
		return errors.New("report: no result to render")
	}
	s := NewJSONStream(w)
	for i := range d.Result.Traces {
		s.Trace(&d.Result.Traces[i])
	}
	return s.Finish(d)
}

// JSONStream writes the JSON document while the analysis runs: each trace
// as the correlator emits it, the rest once it is known. Memory does not
// grow with the number of traces. The traces come first because points'
// coverage and the statistics are only known at the end.
//
// Trace encodes the trace at once, on the caller's goroutine (whichever
// builds the engine's traces, having just built it: its bytes are still
// in cache), so a trace is never copied; encoded traces go out in writes of
// about streamFlush bytes.
type JSONStream struct {
	j      *jsonWriter
	traces int
	buf    []byte
	st     stampCache
}

// streamFlush: encoded traces are written once this many bytes are
// pending (a write per ~40 flood traces).
const streamFlush = 64 << 10

// NewJSONStream starts the document.
func NewJSONStream(w io.Writer) *JSONStream {
	s := &JSONStream{j: &jsonWriter{w: bufio.NewWriterSize(w, 64<<10)}, buf: make([]byte, 0, streamFlush+8<<10)}
	s.j.raw("{\n")
	s.j.field("version", correlate.SchemaVersion, false)
	s.j.raw("  \"traces\": [")
	return s
}

// Trace writes one trace; t may be reused by the caller afterwards.
func (s *JSONStream) Trace(t *correlate.Trace) {
	if s.traces > 0 {
		s.buf = append(s.buf, ',')
	}
	s.buf = append(s.buf, "\n    "...)
	s.buf = appendTraceCached(s.buf, t, &s.st)
	s.traces++
	if len(s.buf) >= streamFlush {
		s.flush()
	}
}

// flush writes the traces encoded so far.
func (s *JSONStream) flush() {
	if len(s.buf) > 0 && s.j.err == nil {
		_, s.j.err = s.j.w.Write(s.buf)
	}
	s.buf = s.buf[:0]
}

// Finish writes everything but the traces (d.Result.Traces is ignored) and
// flushes. It returns the first error of the whole stream.
func (s *JSONStream) Finish(d Document) error {
	s.flush()
	r := d.Result
	if r == nil {
		return errors.New("report: no result to render")
	}
	j := s.j
	if s.traces > 0 {
		j.raw("\n  ],\n")
	} else {
		j.raw("],\n")
	}
	j.field("points", normPoints(r.Points), false)
	j.field("clock_offsets", nonNil(r.ClockOffsets), false)
	j.field("hop_latency", nonNil(r.HopLatency), false)
	j.field("anomalies", normAnomalies(r.Anomalies), false)
	j.field("warnings", nonNil(r.Warnings), false)
	sum := r.Summary
	if sum.ByProto == nil {
		sum.ByProto = map[string]int{}
	}
	hasTool := d.Tool != (Tool{})
	j.field("summary", sum, !hasTool && d.Path == nil && d.Live == nil)
	if hasTool {
		j.field("pathtrace", toolJSON(d.Tool), d.Path == nil && d.Live == nil)
	}
	if d.Path != nil {
		j.field("discovery", normPath(*d.Path), d.Live == nil)
	}
	if d.Live != nil {
		j.field("live", liveJSON(d.Live), true)
	}
	j.raw("}\n")
	if j.err != nil {
		return fmt.Errorf("encode json: %w", j.err)
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

type jsonWriter struct {
	w   *bufio.Writer
	buf bytes.Buffer
	err error
}

func (j *jsonWriter) raw(s string) {
	if j.err == nil {
		_, j.err = j.w.WriteString(s)
	}
}

// encode writes v indented as if nested depth levels deep, without the
// encoder's trailing newline. HTML escaping is off: messages may hold "<".
func (j *jsonWriter) encode(v any, depth int) {
	if j.err != nil {
		return
	}
	j.buf.Reset()
	enc := json.NewEncoder(&j.buf)
	enc.SetEscapeHTML(false)
	prefix := ""
	for range depth {
		prefix += "  "
	}
	enc.SetIndent(prefix, "  ")
	if j.err = enc.Encode(v); j.err != nil {
		return
	}
	_, j.err = j.w.Write(bytes.TrimRight(j.buf.Bytes(), "\n"))
}

func (j *jsonWriter) field(name string, v any, last bool) {
	j.raw(fmt.Sprintf("  %q: ", name))
	j.encode(v, 1)
	if last {
		j.raw("\n")
	} else {
		j.raw(",\n")
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// normTrace fills nil slices of a copy; the caller's Result is not touched.
func normTrace(t correlate.Trace) correlate.Trace {
	t.Hops = nonNil(t.Hops)
	t.Missing = nonNil(t.Missing)
	t.Rewrites = nonNil(t.Rewrites)
	t.Flags = nonNil(t.Flags)
	return t
}

func normPoints(ps []correlate.PointRep) []correlate.PointRep {
	if ps == nil {
		return []correlate.PointRep{}
	}
	out := make([]correlate.PointRep, len(ps))
	for i, p := range ps {
		p.MACs = nonNil(p.MACs)
		out[i] = p
	}
	return out
}

func normAnomalies(as []correlate.Anomaly) []correlate.Anomaly {
	if as == nil {
		return []correlate.Anomaly{}
	}
	out := make([]correlate.Anomaly, len(as))
	for i, a := range as {
		a.Traces = nonNil(a.Traces)
		out[i] = a
	}
	return out
}

func normPath(p discover.Path) discover.Path {
	p.Points = nonNil(p.Points)
	p.FDB = nonNil(p.FDB)
	if p.Owners == nil {
		p.Owners = map[string]string{}
	}
	return p
}

// toolJSON is the "pathtrace" object: what the build recorded, null where
// it recorded nothing.
type toolJSONT struct {
	Version  *string `json:"version"`
	Revision *string `json:"revision"`
}

func toolJSON(t Tool) toolJSONT {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return toolJSONT{Version: opt(t.Version), Revision: opt(t.Revision)}
}

// liveJSON stamps times like the Result does (UTC, nine fractional digits)
// so one parser reads every time in the document.
type liveJSONT struct {
	Probes      int                  `json:"probes"`
	Sent        int                  `json:"sent"`
	Replies     int                  `json:"replies"`
	EchoID      *uint16              `json:"echo_id"` // the probes' ICMP id (icmp.ident in Wireshark); null when passive
	Interrupted bool                 `json:"interrupted"`
	Started     *correlate.Timestamp `json:"started"`
	Ended       *correlate.Timestamp `json:"ended"`
	Evidence    []string             `json:"evidence"`
	SpoolFile   int64                `json:"spool_file_bytes"`
}

func liveJSON(l *LiveInfo) liveJSONT {
	stamp := func(t time.Time) *correlate.Timestamp {
		if t.IsZero() {
			return nil
		}
		ts := correlate.Timestamp(t.UnixNano())
		return &ts
	}
	var id *uint16
	if !l.Passive && l.Sent > 0 {
		id = &l.EchoID
	}
	return liveJSONT{
		EchoID: id,
		Probes: l.Probes, Sent: l.Sent, Replies: l.Replies, Interrupted: l.Interrupted,
		Started: stamp(l.Started), Ended: stamp(l.Ended), Evidence: nonNil(l.Evidence), SpoolFile: l.SpoolFile,
	}
}
