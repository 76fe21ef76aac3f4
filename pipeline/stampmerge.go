package pipeline

import "github.com/pathtrace/pathtrace/internal/ring"

// stampMerge is the pipeline's one stamp merge: per-source queues kept in
// stamp order, released earliest first. The offline merger queues
// references to decoded frames in its readers' batches, the live feed
// decoded frames, the evidence writer each point pcap's next raw frame;
// each decides when the earliest may leave (a reorder span, a lag, every
// source having a head). Sources are few (files, points), so a scan beats a
// heap.
type stampMerge[R any] struct {
	qs  []ring.Ring[queued[R]]
	seq uint64
}

// queued is one item: its stamp and arrival number beside the item, so equal
// stamps leave in arrival order.
type queued[R any] struct {
	t   int64
	seq uint64
	v   R
}

func (a *queued[R]) before(b *queued[R]) bool { return a.t < b.t || (a.t == b.t && a.seq < b.seq) }

func newStampMerge[R any](sources int) *stampMerge[R] {
	return &stampMerge[R]{qs: make([]ring.Ring[queued[R]], sources)}
}

// push queues v, stamped t, from source src and returns it, for items
// filled in place. Each source's stream is nearly sorted: an item walks back
// over the few it must precede.
func (m *stampMerge[R]) push(src int, t int64) *R {
	for len(m.qs) <= src {
		m.qs = append(m.qs, ring.Ring[queued[R]]{})
	}
	q := &m.qs[src]
	m.seq++
	it := q.PushZero()
	it.t, it.seq = t, m.seq
	for i := q.Len() - 1; i > 0; i-- {
		a, b := q.At(i), q.At(i-1)
		if !a.before(b) {
			return &a.v
		}
		*a, *b = *b, *a
	}
	return &q.At(0).v
}

// earliest is the source whose front item comes first, or -1 when every
// queue is empty.
func (m *stampMerge[R]) earliest() int {
	best := -1
	for i := range m.qs {
		if m.qs[i].Len() == 0 {
			continue
		}
		if best < 0 || m.qs[i].Front().before(m.qs[best].Front()) {
			best = i
		}
	}
	return best
}

// front is the first item of source src, which must not be empty.
func (m *stampMerge[R]) front(src int) *queued[R] { return m.qs[src].Front() }

// pop removes the first item of source src.
func (m *stampMerge[R]) pop(src int) R { return m.qs[src].Pop().v }

// drop removes the first item of source src, once used in place.
func (m *stampMerge[R]) drop(src int) { m.qs[src].Drop() }

// len is the number of items queued from source src.
func (m *stampMerge[R]) len(src int) int {
	if src >= len(m.qs) {
		return 0
	}
	return m.qs[src].Len()
}
