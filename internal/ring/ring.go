// Package ring is the one queue of the pipeline: a FIFO over a circular
// buffer that reuses its memory, so a steady stream pushes and pops without
// allocating. The correlator queues traces and requests in it, and the
// pipeline's stamp merge each source's items.
package ring

// Ring is a FIFO queue. The zero value is empty and ready to use. Pointers
// from At, Front and PushZero are valid until the next Push or PushZero.
type Ring[T any] struct {
	items      []T // len is zero or a power of two
	head, size int
}

// Len is the number of queued items.
func (r *Ring[T]) Len() int { return r.size }

// At is the i-th item from the front.
func (r *Ring[T]) At(i int) *T { return &r.items[(r.head+i)&(len(r.items)-1)] }

// Front is the oldest item; the ring must not be empty.
func (r *Ring[T]) Front() *T { return &r.items[r.head] }

// Push appends v.
func (r *Ring[T]) Push(v T) { *r.PushZero() = v }

// PushZero appends a zero item and returns it, for callers that fill large
// items in place.
func (r *Ring[T]) PushZero() *T {
	if r.size == len(r.items) {
		r.grow()
	}
	r.size++
	p := r.At(r.size - 1)
	var zero T
	*p = zero
	return p
}

func (r *Ring[T]) grow() {
	grown := make([]T, max(16, 2*len(r.items)))
	for i := range r.size {
		grown[i] = *r.At(i)
	}
	r.items, r.head = grown, 0
}

// Pop removes and returns the oldest item; the ring must not be empty.
func (r *Ring[T]) Pop() T {
	v := *r.Front()
	r.Drop()
	return v
}

// Drop removes the oldest item without copying it out; the ring must not
// be empty. Its slot is cleared so the ring holds no pointer it no longer
// queues.
func (r *Ring[T]) Drop() {
	var zero T
	r.items[r.head] = zero
	r.head = (r.head + 1) & (len(r.items) - 1)
	r.size--
}
