package correlate

import "strconv"

// rewrites appends the fields outside the key that changed from p to h.
func (e *Engine) rewrites(out *Trace, t *trace, p, h *hop) {
	// The point's name is looked up only for a rewrite: most hop pairs
	// have none.
	add := func(field Field, from, to string) {
		out.Rewrites = append(out.Rewrites, Rewrite{Point: e.cfg.Points[h.point].Name, Field: field, From: from, To: to})
	}
	if p.hasSrc && h.hasSrc && p.src != h.src {
		add(FieldSrcMAC, p.src.String(), h.src.String())
	}
	if p.hasDst && h.hasDst && p.dst != h.dst {
		add(FieldDstMAC, p.dst.String(), h.dst.String())
	}
	if p.hasTTL && h.hasTTL && p.ttl != h.ttl {
		add(FieldTTL, strconv.Itoa(int(p.ttl)), strconv.Itoa(int(h.ttl)))
	}
	if p.ips != h.ips { // the same pair otherwise
		a, b := &t.ips[p.ips], &t.ips[h.ips]
		if a.src.IsValid() && b.src.IsValid() && a.src != b.src {
			add(FieldSrcIP, a.src.String(), b.src.String())
		}
		if a.dst.IsValid() && b.dst.IsValid() && a.dst != b.dst {
			add(FieldDstIP, a.dst.String(), b.dst.String())
		}
	}
	if p.hasPorts && h.hasPorts {
		if p.sport != h.sport {
			add(FieldSrcPort, strconv.Itoa(int(p.sport)), strconv.Itoa(int(h.sport)))
		}
		if p.dport != h.dport {
			add(FieldDstPort, strconv.Itoa(int(p.dport)), strconv.Itoa(int(h.dport)))
		}
	}
	if p.hasEcho && h.hasEcho && p.echoID != h.echoID {
		add(FieldEchoID, strconv.Itoa(int(p.echoID)), strconv.Itoa(int(h.echoID)))
	}
}
