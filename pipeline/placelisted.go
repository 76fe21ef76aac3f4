package pipeline

import (
	"fmt"
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// placeListed puts the points of files listed one by one in the order their
// traffic follows, where the clock pre-pass found that it clearly is not
// the listed one (correlate.OrderAdvice: ≥ 95% of the sampled hop pairs, 10
// points more than the listed order). A shell's `*.cap` lists files
// alphabetically (cni0.cap before pod1.cap), and analysed in that order
// every hop looks early or late: the clock estimates bend to match and the
// verdict blames clocks, or finds losses and gaps that are not there.
// Stamps order points only on one clock, so planClocks does not call it
// where the clocks may differ beyond what the sample can rule out: offsets
// declared, or an order the sample cannot tell on its stamps alone
// (OrderAdvice.Sure: one-way traffic, points no frame joins, a pair of
// points ordered both ways). The report says what was done and how to
// keep the listed order; the analysis still checks the placed order on
// its larger sample.
func placeListed(b *Bundle, a correlate.OrderAdvice) {
	was := b.names()
	pts := make([]Point, len(a.Order))
	for i, j := range a.Order {
		pts[i] = b.Points[j]
	}
	b.Points = pts
	now := b.names()
	b.Warnings = append(b.Warnings, fmt.Sprintf("points placed by the traffic: the files were listed as %s, but the stamps of the first %d traces seen at several points follow that order in %.0f%% of hop pairs and %s in %.0f%%, so they were analysed in that order (--order %s keeps the listed one)",
		strings.Join(was, ", "), a.Traces, 100*a.Given, strings.Join(now, ", "), 100*a.Best, strings.Join(was, ",")))
}
