package pipeline

import "github.com/pathtrace/pathtrace/internal/ring"

// stampMerge is the pipeline's one stamp merge: per-source queues kept in
// stamp order, released earliest first. The offline merger queues
// references to decoded frames in its readers' batches, the live feed
// decoded frames, the evidence writer each point pcap's next raw frame;
// each decides when the earliest may leave (a reorder span, a lag, every
// source having a head). Sources are few (files, points), so a scan beats a
// heap; the scan reads each queue's front from a flat array, since it runs
// once per frame.
type stampMerge[R any] struct {
	qs    []ring.Ring[queued[R]]
	heads []head // per source: its front's stamp and arrival, or empty
	seq   uint64
}

// queued is one item: its stamp and arrival number beside the item, so equal
// stamps leave in arrival order.
type queued[R any] struct {
	t   int64
	seq uint64
	v   R
}

// head is a queue's front as the scan sees it; empty queues sort last.
type head struct {
	t   int64
	seq uint64
}

var emptyHead = head{t: 1<<63 - 1, seq: 1<<64 - 1}

func newStampMerge[R any](sources int) *stampMerge[R] {
	m := &stampMerge[R]{}
	m.grow(sources)
	return m
}

func (m *stampMerge[R]) grow(sources int) {
	for len(m.qs) < sources {
		m.qs = append(m.qs, ring.Ring[queued[R]]{})
		m.heads = append(m.heads, emptyHead)
	}
}

// push queues an item stamped t from source src and returns it, for items
// filled in place (valid until the next push). Each source's stream is
// nearly sorted: an item walks back over the few it must precede.
func (m *stampMerge[R]) push(src int, t int64) *R {
	if src >= len(m.qs) {
		m.grow(src + 1)
	}
	q := &m.qs[src]
	m.seq++
	it := q.PushZero()
	it.t, it.seq = t, m.seq
	i := q.Len() - 1
	for ; i > 0; i-- {
		a, b := q.At(i), q.At(i-1)
		if a.t > b.t || (a.t == b.t && a.seq > b.seq) {
			break
		}
		*a, *b = *b, *a
	}
	if i == 0 {
		m.heads[src] = head{t, m.seq}
	}
	return &q.At(i).v
}

// earliest is the source whose front item comes first, or -1 when every
// queue is empty.
func (m *stampMerge[R]) earliest() int {
	best, bt, bs := -1, emptyHead.t, emptyHead.seq
	for i := range m.heads {
		// Through a pointer, fields apart: it runs once per frame.
		if h := &m.heads[i]; h.t < bt || (h.t == bt && h.seq < bs) {
			best, bt, bs = i, h.t, h.seq
		}
	}
	return best
}

// front is the first item of source src, which must not be empty.
func (m *stampMerge[R]) front(src int) *queued[R] { return m.qs[src].Front() }

// frontTime is the stamp of source src's first item (max int64 if empty).
func (m *stampMerge[R]) frontTime(src int) int64 { return m.heads[src].t }

// pop removes and returns the first item of source src.
func (m *stampMerge[R]) pop(src int) R {
	v := m.qs[src].Front().v
	m.drop(src)
	return v
}

// drop removes the first item of source src, once used in place.
func (m *stampMerge[R]) drop(src int) {
	q := &m.qs[src]
	q.Drop()
	if q.Len() == 0 {
		m.heads[src] = emptyHead
		return
	}
	f := q.Front()
	m.heads[src] = head{f.t, f.seq}
}

// len is the number of items queued from source src.
func (m *stampMerge[R]) len(src int) int {
	if src >= len(m.qs) {
		return 0
	}
	return m.qs[src].Len()
}
