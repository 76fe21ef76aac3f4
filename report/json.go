package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
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
// Trace only copies the trace into a batch; batches are encoded on
// goroutines of their own, in parallel, and written in order: encoding is
// as much work as correlating, and the correlator's core is the busy one.
type JSONStream struct {
	j      *jsonWriter
	traces int
	cur    *traceBatch
	free   chan *traceBatch
	// Batches are numbered as they are handed to an encoder; the one
	// numbered written writes next.
	mu      sync.Mutex
	turn    *sync.Cond
	started int
	written int
}

// traceBatch is traces copied for an encoder (slices reused batch after
// batch), and the bytes it encodes them to.
type traceBatch struct {
	ts    []correlate.Trace
	rtts  []correlate.RTT
	drops []correlate.TraceDrop
	n     int
	first bool // holds the document's first trace
	seq   int
	buf   []byte
	st    stampCache
	run   func() // encodes it: made once, so starting an encoder allocates nothing
}

const (
	streamBatch   = 64
	streamBatches = 4 // being filled, or encoding: bounds the memory
)

// NewJSONStream starts the document.
func NewJSONStream(w io.Writer) *JSONStream {
	s := &JSONStream{j: &jsonWriter{w: bufio.NewWriterSize(w, 64<<10)}, free: make(chan *traceBatch, streamBatches)}
	s.turn = sync.NewCond(&s.mu)
	for range streamBatches {
		b := &traceBatch{ts: make([]correlate.Trace, streamBatch), rtts: make([]correlate.RTT, streamBatch),
			drops: make([]correlate.TraceDrop, streamBatch)}
		for i := range b.ts { // room for a usual trace: copies then allocate nothing
			b.ts[i] = correlate.Trace{Hops: make([]correlate.Hop, 0, 8), Missing: make([]string, 0, 4),
				Rewrites: make([]correlate.Rewrite, 0, 4), Flags: make([]correlate.Flag, 0, 4)}
		}
		b.run = func() { s.encodeBatch(b) }
		s.free <- b
	}
	s.j.raw("{\n")
	s.j.field("version", correlate.SchemaVersion, false)
	s.j.raw("  \"traces\": [")
	return s
}

// Trace writes one trace; t may be reused by the caller afterwards.
func (s *JSONStream) Trace(t *correlate.Trace) {
	b := s.cur
	if b == nil {
		b = <-s.free // waits while every batch is being encoded
		b.n, b.first = 0, s.traces == 0
		s.cur = b
	}
	d, rtt := &b.ts[b.n], &b.rtts[b.n]
	hops, missing, rewrites, flags := d.Hops[:0], d.Missing[:0], d.Rewrites[:0], d.Flags[:0]
	*d = *t
	d.Hops = append(hops, t.Hops...)
	d.Missing = append(missing, t.Missing...)
	d.Rewrites = append(rewrites, t.Rewrites...)
	d.Flags = append(flags, t.Flags...)
	if t.RTT != nil {
		*rtt = *t.RTT
		d.RTT = rtt
	}
	if t.Drop != nil {
		b.drops[b.n] = *t.Drop
		d.Drop = &b.drops[b.n]
	}
	b.n++
	s.traces++
	if b.n == streamBatch {
		s.encode(b)
	}
}

// encode hands b to an encoder goroutine.
func (s *JSONStream) encode(b *traceBatch) {
	s.cur = nil
	b.seq = s.started
	s.started++
	go b.run()
}

func (s *JSONStream) encodeBatch(b *traceBatch) {
	buf := b.buf[:0]
	for i := range b.n {
		if i > 0 || !b.first {
			buf = append(buf, ',')
		}
		buf = append(buf, "\n    "...)
		buf = appendTraceCached(buf, &b.ts[i], 2, &b.st)
	}
	b.buf = buf
	s.mu.Lock()
	for s.written != b.seq {
		s.turn.Wait()
	}
	if s.j.err == nil {
		_, s.j.err = s.j.w.Write(buf)
	}
	s.written++
	s.turn.Broadcast()
	s.mu.Unlock()
	s.free <- b
}

// wait returns once every batch handed to an encoder is written.
func (s *JSONStream) wait() {
	if s.cur != nil {
		s.encode(s.cur)
	}
	s.mu.Lock()
	for s.written != s.started {
		s.turn.Wait()
	}
	s.mu.Unlock()
}

// Finish writes everything but the traces (d.Result.Traces is ignored) and
// flushes. It returns the first error of the whole stream.
func (s *JSONStream) Finish(d Document) error {
	s.wait()
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
		Started: stamp(l.Started), Ended: stamp(l.Ended), Evidence: nonNil(l.Evidence),
	}
}
