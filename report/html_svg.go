package report

import (
	"html/template"
	"strconv"
	"strings"
)

// svgW builds inline SVG for the HTML report. The discipline that keeps a
// hostile capture (a point named "<script>", an interface named
// `" onload="`) harmless: attributes only ever get numbers and class names
// that are constants in this package; every string that came from a capture
// or from discovery goes through text or title, which escape it as element
// content. No attribute takes a URL (no href, no url(#marker)): arrowheads
// are drawn as polygons.
type svgW struct{ b strings.Builder }

// num formats a coordinate with one decimal, without a trailing ".0":
// enough for a screen and it keeps a thousand-trace page small.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	if s == "-0" {
		return "0"
	}
	return s
}

// open writes "<tag class=... k=v ...>" (or "/>" when selfClose); kv
// alternates attribute names and numbers.
func (s *svgW) open(tag, class string, selfClose bool, kv ...any) {
	s.b.WriteString("<" + tag)
	if class != "" {
		s.b.WriteString(` class="` + class + `"`)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		s.b.WriteString(" " + kv[i].(string) + `="`)
		switch v := kv[i+1].(type) {
		case float64:
			s.b.WriteString(num(v))
		case int:
			s.b.WriteString(strconv.Itoa(v))
		case attr:
			s.b.WriteString(string(v))
		default:
			panic("svg attribute must be a number or a constant attr")
		}
		s.b.WriteString(`"`)
	}
	if selfClose {
		s.b.WriteString("/>")
	} else {
		s.b.WriteString(">")
	}
}

// attr is an attribute value built here from numbers and constants only
// (points lists, path data, anchors) — never from capture strings.
type attr string

func (s *svgW) el(tag, class string, kv ...any) { s.open(tag, class, true, kv...) }
func (s *svgW) close(tag string)                { s.b.WriteString("</" + tag + ">") }
func (s *svgW) raw(m string)                    { s.b.WriteString(m) }

// text writes an escaped text element; anchor is "" (start), "middle" or "end".
func (s *svgW) text(class string, x, y float64, anchor string, content string) {
	if anchor != "" {
		s.open("text", class, false, "x", x, "y", y, "text-anchor", attr(anchor))
	} else {
		s.open("text", class, false, "x", x, "y", y)
	}
	s.b.WriteString(template.HTMLEscapeString(content))
	s.close("text")
}

// title is the tooltip of the enclosing element, escaped.
func (s *svgW) title(content string) {
	s.b.WriteString("<title>" + template.HTMLEscapeString(content) + "</title>")
}

// html is the finished markup for the page template.
func (s *svgW) html() template.HTML { return template.HTML(s.b.String()) }

// pointsAttr is a polyline's points list.
func pointsAttr(xy [][2]float64) attr {
	var b strings.Builder
	for i, p := range xy {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(num(p[0]) + "," + num(p[1]))
	}
	return attr(b.String())
}
