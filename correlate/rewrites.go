package correlate

import "strconv"

// rewrites appends the fields outside the key that changed from p to h.
func (e *Engine) rewrites(out *Trace, p, h *hop) {
	at := e.cfg.Points[h.point].Name
	add := func(field Field, from, to string) {
		out.Rewrites = append(out.Rewrites, Rewrite{Point: at, Field: field, From: from, To: to})
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
	if p.srcIP.IsValid() && h.srcIP.IsValid() && p.srcIP != h.srcIP {
		add(FieldSrcIP, p.srcIP.String(), h.srcIP.String())
	}
	if p.dstIP.IsValid() && h.dstIP.IsValid() && p.dstIP != h.dstIP {
		add(FieldDstIP, p.dstIP.String(), h.dstIP.String())
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
