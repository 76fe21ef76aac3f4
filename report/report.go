// Package report renders an analysis (and, for live runs, the discovered
// path and probe counters) as a one-screen table, as Markdown for an incident
// ticket, or as JSON. Renderers only write to an io.Writer: no terminal, no
// colours, so output is the same piped, redirected or on a tty.
package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// Document is everything one report shows. Path and Live are nil for an
// offline analysis of saved captures; a zero Tool leaves the footer out.
type Document struct {
	Result *correlate.Result
	Path   *discover.Path
	Live   *LiveInfo
	Tool   Tool
}

// LiveInfo is what a live run adds: probe counters and the files it wrote.
type LiveInfo struct {
	Passive     bool      // no probes: the endpoints' own traffic
	Probes      int       // probes requested
	Size        int       // probe payload bytes (0: ping's 56)
	Sent        int       // probes the kernel accepted
	Replies     int       // echo replies received by the prober
	EchoID      uint16    // the probes' ICMP echo id
	Interrupted bool      // stopped early (signal) — coverage ends there
	Started     time.Time // every point armed (each captured from its own arming, a little earlier)
	Ended       time.Time // capture end
	Evidence    []string  // files written (pcapng per point, JSON)
	SpoolFile   int64     // bytes of frames that waited in the spool's file (past --spool-memory)
}

// Options tune the human formats; JSON always has everything.
type Options struct {
	Limit int // traces shown in table/markdown; 0 = all
	Width int // terminal width hint, 0 = 120
	// Detail renders one row group per trace with a row per hop (time,
	// MACs, TTL) instead of the one-screen timeline matrix.
	Detail bool
}

func (o Options) width() int {
	if o.Width <= 0 {
		return 120
	}
	return o.Width
}

// writer is what every text renderer writes with: the buffered output, the
// options, who owns which MAC, and the first error (bufio keeps write
// errors sticky; this keeps tablewriter's).
type writer struct {
	w   *bufio.Writer
	o   Options
	own owners
	err error
}

// write renders d with fn over a buffered w.
func write(w io.Writer, d Document, o Options, format string, fn func(*writer)) error {
	if d.Result == nil {
		return errors.New("report: no result to render")
	}
	bw := bufio.NewWriter(w)
	b := &writer{w: bw, o: o, own: ownersOf(d)}
	fn(b)
	if b.err != nil {
		return fmt.Errorf("render %s: %w", format, b.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", format, err)
	}
	return nil
}

// clock is the time of day in UTC with digits fractional digits (6 or 9).
// UTC because the JSON stamps are UTC and node logs usually are too.
func clock(t correlate.Timestamp, digits int) string {
	tt := time.Unix(0, int64(t)).UTC()
	if digits == 6 {
		return tt.Format("15:04:05.000000")
	}
	return tt.Format("15:04:05.000000000")
}

// micros prints ns as µs with exactly three decimals, without float
// rounding, so a Δ reads the same as the JSON delta_ns.
func micros(ns int64) string {
	sign := ""
	if ns < 0 {
		sign = "-"
		ns = -ns
	}
	return fmt.Sprintf("%s%d.%03d", sign, ns/1000, ns%1000)
}

// delta is a hop's Δ from the previous hop: blank at the first, signed after.
func delta(i int, ns int64) string {
	if i == 0 {
		return ""
	}
	if ns >= 0 {
		return "+" + micros(ns)
	}
	return micros(ns)
}

// micros1 is a duration in µs with one decimal, for the RTT split.
func micros1(ns int64) string {
	sign := ""
	if ns < 0 {
		sign = "-"
		ns = -ns
	}
	tenths := (ns + 50) / 100
	return fmt.Sprintf("%s%d.%d", sign, tenths/10, tenths%10)
}

func optUint(v correlate.OptUint) string {
	if !v.Valid {
		return "-"
	}
	return strconv.FormatUint(v.V, 10)
}

// traceTitle is the header line of a trace group, e.g.
// "#3 icmp echo-request seq=1 id=0x1a2b 10.244.1.2 → 10.244.1.3 forward".
func traceTitle(t *correlate.Trace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", t.N, t.Protocol)
	// The correlator names ARP types "arp-request": drop the repeated protocol.
	if typ := strings.TrimPrefix(t.Type, t.Protocol.String()+"-"); typ != "" {
		b.WriteString(" " + typ)
	}
	if t.Seq.Valid {
		fmt.Fprintf(&b, " seq=%d", t.Seq.V)
	}
	if t.ID.Valid {
		fmt.Fprintf(&b, " id=%#04x", t.ID.V)
	}
	src, dst := endpoint(t.SrcIP, t.SrcPort), endpoint(t.DstIP, t.DstPort)
	if src != "" || dst != "" {
		if src == "" {
			src = "?"
		}
		if dst == "" {
			dst = "?"
		}
		b.WriteString(" " + src + " → " + dst)
	}
	if t.Length > 0 {
		fmt.Fprintf(&b, " len=%d", t.Length)
	}
	b.WriteString(" " + t.Direction.String())
	return b.String()
}

func endpoint(a correlate.OptAddr, port correlate.OptUint) string {
	if !a.V.IsValid() {
		return ""
	}
	if !port.Valid {
		return a.V.String()
	}
	if a.V.Is6() {
		return fmt.Sprintf("[%s]:%d", a.V, port.V)
	}
	return fmt.Sprintf("%s:%d", a.V, port.V)
}

// hopFlags is the last column of a hop row: the direction the capture
// recorded, or that the frame came back out of the port it entered (a
// reflection goes the other way by definition, so its direction says
// nothing more).
func hopFlags(h *correlate.Hop) string {
	if h.Reflection {
		return "reflection" // explained in the notes under the group
	}
	if h.Dir != correlate.DirUnknown {
		return h.Dir.String()
	}
	return ""
}

// hopRow is one hop as cells: point, time, Δ µs, src MAC, dst MAC, TTL, flags.
func hopRow(o owners, i int, h *correlate.Hop) []string {
	ttl := "-"
	if h.TTL.Valid {
		ttl = strconv.FormatUint(h.TTL.V, 10)
	}
	return []string{h.Point, clock(h.Time, 9), delta(i, h.DeltaNs), o.optMAC(h.SrcMAC), o.optMAC(h.DstMAC), ttl, hopFlags(h)}
}

var hopHeader = []string{"POINT", "TIME (UTC)", "Δ µs", "SRC MAC", "DST MAC", "TTL", "FLAGS"}

// moreLine tells the reader how many traces the limit left out and how to
// see them.
func moreLine(n int) string {
	s := "s"
	if n == 1 {
		s = ""
	}
	return fmt.Sprintf("… %d more trace%s: --limit 0 shows all (the JSON report has every one)", n, s)
}

// shown is the traces the limit lets through and how many the report
// leaves out: beyond the limit, and those the run did not keep (a live
// run's evidence keeps the first --limit traces; the summary counts all).
func shown(r *correlate.Result, limit int) ([]correlate.Trace, int) {
	list := r.Traces
	if limit > 0 && limit < len(list) {
		list = list[:limit]
	}
	return list, max(r.Summary.Traces, len(r.Traces)) - len(list)
}

// tracesTitle is "Traces (20 of 42)", or "Traces (8)" when all are shown.
func tracesTitle(list []correlate.Trace, more int) string {
	if more > 0 {
		return fmt.Sprintf("Traces (%d of %d)", len(list), len(list)+more)
	}
	return fmt.Sprintf("Traces (%d)", len(list))
}

// summaryLine counts what the analysis saw, for the line above the verdict.
func summaryLine(s correlate.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d traces: %d complete, %d lost, %d with gaps; %d frames read, %d decoded",
		s.Traces, s.Complete, s.Lost, s.WithGaps, s.Frames, s.Decoded)
	if s.FilteredOut > 0 {
		fmt.Fprintf(&b, ", %d left out by --filter", s.FilteredOut)
	}
	if s.OffPath > 0 {
		fmt.Fprintf(&b, "; %d off-path", s.OffPath)
	}
	if len(s.ByProto) > 0 {
		keys := sortedKeys(s.ByProto)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, s.ByProto[k])
		}
		b.WriteString("; " + strings.Join(parts, ", "))
	}
	return b.String()
}

func liveLine(l *LiveInfo) string {
	var b strings.Builder
	switch {
	case l.Passive:
		b.WriteString("passive: the endpoints' own traffic")
	case l.Size > 0 && l.Size != 56:
		fmt.Fprintf(&b, "probes: %d requested (%d-byte payload), %d sent, %d answered", l.Probes, l.Size, l.Sent, l.Replies)
	default:
		fmt.Fprintf(&b, "probes: %d requested, %d sent, %d answered", l.Probes, l.Sent, l.Replies)
	}
	if !l.Started.IsZero() && !l.Ended.IsZero() {
		fmt.Fprintf(&b, "; captured %s → %s UTC (%s)",
			l.Started.UTC().Format("2006-01-02 15:04:05.000000"),
			l.Ended.UTC().Format("15:04:05.000000"),
			l.Ended.Sub(l.Started).Round(time.Microsecond))
	}
	if l.Interrupted {
		b.WriteString("; INTERRUPTED")
	}
	return b.String()
}

func drops(v correlate.OptUint) string { return optUint(v) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// masterCell is the bridge a port belongs to, marked "hairpin" when the port
// has hairpin mode on: that explains reflections.
func masterCell(p discover.Point) string {
	m := p.Master
	if m == "" {
		m = "-"
	}
	if p.Hairpin != nil && *p.Hairpin {
		m += " hairpin"
	}
	return m
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func traceRefs(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = "#" + strconv.Itoa(n)
	}
	return strings.Join(parts, " ")
}

// latencyCells formats a hop-latency row; "≈" marks percentiles from the
// histogram rather than exact samples.
func latencyCells(h correlate.HopStat) []string {
	approx := ""
	if !h.Exact {
		approx = "≈"
	}
	return []string{h.From + " → " + h.To, strconv.Itoa(h.Count),
		micros(h.MinNs), approx + micros(h.P50Ns), approx + micros(h.P99Ns), micros(h.MaxNs)}
}

var latencyHeader = []string{"FROM → TO", "COUNT", "MIN µs", "P50 µs", "P99 µs", "MAX µs"}

func anomalyCells(a correlate.Anomaly) []string {
	return []string{a.Kind.String(), a.Severity.String(), orDash(a.Point), strconv.Itoa(a.Count), traceRefs(a.Traces), a.Message}
}

var anomalyHeader = []string{"KIND", "SEVERITY", "POINT", "COUNT", "TRACES", "MESSAGE"}

func pathCells(p discover.Point) []string {
	return []string{p.Name, p.Netns, p.Interface, strconv.Itoa(p.IfIndex), orDash(p.MAC.String()),
		strconv.Itoa(p.MTU), masterCell(p), orDash(p.Peer), yesNo(p.Promisc)}
}

var pathHeader = []string{"POINT", "NETNS", "INTERFACE", "IFIDX", "MAC", "MTU", "MASTER", "PEER", "PROMISC"}

func fdbCells(o owners, e discover.FDBEntry) []string {
	mac := e.MAC.String()
	if e.Owner != "" {
		mac += " (" + e.Owner + ")"
	} else {
		mac = o.full(mac)
	}
	return []string{e.Bridge, mac, e.Port, yesNo(e.Local)}
}

var fdbHeader = []string{"BRIDGE", "MAC", "PORT", "LOCAL"}

// pointMACs lists the source MACs seen at a point, annotated with owners.
func pointMACs(o owners, p correlate.PointRep) []string {
	out := make([]string, 0, len(p.MACs))
	for _, m := range p.MACs {
		who := m.Owner
		if who == "" {
			who = o[m.MAC.String()]
		}
		s := m.MAC.String()
		if who != "" {
			s += " (" + who + ")"
		}
		out = append(out, s)
	}
	return out
}

var pointHeader = []string{"POINT", "INTERFACE", "MACS SEEN", "COVERAGE", "FRAMES", "DROPS", "TRUNC"}

// pointCells is a point's row of the Points table (times of day, UTC);
// macs renders the MACS SEEN cell.
func pointCells(o owners, p correlate.PointRep, macs func(owners, correlate.PointRep) string) []string {
	cov := "-"
	if c := p.Coverage; c.First != nil && c.Last != nil {
		cov = clock(*c.First, 6) + "–" + clock(*c.Last, 6)
	}
	if p.Coverage.Cut != "" {
		cov += " cut" // the file ends early: the verdict says where
	}
	return []string{p.Name, ifaceCell(p), macs(o, p), cov,
		fmt.Sprint(p.Coverage.Frames), drops(p.Coverage.KernelDrops), fmt.Sprint(p.Coverage.Truncated)}
}

func ifaceCell(p correlate.PointRep) string {
	if !p.Interface.Valid {
		return "-"
	}
	return p.Interface.V
}

// coverageDate is the UTC day of the first capture stamp, so times of day
// in the tables are unambiguous.
func coverageDate(r *correlate.Result) string {
	for _, p := range r.Points {
		if p.Coverage.First != nil {
			return time.Unix(0, int64(*p.Coverage.First)).UTC().Format("2006-01-02")
		}
	}
	return ""
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
