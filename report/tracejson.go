package report

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
)

// appendTrace writes t as encoding/json would with SetEscapeHTML(false) and
// SetIndent(indent(depth), "  ") — byte for byte (TestTraceJSONMatchesEncodingJSON)
// — but without reflection: a long capture emits hundreds of thousands of
// traces, and encoding/json was most of the time of a JSON report.
func appendTrace(b []byte, t *correlate.Trace, depth int) []byte {
	w := objWriter{b: b, depth: depth}
	w.open('{')
	w.key("n")
	w.b = strconv.AppendInt(w.b, int64(t.N), 10)
	w.key("protocol")
	w.str(t.Protocol.String())
	w.key("type")
	w.str(t.Type)
	w.key("id")
	w.optU(t.ID)
	w.key("seq")
	w.optU(t.Seq)
	w.key("ip_id")
	w.optU(t.IPID)
	w.key("src_ip")
	w.addr(t.SrcIP)
	w.key("dst_ip")
	w.addr(t.DstIP)
	w.key("src_port")
	w.optU(t.SrcPort)
	w.key("dst_port")
	w.optU(t.DstPort)
	w.key("length")
	w.b = strconv.AppendInt(w.b, int64(t.Length), 10)
	w.key("direction")
	w.str(t.Direction.String())
	w.key("hops")
	if len(t.Hops) == 0 {
		w.b = append(w.b, "[]"...)
	} else {
		w.open('[')
		for i := range t.Hops {
			w.elem()
			w.hop(&t.Hops[i])
		}
		w.close(']')
	}
	if t.LostAfter != "" {
		w.key("lost_after")
		w.str(t.LostAfter)
	}
	w.key("missing")
	w.strs(t.Missing)
	w.key("rewrites")
	if len(t.Rewrites) == 0 {
		w.b = append(w.b, "[]"...)
	} else {
		w.open('[')
		for _, r := range t.Rewrites {
			w.elem()
			w.open('{')
			w.key("point")
			w.str(r.Point)
			w.key("field")
			w.str(r.Field.String())
			w.key("from")
			w.str(r.From)
			w.key("to")
			w.str(r.To)
			w.close('}')
		}
		w.close(']')
	}
	w.key("reply_to")
	if t.ReplyTo.Valid {
		w.b = strconv.AppendInt(w.b, t.ReplyTo.V, 10)
	} else {
		w.b = append(w.b, "null"...)
	}
	if t.RTT != nil {
		w.key("rtt")
		w.open('{')
		w.key("total_ns")
		w.b = strconv.AppendInt(w.b, t.RTT.TotalNs, 10)
		w.key("forward_ns")
		w.b = strconv.AppendInt(w.b, t.RTT.ForwardNs, 10)
		w.key("turnaround_ns")
		w.b = strconv.AppendInt(w.b, t.RTT.TurnaroundNs, 10)
		w.key("reverse_ns")
		w.b = strconv.AppendInt(w.b, t.RTT.ReverseNs, 10)
		w.close('}')
	}
	w.key("flags")
	w.flags(t.Flags)
	w.close('}')
	return w.b
}

func (w *objWriter) hop(h *correlate.Hop) {
	w.open('{')
	w.key("point")
	w.str(h.Point)
	w.key("time")
	w.b = append(w.b, '"')
	w.b = time.Unix(0, int64(h.Time)).UTC().AppendFormat(w.b, "2006-01-02T15:04:05.000000000Z07:00")
	w.b = append(w.b, '"')
	w.key("delta_ns")
	w.b = strconv.AppendInt(w.b, h.DeltaNs, 10)
	w.key("src_mac")
	w.mac(h.SrcMAC)
	w.key("dst_mac")
	w.mac(h.DstMAC)
	w.key("ttl")
	w.optU(h.TTL)
	if h.Dir != correlate.DirUnknown {
		w.key("dir")
		w.str(h.Dir.String())
	}
	w.key("frame")
	w.b = strconv.AppendInt(w.b, int64(h.Frame), 10)
	if h.Reflection {
		w.key("reflection")
		w.b = append(w.b, "true"...)
	}
	if h.Encap != (correlate.HopEncap{}) {
		w.key("encap")
		w.encap(&h.Encap)
	}
	w.close('}')
}

func (w *objWriter) encap(e *correlate.HopEncap) {
	w.open('{')
	w.key("type")
	w.str(e.Type.String())
	if e.VNI.Valid {
		w.key("vni")
		w.optU(e.VNI)
	}
	w.key("outer_src_ip")
	w.addr(e.OuterSrcIP)
	w.key("outer_dst_ip")
	w.addr(e.OuterDstIP)
	w.key("outer_src_mac")
	w.mac(e.OuterSrcMAC)
	w.key("outer_dst_mac")
	w.mac(e.OuterDstMAC)
	w.key("outer_ttl")
	w.optU(e.OuterTTL)
	w.key("src_port")
	w.optU(e.SrcPort)
	w.key("dst_port")
	w.optU(e.DstPort)
	w.close('}')
}

// objWriter tracks nesting the way encoding/json's indenter lays it out:
// each member on its own line, indented two spaces per level below depth.
type objWriter struct {
	b      []byte
	depth  int
	levels int
	first  [4]bool // per open level (a trace nests 3 deep): no member written yet
}

func (w *objWriter) open(c byte) {
	w.b = append(w.b, c)
	w.first[w.levels] = true
	w.levels++
}

func (w *objWriter) close(c byte) {
	w.levels--
	w.newline(w.levels)
	w.b = append(w.b, c)
}

// elem starts the next member of the innermost level.
func (w *objWriter) elem() {
	top := w.levels - 1
	if !w.first[top] {
		w.b = append(w.b, ',')
	}
	w.first[top] = false
	w.newline(w.levels)
}

func (w *objWriter) key(k string) {
	w.elem()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, `": `...)
}

func (w *objWriter) newline(level int) {
	w.b = append(w.b, '\n')
	for range w.depth + level {
		w.b = append(w.b, ' ', ' ')
	}
}

func (w *objWriter) optU(o correlate.OptUint) {
	if !o.Valid {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = strconv.AppendUint(w.b, o.V, 10)
}

func (w *objWriter) addr(o correlate.OptAddr) {
	if !o.V.IsValid() {
		w.b = append(w.b, "null"...)
		return
	}
	w.b = append(w.b, '"')
	w.b = o.V.AppendTo(w.b)
	w.b = append(w.b, '"')
}

func (w *objWriter) mac(o correlate.OptMAC) {
	if !o.Valid {
		w.b = append(w.b, "null"...)
		return
	}
	const hexdigits = "0123456789abcdef"
	w.b = append(w.b, '"')
	for i, v := range o.V {
		if i > 0 {
			w.b = append(w.b, ':')
		}
		w.b = append(w.b, hexdigits[v>>4], hexdigits[v&0xf])
	}
	w.b = append(w.b, '"')
}

func (w *objWriter) strs(ss []string) {
	if len(ss) == 0 {
		w.b = append(w.b, "[]"...)
		return
	}
	w.open('[')
	for _, s := range ss {
		w.elem()
		w.str(s)
	}
	w.close(']')
}

func (w *objWriter) flags(fs []correlate.Flag) {
	if len(fs) == 0 {
		w.b = append(w.b, "[]"...)
		return
	}
	w.open('[')
	for _, f := range fs {
		w.elem()
		w.str(f.String())
	}
	w.close(']')
}

// str quotes s. Plain printable ASCII is written as is; anything that
// needs escaping goes through encoding/json, so the rules stay its own.
func (w *objWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(s)
			w.b = append(w.b, bytes.TrimRight(buf.Bytes(), "\n")...)
			return
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

// AppendTraceJSON appends t as the JSON report writes each trace (indented
// as a top-level value), for tools that check a report trace by trace.
func AppendTraceJSON(b []byte, t *correlate.Trace) []byte { return appendTrace(b, t, 0) }
