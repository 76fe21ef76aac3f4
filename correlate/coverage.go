package correlate

// coverage is what a point captured: its frames, their span and the
// source MACs among them.
type coverage struct {
	first, last int64    // on the reference clock: what loss is judged by
	stamps      [2]int64 // first and last as captured: what the report shows
	frames      int
	decoded     int
	truncated   int
	cutTo       int        // the longest frame cut to a snaplen, as captured
	esp, wg     int        // frames of encrypted tunnels, whose inner packets cannot be matched
	early       bool       // ended before the others: coverage stops at last
	cut         string     // why the source ended early, when it was cut short (CutShort)
	macs        []macCount // at most maxMACsSeen, most frequent first
}

// macCount is a source MAC and its frames at a point. A short slice kept
// roughly by frequency beats a map here: a point sees a handful of MACs and
// the first one or two match almost every frame.
type macCount struct {
	mac MAC
	n   int
}

const maxMACsSeen = 64

func (c *coverage) countMAC(m MAC) {
	for i := range c.macs {
		if c.macs[i].mac == m {
			c.macs[i].n++
			if i > 0 && c.macs[i].n > c.macs[i-1].n {
				c.macs[i], c.macs[i-1] = c.macs[i-1], c.macs[i]
			}
			return
		}
	}
	if len(c.macs) < maxMACsSeen {
		c.macs = append(c.macs, macCount{m, 1})
	}
}
