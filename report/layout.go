package report

// The timeline's layout engine: column widths, decimals and which flags
// fit, so the matrix stays within the terminal width for any names.

import (
	"strings"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
)

// totalHeader heads the column of a trace's span, first to last point.
const totalHeader = "TOTAL µs"

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

// fitMatrix tries ever tighter layouts, losing air first, then the start
// stamp's ns or header letters, then both, then the Δs' precision, until
// the columns up to TOTAL leave room for the flags. The last one is used even if it does not fit: a trace row is never
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
		{1, 2, 3, 9, false, 0}, // numbers keep their air longest
		{2, 1, 3, 9, false, 0},
		{1, 1, 3, 9, false, 0},
		{1, 1, 3, 9, false, minLabel},
		{1, 1, 3, 6, false, minLabel}, // a µs start stamp rather than cut names
		{1, 1, 3, 9, true, minLabel},  // but if names must be cut anyway, ns
		{1, 1, 3, 6, true, minLabel},
		{1, 1, 1, 6, true, minLabel},
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
	l.numW, l.labelW, l.totalW = 1, len("TRACE"), utf8.RuneCountInString(totalHeader)
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
		total = fmtMicros(refTime(&tr.Hops[last])-refTime(&tr.Hops[0]), l.dec)
	}
	return cells, total
}

// headers are the point names as the columns show them: whole where they
// fit, else abbreviated (abbreviate), never two alike.
func (l *matrixLayout) headers() []string { return abbreviate(l.names, l.pointW) }

func (l *matrixLayout) header() string {
	var b strings.Builder
	b.WriteString(" " + pad("#", l.numW, false) + l.gap() + pad("TRACE", l.labelW, false) + l.gap() + " " + l.gap() +
		pad("START (UTC)", l.stampW, false))
	for c, h := range l.headers() {
		b.WriteString(l.pgap() + pad(h, l.pointW[c], true))
	}
	b.WriteString(l.pgap() + pad(totalHeader, l.totalW, true))
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
	text, rest := fitFlags(r.flags, l.flagWidth(), l.longFlags())
	if text != "" {
		b.WriteString(l.pgap() + text)
	}
	return b.String(), rest
}

// flagWidth is the room the FLAGS column has: every row is as wide up to
// TOTAL.
func (l *matrixLayout) flagWidth() int { return l.width - l.fixed() - l.psep }

// longFlags reports whether every row's flags fit in their long form: one
// form for the whole column, so a finding reads the same on every row.
func (l *matrixLayout) longFlags() bool {
	for i := range l.rows {
		n := 0
		for k, f := range l.rows[i].flags {
			n += utf8.RuneCountInString(f.long) + 2*min(k, 1)
		}
		if n > l.flagWidth() {
			return false
		}
	}
	return true
}

// fitFlags joins the long forms (when long) if they fit room, else the
// short forms, else as many short forms as fit; the rest come back in
// long form.
func fitFlags(fs []trFlag, room int, long bool) (string, []string) {
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
	if s := join(true, len(fs)); long && utf8.RuneCountInString(s) <= room {
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

func (l *matrixLayout) gap() string { return strings.Repeat(" ", l.sep) }

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
