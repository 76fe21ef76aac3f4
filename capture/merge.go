package capture

import (
	"container/heap"
	"errors"
	"fmt"
	"io"

	"github.com/pathtrace/pathtrace/correlate"
)

// DefaultReorder is how far back in time a source may jump and still be
// merged in order. `tcpdump -i any` files interleave per-CPU queues and hold
// inversions of a few ms; single-interface files far less.
const DefaultReorder int64 = 50e6

// Merger reads several sources at once, decodes their frames and yields
// them merged by stamp. A source that is not in time order is held in a
// reorder buffer: a frame is released only once every open source has read
// past its stamp plus the reorder span, so memory depends on the traffic
// rate and that span, never on file sizes.
type Merger struct {
	reorder int64
	inputs  []*mergeInput
	slab    []correlate.Frame
	free    []int32
	h       frameHeap
	seq     uint64
	closed  func(point int, ifc Interface, early bool)
	warn    []string
}

type mergeInput struct {
	src     Source
	name    string
	points  []int // iface → point; -1 ignores it
	late    func(iface int) int
	dec     *Decoder
	maxTime int64
	done    bool
	frames  int
	// perIface numbers frames per interface instead of per file: set for
	// pcapng files pathtrace wrote, whose interfaces hold the same frames as
	// the per-point .cap files written beside them.
	perIface []int
}

// NewMerger returns a Merger. closed, if not nil, is called for each point
// when its source has no more frames, with the interface as the source
// finally describes it (pcapng statistics come at the end of a file) and
// whether the source ended early (an error, a truncated or broken file).
func NewMerger(reorder int64, closed func(point int, ifc Interface, early bool)) *Merger {
	if reorder <= 0 {
		reorder = DefaultReorder
	}
	m := &Merger{reorder: reorder, closed: closed}
	m.h.m = m
	return m
}

// Add registers a source. points maps the source's interface indices to
// point indices; late, if not nil, maps interfaces the source reveals later
// (an SLL2 ifindex first seen deep in a file) and may return -1.
func (m *Merger) Add(name string, src Source, points []int, late func(iface int) int) {
	m.inputs = append(m.inputs, &mergeInput{src: src, name: name, points: points, late: late, dec: NewDecoder()})
}

// NumberPerInterface makes the most recently added source number its
// frames per interface (see mergeInput.perIface).
func (m *Merger) NumberPerInterface() {
	if n := len(m.inputs); n > 0 {
		m.inputs[n-1].perIface = []int{}
	}
}

// Warnings collected while merging (sources' own warnings included).
func (m *Merger) Warnings() []string { return m.warn }

// Next fills f with the next frame in stamp order; false at the end.
func (m *Merger) Next(f *correlate.Frame) bool {
	{
		// Read ahead until every open source is past the candidate's stamp
		// plus the reorder span, so nothing earlier can still arrive.
		progressed := true
		for progressed {
			progressed = false
			for _, in := range m.inputs {
				if in.done {
					continue
				}
				if m.h.Len() > 0 && in.frames > 0 && in.maxTime > m.slab[m.h.idx[0]].Time+m.reorder {
					continue
				}
				m.read(in)
				progressed = true
			}
		}
		if m.h.Len() == 0 {
			return false
		}
		i := m.h.pop()
		*f = m.slab[i]
		m.free = append(m.free, i)
		return true
	}
}

func (m *Merger) read(in *mergeInput) {
	for {
		rf, err := in.src.Next()
		if err != nil {
			in.done = true
			early := !errors.Is(err, io.EOF)
			if early {
				m.warn = append(m.warn, fmt.Sprintf("%s: %v (frames after it ignored)", in.name, err))
			}
			// Readers warn only when they lost or skipped data.
			ws := in.src.Warnings()
			early = early || len(ws) > 0
			m.warn = append(m.warn, ws...)
			if m.closed != nil {
				ifs := in.src.Interfaces()
				for i, p := range in.points {
					if p >= 0 && i < len(ifs) {
						m.closed(p, ifs[i], early)
					}
				}
			}
			return
		}
		point := -1
		if rf.Iface >= 0 && rf.Iface < len(in.points) {
			point = in.points[rf.Iface]
		} else if in.late != nil {
			for len(in.points) <= rf.Iface {
				in.points = append(in.points, -1)
			}
			point = in.late(rf.Iface)
			in.points[rf.Iface] = point
		}
		if point < 0 {
			continue
		}
		var idx int32
		if n := len(m.free); n > 0 {
			idx = m.free[n-1]
			m.free = m.free[:n-1]
		} else {
			m.slab = append(m.slab, correlate.Frame{})
			idx = int32(len(m.slab) - 1)
		}
		f := &m.slab[idx]
		if !in.dec.Decode(&rf, f) {
			// Undecodable frames still prove the point was capturing.
			*f = correlate.Frame{Time: rf.Time, Num: rf.Num, Dir: rf.Dir, WireLen: rf.WireLen, CapLen: len(rf.Data)}
		}
		f.Point = point
		if in.perIface != nil {
			for len(in.perIface) <= rf.Iface {
				in.perIface = append(in.perIface, 0)
			}
			in.perIface[rf.Iface]++
			f.Num = in.perIface[rf.Iface]
		}
		in.frames++
		if rf.Time > in.maxTime || in.frames == 1 {
			in.maxTime = rf.Time
		}
		m.seq++
		m.h.push(idx, m.seq)
		return
	}
}

// frameHeap orders slab indices by stamp, then by arrival, so equal stamps
// keep their sources' order.
type frameHeap struct {
	m   *Merger
	idx []int32
	seq []uint64
}

func (h *frameHeap) Len() int { return len(h.idx) }
func (h *frameHeap) Less(a, b int) bool {
	ta, tb := h.m.slab[h.idx[a]].Time, h.m.slab[h.idx[b]].Time
	if ta != tb {
		return ta < tb
	}
	return h.seq[a] < h.seq[b]
}
func (h *frameHeap) Swap(a, b int) {
	h.idx[a], h.idx[b] = h.idx[b], h.idx[a]
	h.seq[a], h.seq[b] = h.seq[b], h.seq[a]
}

// Push and Pop satisfy heap.Interface; push and pop below are used instead
// so no index is boxed in an interface (an allocation per frame).
func (h *frameHeap) Push(any) { panic("unused") }
func (h *frameHeap) Pop() any { panic("unused") }

func (h *frameHeap) pop() int32 {
	n := len(h.idx) - 1
	h.Swap(0, n)
	i := h.idx[n]
	h.idx, h.seq = h.idx[:n], h.seq[:n]
	if n > 0 {
		heap.Fix(h, 0)
	}
	return i
}

func (h *frameHeap) push(i int32, seq uint64) {
	h.idx = append(h.idx, i)
	h.seq = append(h.seq, seq)
	heap.Fix(h, len(h.idx)-1)
}
