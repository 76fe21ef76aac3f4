package report

// The compact path and points sections of the default table view.

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// pathCompact is the discovered path without the blank lines and headed
// sub-tables of the detail view: the FDB is one line per bridge.
func (t *textWriter) pathCompact(d Document) {
	p := d.Path
	t.pathPoints(p)
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
