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

// JSON writes the Result's fields at the top level, then "discovery" and
// "live" for a live run. Slices are [] rather than null so consumers (jq,
// dashboards) need no null checks; traces are encoded one at a time so a
// long capture is never held twice in memory as JSON.
func JSON(w io.Writer, d Document) error {
	r := d.Result
	if r == nil {
		return errors.New("report: no result to render")
	}
	j := &jsonWriter{w: bufio.NewWriter(w)}
	version := r.Version
	if version == 0 {
		version = correlate.SchemaVersion
	}
	j.raw("{\n")
	j.field("version", version, false)
	j.field("points", normPoints(r.Points), false)
	j.traces(r.Traces)
	j.field("hop_latency", nonNil(r.HopLatency), false)
	j.field("anomalies", normAnomalies(r.Anomalies), false)
	j.field("warnings", nonNil(r.Warnings), false)
	s := r.Summary
	if s.ByProto == nil {
		s.ByProto = map[string]int{}
	}
	last := d.Path == nil && d.Live == nil
	j.field("summary", s, last)
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

func (j *jsonWriter) traces(ts []correlate.Trace) {
	if len(ts) == 0 {
		j.raw("  \"traces\": [],\n")
		return
	}
	j.raw("  \"traces\": [\n")
	for i := range ts {
		j.raw("    ")
		j.encode(normTrace(ts[i]), 2)
		if i < len(ts)-1 {
			j.raw(",\n")
		} else {
			j.raw("\n")
		}
	}
	j.raw("  ],\n")
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

// liveJSON stamps times like the Result does (UTC, nine fractional digits)
// so one parser reads every time in the document.
type liveJSONT struct {
	Probes      int                  `json:"probes"`
	Sent        int                  `json:"sent"`
	Replies     int                  `json:"replies"`
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
	return liveJSONT{
		Probes: l.Probes, Sent: l.Sent, Replies: l.Replies, Interrupted: l.Interrupted,
		Started: stamp(l.Started), Ended: stamp(l.Ended), Evidence: nonNil(l.Evidence),
	}
}
