package correlate

import "net/netip"

// source is the position of the owner of the frame's source address (the
// sender IP for ARP), or -1 when unknown.
func (e *Engine) source(t *trace) int { e.owners(t); return e.ownSrc }

// destination is the position the frame is addressed to, where known: the
// owner of its destination IP (target IP for ARP requests), else of its
// destination MAC. -1 when unknown.
func (e *Engine) destination(t *trace) int { e.owners(t); return e.ownDst }

// owners finds t's source and destination once: what is learned changes
// only when a trace starts, never while one is emitted. emit clears
// ownersOf, as a trace's memory is reused.
func (e *Engine) owners(t *trace) {
	if e.ownersOf != t {
		e.ownersOf, e.ownSrc, e.ownDst = t, e.sourceOf(t, true), e.destinationOf(t, true)
	}
}

// configuredOwners: the frame's source and destination are both placed by
// the owners the configuration names (live discovery), not by owners
// learned from the stamps.
func (e *Engine) configuredOwners(t *trace) bool {
	return e.configuredSource(t) >= 0 && e.configuredDestination(t) >= 0
}

// configuredSource and configuredDestination place the frame's addresses
// by the owners the configuration names only: none offline, where they
// need no look-up.
func (e *Engine) configuredSource(t *trace) int {
	if len(e.cfg.IPOwners) == 0 && len(e.cfg.MACOwners) == 0 {
		return -1
	}
	return e.sourceOf(t, false)
}

func (e *Engine) configuredDestination(t *trace) int {
	if len(e.cfg.IPOwners) == 0 && len(e.cfg.MACOwners) == 0 {
		return -1
	}
	return e.destinationOf(t, false)
}

// sourceOf and destinationOf place the frame's addresses; learned: also by
// where addresses were seen first.
func (e *Engine) sourceOf(t *trace, learned bool) int {
	ip := t.ips[t.hops[0].ips].src
	if t.key.Proto == ProtoARP {
		ip = t.key.Addr1
	}
	if !ip.IsValid() {
		return -1
	}
	if o, ok := e.cfg.IPOwners[ip]; ok {
		return o.Point
	}
	if !learned {
		return -1
	}
	return e.learned(ip)
}

func (e *Engine) destinationOf(t *trace, learned bool) int {
	h0 := &t.hops[0]
	var ip netip.Addr
	switch t.key.Proto {
	case ProtoARP:
		if t.key.Kind == ARPRequest {
			ip = t.key.Addr2
		}
	case ProtoND:
		if t.key.Kind == NDNeighborSolic {
			ip = t.key.Addr1
		} else {
			ip = t.ips[h0.ips].dst
		}
	default:
		ip = t.ips[h0.ips].dst
	}
	if ip.IsValid() {
		if o, ok := e.cfg.IPOwners[ip]; ok {
			return o.Point
		}
		if learned {
			if p := e.learned(ip); p >= 0 {
				return p
			}
		}
		if t.key.Proto != ProtoARP && t.key.Proto != ProtoND {
			return -1 // routed IP: the MAC only names the next hop
		}
	}
	for i := range t.hops {
		if h := &t.hops[i]; h.hasDst && !h.dst.IsMulticast() {
			if o, ok := e.cfg.MACOwners[h.dst]; ok {
				return o.Point
			}
			if !learned {
				return -1
			}
			return e.learnedMAC(h.dst)
		}
	}
	return -1
}

func (e *Engine) learned(ip netip.Addr) int {
	return e.ipSeen.get(e.ipOrigin, ip).owner()
}

func (e *Engine) learnedMAC(mac MAC) int {
	return e.macSeen.get(e.macOrigin, mac).owner()
}

// origins counts, per position, the frames from one address that entered
// the path there. The leader is kept as they are counted: a trace asks for
// its addresses' owners several times, a frame counts once.
type origins struct {
	best  int32 // the first position with the most
	total int32
	n     [MaxPoints]int32
}

func (o *origins) add(p int) {
	o.n[p]++
	o.total++
	// Only n[p] grew: the first position with the most is p or as it was.
	if b := int(o.best); o.n[p] > o.n[b] || o.n[p] == o.n[b] && p < b {
		o.best = int32(p)
	}
}

// owner is the position holding a clear majority (≥ 80%) of the origins,
// -1 when none does (or o is nil: the address was never seen).
func (o *origins) owner() int {
	if o == nil || o.total == 0 || o.n[o.best]*5 < o.total*4 {
		return -1
	}
	return int(o.best)
}

// originCache remembers the origin counters of the last two addresses
// looked up: a conversation's traces come from one or two hosts, and a map
// probe (hashing a netip.Addr) per trace showed in a flood's profile.
// Entries never go stale: the maps only grow, and counters stay where they
// were allocated.
type originCache[K comparable] struct {
	k [2]K
	c [2]*origins
}

// get is m[k], from the cache when it holds k.
func (oc *originCache[K]) get(m map[K]*origins, k K) *origins {
	if oc.c[0] != nil && oc.k[0] == k {
		return oc.c[0]
	}
	if oc.c[1] != nil && oc.k[1] == k {
		return oc.c[1]
	}
	c := m[k]
	if c != nil {
		oc.k[1], oc.c[1] = oc.k[0], oc.c[0]
		oc.k[0], oc.c[0] = k, c
	}
	return c
}

// maxLearned bounds the addresses whose origin is learned, so a capture full
// of distinct addresses (a scan) cannot grow memory without bound.
const maxLearned = 1 << 14

// learnOrigin records where a frame entered the path: a MAC or IP address
// belongs to the point where frames from it originate.
func (e *Engine) learnOrigin(f *Frame) {
	if f.HasSrcMAC && !f.SrcMAC.IsMulticast() {
		c := e.macSeen.get(e.macOrigin, f.SrcMAC)
		if c == nil && len(e.macOrigin) < maxLearned {
			c = new(origins)
			e.macOrigin[f.SrcMAC] = c
		}
		if c != nil {
			c.add(f.Point)
		}
	}
	src := f.SrcIP
	if f.Key.Proto == ProtoARP {
		src = f.Key.Addr1
	}
	if src.IsValid() && !src.IsUnspecified() {
		c := e.ipSeen.get(e.ipOrigin, src)
		if c == nil && len(e.ipOrigin) < maxLearned {
			c = new(origins)
			e.ipOrigin[src] = c
		}
		if c != nil {
			c.add(f.Point)
		}
	}
}
