package report

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// The default table view: one line per point and one matrix row per trace,
// so a run of a few probes reads in one screen. Options.Detail keeps the
// row-per-hop view (table.go) for when the MACs and TTL of every hop matter.

// pathCompact is the discovered path without the blank lines and headed
// sub-tables of the detail view: the FDB is one line per bridge.
func (t *textWriter) pathCompact(d Document) {
	p := d.Path
	t.line("Discovered path  %s", pathEnds(p))
	rows := make([][]string, len(p.Points))
	for i, pt := range p.Points {
		rows[i] = pathCells(pt)
	}
	t.table(pathHeader, rows, 3, 5)
	for _, l := range fdbLines(t.own, p.FDB) {
		t.wrapped(l, " ", "   ")
	}
	for _, n := range p.Notes {
		t.wrapped("note: "+n, "", "  ")
	}
	if d.Live != nil {
		t.line("%s", liveLine(d.Live))
	}
}

// fdbLines groups the forwarding entries by bridge: "fdb cni0: MAC (owner)
// on port; …", the order discovery listed them in.
func fdbLines(o owners, fdb []discover.FDBEntry) []string {
	var bridges []string
	per := map[string][]string{}
	for _, e := range fdb {
		mac := fdbCells(o, e)[1]
		s := mac + " on " + orDash(e.Port)
		if e.Local {
			s += " (local)"
		}
		if _, ok := per[e.Bridge]; !ok {
			bridges = append(bridges, e.Bridge)
		}
		per[e.Bridge] = append(per[e.Bridge], s)
	}
	out := make([]string, len(bridges))
	for i, b := range bridges {
		out[i] = "fdb " + b + ": " + strings.Join(per[b], "; ")
	}
	return out
}

// wrapped writes s at word boundaries within the width hint: the first line
// after first, the rest after cont.
func (t *textWriter) wrapped(s, first, cont string) {
	lines := wrapWords(s, t.o.width()-utf8.RuneCountInString(cont))
	for i, l := range lines {
		if i == 0 {
			t.line("%s%s", first, l)
		} else {
			t.line("%s%s", cont, l)
		}
	}
}

func (t *textWriter) evidenceCompact(files []string) {
	dir := filepath.Dir(files[0])
	names := make([]string, len(files))
	for i, f := range files {
		if filepath.Dir(f) != dir {
			t.wrapped("Evidence written: "+strings.Join(files, ", "), "", "  ")
			return
		}
		names[i] = filepath.Base(f)
	}
	t.wrapped("Evidence written to "+dir+"/: "+strings.Join(names, ", "), "", "  ")
}

// macSenders is "pod1 eth0, pod2 eth0": the short owner of each source MAC
// seen at a point, the MAC itself when nobody is known to own it, and at
// most three before "+N more".
func macSenders(o owners, p correlate.PointRep) string {
	var items []string
	seen := map[string]bool{}
	for _, m := range p.MACs {
		// The merged owners first: discovery read the kernel.
		who := o[m.MAC.String()]
		if who == "" {
			who = m.Owner
		}
		s := m.MAC.String()
		if who != "" {
			s = short(who)
		}
		if !seen[s] {
			seen[s] = true
			items = append(items, s)
		}
	}
	if len(items) == 0 {
		return "-"
	}
	if len(items) > 3 {
		items = append(items[:3], fmt.Sprintf("+%d more", len(items)-3))
	}
	return strings.Join(items, ", ")
}

// trFlag is one finding in a trace row's last column, in a long form
// ("hairpin refl @pod1-veth,pod1") and a short one ("refl ×2") used when
// the long forms do not fit the width.
type trFlag struct{ long, short string }

// matrixRow is one trace of the timeline. cells are per column (point in
// path order) and depend on the decimals the layout settled on.
type matrixRow struct {
	tr     *correlate.Trace
	num    string
	label  string
	arrow  string
	flags  []trFlag
	cols   []int // column of each hop, -1 for reflections and repeats
	extras []int // hops at a point that already has a cell
}

// timeline writes the trace matrix: a column per point in path order, a row
// per trace with the Δ from the previous hop in crossing order at each point
// the frame crossed, and a marker where it did not (gap, LOST, ·).
func (t *textWriter) timeline(d Document) {
	r := d.Result
	list, more := shown(r, t.o.Limit)
	names, colOf := matrixColumns(r, list)
	pair, hasPair := mainPair(d)

	title := fmt.Sprintf("Traces (%d)", len(r.Traces))
	if more > 0 {
		title = fmt.Sprintf("Traces (%d of %d)", len(list), len(r.Traces))
	}
	if len(list) == 0 {
		t.line("%s", title)
		t.line("  none")
		return
	}
	var parts []string
	if hasPair {
		parts = append(parts, pair[0].String()+" ⇄ "+pair[1].String()+" unless labelled")
	}
	parts = append(parts, "Δ µs from the previous point crossed; → forward, ← reverse")
	for _, p := range parts {
		if utf8.RuneCountInString(title)+2+utf8.RuneCountInString(p) <= t.o.width() {
			title += "; " + p
		}
	}
	t.line("%s", strings.Replace(title, "; ", ": ", 1))

	rows := make([]matrixRow, len(list))
	for i := range list {
		tr := &list[i]
		row := matrixRow{tr: tr, num: "#" + strconv.Itoa(tr.N), label: traceLabel(tr, pair, hasPair),
			arrow: "→", flags: traceFlags(tr)}
		if tr.Direction == correlate.Reverse {
			row.arrow = "←"
		}
		row.cols = make([]int, len(tr.Hops))
		used := make([]bool, len(names))
		for j := range tr.Hops {
			h := &tr.Hops[j]
			row.cols[j] = -1
			if h.Reflection {
				continue
			}
			c := colOf[h.Point]
			if used[c] {
				row.extras = append(row.extras, j)
				continue
			}
			used[c] = true
			row.cols[j] = c
		}
		rows[i] = row
	}

	lay := fitMatrix(names, rows, t.o.width())
	t.line("%s", strings.TrimRight(lay.header(), " "))
	shownNotes := map[string]bool{}
	macPairs := map[string]bool{}
	indent := strings.Repeat(" ", 1+lay.numW+lay.sep)
	for i := range rows {
		line, overflow := lay.row(&rows[i])
		t.line("%s", strings.TrimRight(line, " "))
		var notes []string
		if lay.label(&rows[i]) != rows[i].label {
			notes = append(notes, rows[i].label)
		}
		for _, n := range t.matrixNotes(&rows[i], overflow, macPairs, lay.dec) {
			// Said once is enough: the cells of later rows show the same.
			if !shownNotes[n] {
				shownNotes[n] = true
				notes = append(notes, n)
			}
		}
		for _, n := range wrapNotes(notes, t.o.width()-len(indent)-2) {
			t.wrapped(n, indent+"↳ ", indent+"  ")
		}
	}
	if more > 0 {
		t.line("%s", moreLine(more))
	}
}

// matrixColumns is the points in path order, then any point a hop names
// that the result does not list, so no hop is left out.
func matrixColumns(r *correlate.Result, list []correlate.Trace) ([]string, map[string]int) {
	var names []string
	colOf := map[string]int{}
	add := func(n string) {
		if _, ok := colOf[n]; !ok {
			colOf[n] = len(names)
			names = append(names, n)
		}
	}
	for _, p := range r.Points {
		add(p.Name)
	}
	for i := range list {
		for _, h := range list[i].Hops {
			add(h.Point)
		}
	}
	return names, colOf
}

// mainPair is the two addresses most traces are between: the endpoints of
// a live run, else the commonest pair among the traces that carry IPs.
// Labels leave it out, which keeps them short.
func mainPair(d Document) ([2]netip.Addr, bool) {
	if p := d.Path; p != nil && p.Src.IP.IsValid() && p.Dst.IP.IsValid() {
		return [2]netip.Addr{p.Src.IP, p.Dst.IP}, true
	}
	count := map[[2]netip.Addr]int{}
	var best [2]netip.Addr
	n := 0
	for i := range d.Result.Traces {
		tr := &d.Result.Traces[i]
		if neighbour(tr) || !tr.SrcIP.V.IsValid() || !tr.DstIP.V.IsValid() {
			continue
		}
		k := [2]netip.Addr{tr.SrcIP.V, tr.DstIP.V}
		if k[1].Less(k[0]) {
			k[0], k[1] = k[1], k[0]
		}
		count[k]++
		if count[k] > n {
			best, n = k, count[k]
		}
	}
	if n == 0 {
		return best, false
	}
	// Show the pair the way the first such trace went.
	for i := range d.Result.Traces {
		tr := &d.Result.Traces[i]
		if !neighbour(tr) && tr.SrcIP.V == best[1] && tr.DstIP.V == best[0] {
			return [2]netip.Addr{best[1], best[0]}, true
		}
		if !neighbour(tr) && tr.SrcIP.V == best[0] && tr.DstIP.V == best[1] {
			break
		}
	}
	return best, true
}

// traceLabel is "arp request .2→.3", "icmp echo-request seq=1": protocol,
// type, sequence, and the addresses when they say something the title does
// not (ARP asks about an address; other traces off the main pair).
func traceLabel(tr *correlate.Trace, pair [2]netip.Addr, hasPair bool) string {
	var b strings.Builder
	b.WriteString(tr.Protocol.String())
	if typ := strings.TrimPrefix(tr.Type, tr.Protocol.String()+"-"); typ != "" {
		b.WriteString(" " + typ)
	}
	if tr.Seq.Valid && (tr.Protocol == correlate.ProtoICMP || tr.Protocol == correlate.ProtoICMPv6) {
		fmt.Fprintf(&b, " seq=%d", tr.Seq.V)
	}
	src, dst := tr.SrcIP.V, tr.DstIP.V
	onPair := hasPair && ((src == pair[0] && dst == pair[1]) || (src == pair[1] && dst == pair[0]))
	if (src.IsValid() || dst.IsValid()) && (neighbour(tr) || !onPair || tr.SrcPort.Valid) {
		s, d := shortPair(src, dst)
		if tr.SrcPort.Valid {
			s += ":" + strconv.FormatUint(tr.SrcPort.V, 10)
		}
		if tr.DstPort.Valid {
			d += ":" + strconv.FormatUint(tr.DstPort.V, 10)
		}
		b.WriteString(" " + s + "→" + d)
	}
	return b.String()
}

// neighbour reports ARP and IPv6 neighbour discovery: they ask about an
// address, so their labels always show the addresses.
func neighbour(tr *correlate.Trace) bool { return tr.Protocol == correlate.ProtoARP || tr.Protocol == correlate.ProtoND }

// shortPair drops the prefix two addresses share: ".2"/".3" within a /24,
// ".1.2"/".2.2" within a /16, "::2"/"::3" within an IPv6 /64; else both in
// full.
func shortPair(a, b netip.Addr) (string, string) {
	full := func(x netip.Addr) string {
		if !x.IsValid() {
			return "?"
		}
		return x.String()
	}
	if !a.IsValid() || !b.IsValid() || a.Is4() != b.Is4() {
		return full(a), full(b)
	}
	if a.Is4() {
		x, y := a.As4(), b.As4()
		for keep := 1; keep <= 2; keep++ {
			if string(x[:4-keep]) == string(y[:4-keep]) {
				return v4tail(x, keep), v4tail(y, keep)
			}
		}
		return full(a), full(b)
	}
	x, y := a.As16(), b.As16()
	if a.Zone() == b.Zone() && [8]byte(x[:8]) == [8]byte(y[:8]) {
		return v6tail(x), v6tail(y)
	}
	return full(a), full(b)
}

func v4tail(a [4]byte, n int) string {
	var b strings.Builder
	for _, v := range a[4-n:] {
		b.WriteString("." + strconv.Itoa(int(v)))
	}
	return b.String()
}

// v6tail is the interface identifier as "::…" in the usual hex groups.
func v6tail(a [16]byte) string {
	var groups []string
	for i := 8; i < 16; i += 2 {
		g := uint16(a[i])<<8 | uint16(a[i+1])
		if len(groups) == 0 && g == 0 && i < 14 {
			continue
		}
		groups = append(groups, strconv.FormatUint(uint64(g), 16))
	}
	return "::" + strings.Join(groups, ":")
}

// traceFlags are the findings the matrix cells do not already show: loss,
// gaps and negative deltas are visible in the cells, so they have no flag.
func traceFlags(tr *correlate.Trace) []trFlag {
	var f []trFlag
	var refl []string
	n := 0
	for _, h := range tr.Hops {
		if h.Reflection {
			n++
			if !containsStr(refl, h.Point) {
				refl = append(refl, h.Point)
			}
		}
	}
	if n > 0 {
		s := "refl"
		if n > 1 {
			s = fmt.Sprintf("refl ×%d", n)
		}
		kind := "refl"
		switch group, known := groupDst(tr); {
		case known && group:
			kind = "hairpin refl"
		case known:
			kind = "flood refl"
		}
		f = append(f, trFlag{kind + " @" + strings.Join(refl, ","), s})
	}
	for _, fl := range tr.Flags {
		switch fl {
		case correlate.FlagReflection, correlate.FlagLost, correlate.FlagGap, correlate.FlagNegativeDelta:
		case correlate.FlagDuplicate:
			f = append(f, trFlag{"dup", "dup"})
		case correlate.FlagFragment:
			f = append(f, trFlag{"frag", "frag"})
		case correlate.FlagOverMTU:
			f = append(f, trFlag{">mtu", ">mtu"})
		default:
			f = append(f, trFlag{fl.String(), fl.String()})
		}
	}
	if len(tr.Rewrites) > 0 {
		var kinds, at []string
		for _, rw := range tr.Rewrites {
			k := rewriteKind(rw.Field)
			if !containsStr(kinds, k) {
				kinds = append(kinds, k)
			}
			if !containsStr(at, rw.Point) {
				at = append(at, rw.Point)
			}
		}
		f = append(f, trFlag{strings.Join(kinds, "/") + " rewrite @" + strings.Join(at, ","), "rewrite"})
	}
	if tr.RTT != nil {
		s := "rtt " + micros1(tr.RTT.TotalNs)
		f = append(f, trFlag{s, s})
	}
	return f
}

// groupDst reports whether the trace's destination MAC is a broadcast or
// multicast address (a flood, so a reflection is hairpin mode doing its
// job), and whether any hop recorded it at all.
func groupDst(tr *correlate.Trace) (group, known bool) {
	for _, h := range tr.Hops {
		if h.DstMAC.Valid {
			return h.DstMAC.V[0]&1 == 1, true
		}
	}
	return false, false
}

func rewriteKind(field correlate.Field) string {
	switch field {
	case correlate.FieldSrcMAC, correlate.FieldDstMAC:
		return "MAC"
	case correlate.FieldTTL:
		return "TTL"
	case correlate.FieldSrcIP, correlate.FieldDstIP, correlate.FieldSrcPort, correlate.FieldDstPort:
		return "NAT"
	}
	return field.String()
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// matrixNotes are the lines under a trace row, only what the row cannot
// say: where it was lost or unseen, rewrites and MAC pairs the first time
// they appear, repeated sightings, and flags that did not fit.
func (t *textWriter) matrixNotes(row *matrixRow, overflow []string, macPairs map[string]bool, dec int) []string {
	tr := row.tr
	var n []string
	if tr.LostAfter != "" {
		n = append(n, "lost after "+tr.LostAfter)
	}
	if len(tr.Missing) > 0 {
		n = append(n, "missing: "+strings.Join(tr.Missing, ", "))
	}
	src, dst, ok := firstMACs(tr)
	pair := src + ">" + dst
	for _, rn := range rewriteNotes(t.own, tr.Rewrites) {
		n = append(n, rn)
		if strings.HasPrefix(rn, "MAC rewritten") && ok {
			// The rewrite names the MACs the frame started with.
			macPairs[pair] = true
		}
	}
	if ok && !macPairs[pair] {
		macPairs[pair] = true
		n = append(n, "MACs "+macName(t.own, src)+" → "+macName(t.own, dst))
	}
	for _, j := range row.extras {
		h := &tr.Hops[j]
		n = append(n, fmt.Sprintf("seen again at %s %s", h.Point, signedMicros(h.DeltaNs, dec)))
	}
	if len(overflow) > 0 {
		n = append(n, strings.Join(overflow, ", "))
	}
	return n
}

// firstMACs is the source and destination MAC the frame started with: the
// first hop that recorded each (SLL2 captures have no destination MAC).
func firstMACs(tr *correlate.Trace) (src, dst string, ok bool) {
	for _, h := range tr.Hops {
		if src == "" && h.SrcMAC.Valid {
			src = h.SrcMAC.V.String()
		}
		if dst == "" && h.DstMAC.Valid {
			dst = h.DstMAC.V.String()
		}
	}
	if src == "" && dst == "" {
		return "", "", false
	}
	if src == "" {
		src = "?"
	}
	if dst == "" {
		dst = "?"
	}
	return src, dst, true
}

func macName(o owners, mac string) string {
	if mac == "ff:ff:ff:ff:ff:ff" && o[mac] == "" {
		return mac + " (broadcast)"
	}
	return o.label(mac)
}

// fmtMicros is ns in µs with dec decimals (3, 1 or 0), rounded half away
// from zero; 3 decimals is exact.
func fmtMicros(ns int64, dec int) string {
	if dec >= 3 {
		return micros(ns)
	}
	sign := ""
	if ns < 0 {
		sign = "-"
		ns = -ns
	}
	if dec == 1 {
		tenths := (ns + 50) / 100
		return fmt.Sprintf("%s%d.%d", sign, tenths/10, tenths%10)
	}
	return fmt.Sprintf("%s%d", sign, (ns+500)/1000)
}

func signedMicros(ns int64, dec int) string {
	if ns >= 0 {
		return "+" + fmtMicros(ns, dec)
	}
	return fmtMicros(ns, dec)
}

// matrixLayout is how the matrix fits the width: separators, decimals,
// header cap, stamp digits and label width, and the column widths that
// follow from them.
type matrixLayout struct {
	names       []string
	rows        []matrixRow
	sep         int // between the columns left of the points
	psep        int // before each point column, TOTAL and FLAGS
	dec         int
	headerCap   int // 0 = point names in full
	stampDigits int
	labelMax    int // 0 = no limit

	numW, labelW, stampW, totalW int
	pointW                       []int
	width                        int
	anyFlags                     bool
}

// fitMatrix tries ever tighter layouts, losing air first, then header
// letters, then precision, until the columns up to TOTAL leave room for the
// flags. The last one is used even if it does not fit: a trace row is never
// wrapped.
func fitMatrix(names []string, rows []matrixRow, width int) *matrixLayout {
	type knobs struct {
		sep, psep, dec, stamp int
		trunc                 bool
		minLabel              int // 0: labels whole
	}
	// minLabel keeps "icmp echo-request seq=1" whole until the last try.
	const minLabel = 23
	tries := []knobs{
		{2, 2, 3, 9, false, 0},
		{2, 1, 3, 9, false, 0},
		{1, 1, 3, 9, false, 0},
		{1, 1, 3, 9, false, minLabel},
		{1, 1, 3, 9, true, minLabel},
		{1, 1, 1, 9, true, minLabel},
		{1, 1, 0, 9, true, minLabel},
		{1, 1, 0, 6, true, minLabel},
		{1, 1, 0, 6, true, 8},
	}
	longest := 0
	for _, n := range names {
		longest = max(longest, utf8.RuneCountInString(n))
	}
	l := &matrixLayout{names: names, rows: rows, width: width}
	fits := func() bool {
		l.measure()
		return l.fixed()+l.flagRoom() <= width
	}
	for _, k := range tries {
		l.sep, l.psep, l.dec, l.stampDigits, l.headerCap, l.labelMax = k.sep, k.psep, k.dec, k.stamp, 0, 0
		if k.minLabel > 0 {
			// A long label (addresses off the main pair) is cut; the
			// row's notes spell it out.
			l.measure()
			over := l.fixed() + l.flagRoom() - width
			l.labelMax = max(k.minLabel, l.labelW-max(over, 0))
		}
		if fits() {
			return l
		}
		if k.trunc {
			// Cap every name at the same length, as long as fits.
			for c := longest - 1; c >= 3; c-- {
				if l.headerCap = c; fits() {
					return l
				}
			}
		}
	}
	return l
}

// flagRoom is what the flags column needs at least: its separator and the
// longest short form, up to 20 columns (rows with more put the rest in a
// note).
func (l *matrixLayout) flagRoom() int {
	need := 0
	for i := range l.rows {
		w := 0
		for k, f := range l.rows[i].flags {
			if k > 0 {
				w += 2
			}
			w += utf8.RuneCountInString(f.short)
		}
		need = max(need, w)
	}
	if need == 0 {
		return 0
	}
	return l.psep + max(len("FLAGS"), min(need, 20))
}

func (l *matrixLayout) measure() {
	l.numW, l.labelW, l.totalW = 1, len("TRACE"), len("TOTAL")
	l.stampW = 9 + l.stampDigits
	l.pointW = make([]int, len(l.names))
	l.anyFlags = false
	for i := range l.rows {
		r := &l.rows[i]
		l.numW = max(l.numW, len(r.num))
		l.labelW = max(l.labelW, utf8.RuneCountInString(r.label))
		cells, total := l.cells(r)
		for c, s := range cells {
			l.pointW[c] = max(l.pointW[c], utf8.RuneCountInString(s))
		}
		l.totalW = max(l.totalW, len(total))
		if len(r.flags) > 0 {
			l.anyFlags = true
		}
	}
	if l.labelMax > 0 {
		l.labelW = len("TRACE")
		for i := range l.rows {
			l.labelW = max(l.labelW, utf8.RuneCountInString(cutLabel(l.rows[i].label, l.labelMax)))
		}
	}
	for c, n := range l.names {
		hw := utf8.RuneCountInString(n)
		if l.headerCap > 0 {
			hw = min(hw, l.headerCap)
		}
		l.pointW[c] = max(l.pointW[c], hw)
	}
}

// fixed is the width of a row up to and including TOTAL.
func (l *matrixLayout) fixed() int {
	w := 1 + l.numW + l.sep + l.labelW + l.sep + 1 + l.sep + l.stampW
	for _, pw := range l.pointW {
		w += l.psep + pw
	}
	return w + l.psep + l.totalW
}

// cells is a row's per-point text: the Δ at points it crossed ("0" at the
// first), LOST at the first point after where it was last seen on its
// way, gap at points it crossed unseen, · elsewhere; and the total.
func (l *matrixLayout) cells(r *matrixRow) ([]string, string) {
	tr := r.tr
	cells := make([]string, len(l.names))
	last := 0
	for j, c := range r.cols {
		if c < 0 {
			continue
		}
		last = j
		if j == 0 {
			cells[c] = "0"
		} else {
			cells[c] = signedMicros(tr.Hops[j].DeltaNs, l.dec)
		}
	}
	if tr.LostAfter != "" {
		step := 1
		if tr.Direction == correlate.Reverse {
			step = -1
		}
		for c, n := range l.names {
			if n == tr.LostAfter {
				if nc := c + step; nc >= 0 && nc < len(cells) && cells[nc] == "" {
					cells[nc] = "LOST"
				}
				break
			}
		}
	}
	for c, n := range l.names {
		if cells[c] == "" && containsStr(tr.Missing, n) {
			cells[c] = "gap"
		}
		if cells[c] == "" {
			cells[c] = "·"
		}
	}
	total := "-"
	if len(tr.Hops) > 0 {
		total = fmtMicros(int64(tr.Hops[last].Time-tr.Hops[0].Time), l.dec)
	}
	return cells, total
}

// headers are the point names cut to their columns. Names that a cut makes
// identical ("node-any:if2", "node-any:if3") keep their ends instead, which
// is where they differ.
func (l *matrixLayout) headers() []string {
	out := make([]string, len(l.names))
	count := map[string]int{}
	for c, n := range l.names {
		out[c] = truncRunes(n, l.pointW[c])
		count[out[c]]++
	}
	mid := map[string]int{}
	for c, n := range l.names {
		if count[out[c]] > 1 && out[c] != n {
			mid[truncMiddle(n, l.pointW[c])]++
		}
	}
	for c, n := range l.names {
		if m := truncMiddle(n, l.pointW[c]); count[out[c]] > 1 && out[c] != n && mid[m] == 1 {
			out[c] = m
		}
	}
	return out
}

func (l *matrixLayout) header() string {
	var b strings.Builder
	b.WriteString(" " + pad("#", l.numW, false) + l.gap() + pad("TRACE", l.labelW, false) + l.gap() + " " + l.gap() +
		pad("START (UTC)", l.stampW, false))
	for c, h := range l.headers() {
		b.WriteString(l.pgap() + pad(h, l.pointW[c], true))
	}
	b.WriteString(l.pgap() + pad("TOTAL", l.totalW, true))
	if l.anyFlags {
		b.WriteString(l.pgap() + "FLAGS")
	}
	return b.String()
}

// row renders one trace and returns the flags that did not fit, in their
// long form, for a note.
func (l *matrixLayout) row(r *matrixRow) (string, []string) {
	var b strings.Builder
	stamp := "-"
	if len(r.tr.Hops) > 0 {
		stamp = clock(r.tr.Hops[0].Time, l.stampDigits)
	}
	b.WriteString(" " + pad(r.num, l.numW, false) + l.gap() + pad(l.label(r), l.labelW, false) +
		l.gap() + r.arrow + l.gap() + pad(stamp, l.stampW, false))
	cells, total := l.cells(r)
	for c, s := range cells {
		b.WriteString(l.pgap() + pad(s, l.pointW[c], true))
	}
	b.WriteString(l.pgap() + pad(total, l.totalW, true))
	if len(r.flags) == 0 {
		return b.String(), nil
	}
	room := l.width - utf8.RuneCountInString(b.String()) - l.psep
	text, rest := fitFlags(r.flags, room)
	if text != "" {
		b.WriteString(l.pgap() + text)
	}
	return b.String(), rest
}

// fitFlags joins the long forms if they fit room, else the short forms,
// else as many short forms as fit; the rest come back in long form.
func fitFlags(fs []trFlag, room int) (string, []string) {
	join := func(long bool, n int) string {
		parts := make([]string, n)
		for i := range n {
			if long {
				parts[i] = fs[i].long
			} else {
				parts[i] = fs[i].short
			}
		}
		return strings.Join(parts, ", ")
	}
	if s := join(true, len(fs)); utf8.RuneCountInString(s) <= room {
		return s, nil
	}
	for n := len(fs); n > 0; n-- {
		if s := join(false, n); utf8.RuneCountInString(s) <= room {
			var rest []string
			for _, f := range fs[n:] {
				rest = append(rest, f.long)
			}
			return s, rest
		}
	}
	rest := make([]string, len(fs))
	for i, f := range fs {
		rest[i] = f.long
	}
	return "", rest
}

// label is the row's label as the layout shows it.
func (l *matrixLayout) label(r *matrixRow) string {
	if l.labelMax > 0 {
		return cutLabel(r.label, l.labelMax)
	}
	return r.label
}

func (l *matrixLayout) gap() string  { return strings.Repeat(" ", l.sep) }
func (l *matrixLayout) pgap() string { return strings.Repeat(" ", l.psep) }

func pad(s string, w int, right bool) string {
	n := w - utf8.RuneCountInString(s)
	if n <= 0 {
		return s
	}
	if right {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

// truncRunes cuts s to w runes, the last one "…", so a long point name
// still hints at which point the column is.
func truncRunes(s string, w int) string {
	if utf8.RuneCountInString(s) <= w {
		return s
	}
	if w <= 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:w-1]) + "…"
}

// truncMiddle cuts s to w runes around a "…", keeping more of the end.
func truncMiddle(s string, w int) string {
	r := []rune(s)
	if len(r) <= w {
		return s
	}
	if w <= 2 {
		return truncRunes(s, w)
	}
	head := (w - 1) / 2
	tail := w - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// cutLabel cuts a label to w runes at a word boundary, marked with "…".
func cutLabel(s string, w int) string {
	if utf8.RuneCountInString(s) <= w {
		return s
	}
	r := []rune(s)
	for i := w - 2; i > 0; i-- {
		if r[i] == ' ' {
			return string(r[:i]) + " …"
		}
	}
	return truncRunes(s, w)
}

// mergeAnomalies folds anomalies that differ only by point (a hairpin
// reflection seen at pod1-veth and at pod1) into one row: the message is
// the same, so one line says it.
func mergeAnomalies(as []correlate.Anomaly) []correlate.Anomaly {
	var out []correlate.Anomaly
	at := map[string]int{}
	for _, a := range as {
		k := a.Kind.String() + "\x00" + a.Severity.String() + "\x00" + a.Message + "\x00" + fmt.Sprint(a.Traces)
		if i, ok := at[k]; ok && a.Point != "" && out[i].Point != "" {
			out[i].Point += "," + a.Point
			out[i].Count += a.Count
			continue
		}
		at[k] = len(out)
		out = append(out, a)
	}
	return out
}
