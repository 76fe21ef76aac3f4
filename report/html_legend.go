package report

import (
	"html/template"
	"unicode/utf8"
)

// legendSVG explains the marks of the lane diagram and the scale inside a
// row. Its marks carry their own classes (k…), styled like the diagram's,
// so counting .lost or .tr on the page counts traces only.
func legendSVG(sc yScale, aggregated bool) template.HTML {
	var s svgW
	const h = 50.0
	s.open("svg", "legend", false, "width", laneWidth, "height", h, "viewBox", attr("0 0 "+num(laneWidth)+" "+num(h)), "role", attr("img"))
	s.title("Legend of the lane diagram")
	x, y := 8.0, 16.0
	item := func(cls string, icon func(x, y float64), label string) {
		w := 40 + float64(utf8.RuneCountInString(label))*6.3
		if x+w > laneWidth-190 {
			x, y = 8, y+22
		}
		s.open("g", cls, false)
		icon(x, y)
		s.close("g")
		s.text("lg", x+36, y+4, "", label)
		x += w + 14
	}
	seg := func(x, y float64) {
		s.el("polyline", "ln", "points", pointsAttr([][2]float64{{x, y - 4}, {x + 26, y + 4}}))
		s.el("polygon", "ah", "points", pointsAttr([][2]float64{{x + 28, y + 4.6}, {x + 19, y + 5.6}, {x + 21.5, y - 2}}))
	}
	item("kreq", seg, "request, or forward traffic")
	item("krep", seg, "reply, or reverse traffic")
	item("kreq", func(x, y float64) {
		s.el("line", "kstub", "x1", x, "y1", y-3, "x2", x+18, "y2", y+2)
		s.el("path", "klost", "d", attr("M"+num(x+18)+" "+num(y-3)+"l9 9m0 -9l-9 9"))
	}, "lost after its last point")
	item("kreq", func(x, y float64) {
		s.el("polyline", "ln", "points", pointsAttr([][2]float64{{x, y - 3}, {x + 28, y + 3}}))
		s.el("circle", "kgap", "cx", x+14, "cy", y, "r", 5.5)
	}, "not seen at a point it crossed")
	item("kreq", func(x, y float64) {
		s.el("line", "krf", "x1", x, "y1", y-3, "x2", x+22, "y2", y+3)
		s.el("polygon", "krefl", "points", pointsAttr([][2]float64{{x + 24, y - 2}, {x + 29, y + 3}, {x + 24, y + 8}, {x + 19, y + 3}}))
	}, "reflection (sent back out)")
	item("", func(x, y float64) { s.text("dt neg side", x, y+4, "", "-3.2") }, "stamped before the point before")
	if aggregated {
		item("kagg kreq", seg, "median of clean traces (p50 Δ)")
	}
	// The in-row scale: where 0, 10 µs, 100 µs... fall inside a row.
	rx := laneWidth - 150
	s.text("lg", rx-8, 18, "end", "in a row: time since")
	s.text("lg", rx-8, 32, "end", "the trace's first stamp")
	top := 8.0
	s.el("line", "kruler", "x1", rx, "y1", top, "x2", rx, "y2", top+bandH)
	last := -100.0
	for i, ns := range []int64{0, 10_000, 100_000, 1_000_000, 10_000_000} {
		f := sc.at(ns) - bandTop
		if i > 0 && f > bandH-0.01 {
			break // beyond the longest trace drawn
		}
		if f-last < 9 {
			continue // labels would touch
		}
		last = f
		s.el("line", "kruler", "x1", rx, "y1", top+f, "x2", rx+5, "y2", top+f)
		s.text("tk", rx+8, top+f+3.5, "", []string{"0", "10 µs", "100 µs", "1 ms", "10 ms"}[i])
	}
	if bandH-last >= 9 {
		s.el("line", "kruler", "x1", rx, "y1", top+bandH, "x2", rx+5, "y2", top+bandH)
		s.text("tk", rx+8, top+bandH+3.5, "", micros1(sc.span)+" µs")
	}
	s.close("svg")
	return s.html()
}
