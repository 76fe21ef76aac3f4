package correlate

import "fmt"

// pair links echo replies to their requests and ARP replies to requests.
func (e *Engine) pair(t *trace, out *Trace, order []int) {
	k := t.key
	// first and last in crossing order: the last is where the frame got to
	first, last := &t.hops[order[0]], &t.hops[order[0]]
	for _, i := range order {
		if !t.hops[i].refl {
			last = &t.hops[i]
		}
	}
	switch {
	case k.isEchoRequest():
		ek := echoKey{k.Proto, k.Seq, k.Hash, k.Len}
		h := ek.hash()
		e.echoReq[h] = echoInfo{key: ek, q: e.echoQ0 + uint64(e.echoQ.Len()), n: t.n, firstPoint: first.point,
			first: first.time, last: last.time, lastSeen: last.point, settled: out.LostAfter != ""}
		e.echoQ.Push(pending{h: h, last: last.time})
	case k.isEchoReply():
		ek := echoKey{k.Proto, k.Seq, k.Hash, k.Len}
		h := ek.hash()
		info, ok := e.echoReq[h]
		if !ok || info.key != ek {
			return
		}
		// Answered: forget it now rather than two windows later, so the
		// map holds only requests in flight and stays in cache under a
		// flood. (A second reply to one request then stays unpaired.)
		delete(e.echoReq, h)
		e.answered(info.q)
		out.ReplyTo = someI(int64(info.n))
		rtt := &e.rtt
		*rtt = RTT{
			ForwardNs:    info.last - info.first,
			TurnaroundNs: first.time - info.last,
			ReverseNs:    last.time - first.time,
		}
		rtt.TotalNs = rtt.ForwardNs + rtt.TurnaroundNs + rtt.ReverseNs
		for _, i := range order {
			if h := &t.hops[i]; h.point == info.firstPoint && !h.refl {
				rtt.TotalNs = h.time - info.first
			}
		}
		out.RTT = rtt
	case k.Proto == ProtoARP && k.Kind == ARPRequest:
		// A repeated request replaces the previous one, so its reply pairs
		// with the latest; a previous one nobody answered was a retry's cause.
		ak := arpKey{k.Addr1, k.Addr2}
		if old, ok := e.arpReq[ak]; !ok {
			e.arpQ.Push(ak)
		} else if !old.answered {
			e.unansweredARP(ak, old)
		}
		e.arpReq[ak] = arpInfo{n: t.n, time: first.time, point: first.point}
	case k.Proto == ProtoARP && k.Kind == ARPReply:
		ak := arpKey{k.Addr2, k.Addr1}
		if info, ok := e.arpReq[ak]; ok {
			info.answered = true
			e.arpReq[ak] = info
			out.ReplyTo = someI(int64(info.n))
		}
	}
}

// answered marks request number q of echoQ answered and drops the answered
// ones at its front: under a flood the queue then holds the requests in
// flight, not two windows of them, and expiring them looks none up.
func (e *Engine) answered(q uint64) {
	if i := q - e.echoQ0; i < uint64(e.echoQ.Len()) {
		e.echoQ.At(int(i)).answered = true
	}
	for e.echoQ.Len() > 0 && e.echoQ.Front().answered {
		e.echoQ.Pop()
		e.echoQ0++
	}
}

// expireRequests reports requests whose answer can no longer come: older
// than two windows behind the newest stamp. A request counts as unanswered
// only if its point went on capturing after it, so a request cut off by the
// end of the capture is not blamed.
func (e *Engine) expireRequests() {
	horizon := e.mark - 2*e.window
	if e.mark == 1<<63-1 {
		horizon = e.mark
	}
	// The queue carries each request's time, so the common case (nothing to
	// expire) touches no map.
	for e.echoQ.Len() > 0 && e.echoQ.Front().last <= horizon {
		q := e.echoQ.Pop()
		e.echoQ0++
		if q.answered {
			continue
		}
		info, ok := e.echoReq[q.h]
		if !ok || info.last != q.last {
			continue // gone, or replaced by a later request with its own entry
		}
		delete(e.echoReq, q.h)
		if !info.settled && e.capturedAfter(info.firstPoint, info.last) {
			e.anomaly(KindUnansweredEcho, e.cfg.Points[info.lastSeen].Name, info.n, func() string {
				return fmt.Sprintf("echo request never answered; last seen at %s", e.cfg.Points[info.lastSeen].Name)
			})
		}
	}
	for e.arpQ.Len() > 0 {
		k := *e.arpQ.Front()
		info, ok := e.arpReq[k]
		if ok && info.time > horizon {
			break
		}
		e.arpQ.Pop()
		if !ok {
			continue
		}
		delete(e.arpReq, k)
		if !info.answered && e.capturedAfter(info.point, info.time) {
			e.unansweredARP(k, info)
		}
	}
}

// unansweredARP reports a request no reply answered. Gratuitous ARP (sender
// asking for itself) expects no answer.
func (e *Engine) unansweredARP(k arpKey, info arpInfo) {
	if k.sender == k.target {
		return
	}
	e.anomaly(KindUnansweredARP, e.cfg.Points[info.point].Name, info.n, func() string { return fmt.Sprintf("ARP request from %s for %s never answered", k.sender, k.target) })
}

// replyGrace is how long after a request its point must have gone on
// capturing before a missing reply counts: replies on a node take µs to ms.
const replyGrace int64 = 100e6

func (e *Engine) capturedAfter(p int, ts int64) bool {
	end := e.cov[p].last
	if s := &e.cfg.Points[p]; s.CoverTo != 0 {
		end = s.CoverTo
	}
	return end > ts+min(replyGrace, e.window)
}
