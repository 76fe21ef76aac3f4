package report

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func renderMD(t *testing.T, d Document, o Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Markdown(&b, d, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The Markdown of the two real-capture scenarios a ticket most often
// holds: a drop (nft-drop) and a routed path with rewrites (routed).
func TestMarkdownGolden(t *testing.T) {
	for _, name := range []string{"nft-drop", "routed"} {
		t.Run(name, func(t *testing.T) {
			r := loadResult(t, "result_"+name+".json")
			out := renderMD(t, Document{Result: r, Tool: fixtureTool}, Options{})
			golden(t, "markdown_"+name+".golden", []byte(out))
			checkMarkdown(t, out)
		})
	}
}

// checkMarkdown: nothing but Markdown (no HTML tag, no <br>), and every
// table's raw text lines up: each row as wide as its header, each pipe
// under the header's pipes, numbers aligned right.
func checkMarkdown(t *testing.T, out string) {
	t.Helper()
	if regexp.MustCompile(`(^|[^\\])<[a-zA-Z/!]`).MatchString(out) {
		t.Errorf("markdown holds HTML:\n%s", out)
	}
	unescaped := regexp.MustCompile(`(^|[^\\])\|`)
	var header string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "|") {
			header = ""
			continue
		}
		if header == "" {
			header = l
			continue
		}
		if utf8.RuneCountInString(l) != utf8.RuneCountInString(header) {
			t.Errorf("row is %d columns wide, its header %d:\n%s\n%s", utf8.RuneCountInString(l), utf8.RuneCountInString(header), header, l)
		}
		pipes := func(s string) []int {
			var at []int
			for _, m := range unescaped.FindAllStringIndex(s, -1) {
				at = append(at, utf8.RuneCountInString(s[:m[1]]))
			}
			return at
		}
		if !slices.Equal(pipes(header), pipes(l)) {
			t.Errorf("pipes of a row not under its header's:\n%s\n%s", header, l)
		}
	}
}

// What a ticket needs, in the order it needs it: the verdict first, the
// path, one row per trace with lost rows marked and numbers right-aligned,
// a line saying what the limit left out, then hop latency and anomalies.
func TestMarkdown(t *testing.T) {
	out := renderMD(t, live(), Options{Limit: 5})
	checkMarkdown(t, out)
	if want := "## Verdict: " + fixtureResult().Summary.Verdict + "\n"; !strings.HasPrefix(out, want) {
		t.Errorf("does not start with the verdict %q:\n%.300s", want, out)
	}
	pos := 0
	for _, h := range []string{"## Path", "## Traces (5 of 7)", "## Hop latency", "## Anomalies", "pathtrace v1.2.3"} {
		i := strings.Index(out, "\n"+h)
		if i <= pos {
			t.Errorf("%q missing or out of order", h)
		}
		pos = i
	}
	rows := 0
	for _, l := range strings.Split(out, "\n") {
		if regexp.MustCompile(`^\|\s+#\d+ \|`).MatchString(l) {
			rows++
		}
	}
	if rows != 5 {
		t.Errorf("%d trace rows, want one per shown trace (5)", rows)
	}
	for _, want := range []string{
		"|  #5 | icmp echo-request seq=2 | →   | 09:26:54.000300000 |       0 |   +11.900 | +11.104 |      LOST |     gap |   23.004 | lost after cni0, unseen at pod2-veth, pod2 |",
		"| --: | ----------------------- | --- | ------------------ | ------: |",
		"- 2 more traces: --limit 0 shows all (the JSON report has every one)\n",
		"| pod1-veth | node1 | veth9903a3d4 | 7a:3c:ee:40:51:02 | 1450 | cni0 hairpin | no      |     10 |     0 |     0 |",
		"- probes: 3 requested, 3 sent, 1 answered;",
		"| From → to        | Count | Min µs | P50 µs |  P99 µs | Max µs |",
		"rtt 85.3 µs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	// 20 traces in 20 rows: a ticket, not a page per trace.
	r := fixtureResult()
	for len(r.Traces) < 40 {
		tr := r.Traces[2].Clone()
		tr.N = len(r.Traces) + 1
		r.Traces = append(r.Traces, tr)
	}
	r.Summary.Traces = len(r.Traces)
	big := renderMD(t, Document{Result: r, Path: fixturePath(), Live: fixtureLive()}, Options{Limit: 20})
	if n := strings.Count(big, "\n"); n > 90 {
		t.Errorf("20 traces take %d lines, want ≤ 90", n)
	}
	if !strings.Contains(big, "## Traces (20 of 40)") || !strings.Contains(big, "- 20 more traces: --limit 0 shows all") {
		t.Errorf("limit not said:\n%s", big)
	}
}

func TestMarkdownEscapes(t *testing.T) {
	r := fixtureResult()
	r.Anomalies[0].Message = "a|b <c>\nd *e* _f_ g_h"
	out := renderMD(t, Document{Result: r}, Options{})
	if !strings.Contains(out, `a\|b \<c\>, d \*e\* \_f\_ g_h`) {
		t.Errorf("cell not escaped:\n%s", out)
	}
	checkMarkdown(t, out)
}

// A live run between containers: namespace names of 40 characters and
// more. The traces table abbreviates them, every header differs, and the
// legend under it spells them out.
func TestMarkdownLongNames(t *testing.T) {
	d := containerDoc()
	out := renderMD(t, d, Options{})
	checkMarkdown(t, out)
	header := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "|   # | Trace") {
			header = l
		}
	}
	cells := strings.Split(header, "|")
	seen := map[string]bool{}
	for _, c := range cells[5 : len(cells)-3] {
		c = strings.TrimSpace(c)
		if seen[c] || utf8.RuneCountInString(c) > mdHeaderCap {
			t.Errorf("header %q repeated or longer than %d: %s", c, mdHeaderCap, header)
		}
		seen[c] = true
	}
	for _, p := range d.Result.Points {
		if len(p.Name) > mdHeaderCap && !strings.Contains(out, " = "+p.Name) {
			t.Errorf("legend does not spell out %s", p.Name)
		}
	}
}

// sentenceCase: one header style in every Markdown table.
func TestSentence(t *testing.T) {
	got := sentence([]string{"FROM → TO", "MIN µs", "KIND"})
	if strings.Join(got, "|") != "From → to|Min µs|Kind" {
		t.Errorf("sentence = %q", got)
	}
}
