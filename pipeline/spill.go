package pipeline

import (
	"cmp"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Spilling. Under floods on a node short of CPU the correlator falls
// behind the capture and the spool's slabs pile up: 50–150 MiB over four
// `ping -f` (bench/live.sh), on top of the rings and the heap. Past the
// spool's memory (--spool-memory) a slab handed over is queued as a
// reference to a place in an unlinked file in the temporary directory, and
// written there by a goroutine of the spool's: a write took 0.3 ms on
// average and up to 27 ms, which a capture goroutine holding its ring's
// block must not wait. Its point goes on in a spare slab meanwhile (one a
// point; with none spare it writes itself). The correlator reads each back,
// once written, into a slab of its own. The page cache holds those frames,
// which the kernel may write out and drop, not the process. One queue
// keeps the frames in order: the correlator sees the same slabs either way.

// DefaultSpoolMemory is how much of the spool stays in memory.
const DefaultSpoolMemory = 32 << 20

// spill is the spool's file; the spool's lock guards it.
type spill struct {
	f      *os.File
	off    int64 // where the next slab goes
	n      int   // slabs queued to the file and not yet read back
	err    error // the file could not be made or written: no more spilling
	bytes  int64 // written to the file in all
	spare  []*slab
	spares []*slab // every spare mapped, to unmap at close
	jobs   chan spillJob
	done   chan struct{} // the writer returned
}

// spillJob is a slab for the writer and the reference queued for it.
type spillJob struct{ sl, ref *slab }

// spillOut queues sl, handed over when no slab in memory was free, to the
// file and returns the reference to queue in its place and the empty slab
// its point goes on with: a spare, or sl itself, written (nil if the write
// failed: the reference holds sl, which the point then waits to replace).
// Both are nil when sl goes in memory after all: the file failed before,
// or the spool is full (the capture then waits, as without spilling).
func (l *spool) spillOut(sl *slab) (ref, next *slab) {
	l.mu.Lock()
	sp := &l.spill
	if sp.err != nil || len(l.slabs)+sp.n >= l.limit {
		l.mu.Unlock()
		return nil, nil
	}
	if sp.f == nil {
		if sp.f, sp.err = tempFile(); sp.err != nil {
			l.mu.Unlock()
			return nil, nil
		}
	}
	if sp.jobs == nil {
		sp.jobs, sp.done = make(chan spillJob, len(l.sinks)), make(chan struct{})
		go l.writer(sp.jobs, sp.done)
	}
	ref = &slab{point: sl.point, used: sl.used, first: sl.first, off: sp.off, written: make(chan struct{}),
		flows: slices.Clone(sl.flows), lastFlow: sl.lastFlow, misses: sl.misses, numBase: sl.numBase, numSet: sl.numSet}
	sp.off += int64(sl.used)
	sp.n++
	if k := len(sp.spare); k > 0 {
		next = sp.spare[k-1]
		sp.spare = sp.spare[:k-1]
	} else if len(sp.spares) < len(l.sinks) {
		if s, err := newSlab(slabBytes); err == nil {
			sp.spares = append(sp.spares, s)
			next = s
		}
	}
	jobs := sp.jobs
	l.mu.Unlock()

	if next == nil { // every spare is being written: write it here
		if l.writeSlab(sl, ref.off) != nil {
			ref.held = sl
			sl = nil
		} else {
			sl.reset()
		}
		close(ref.written)
		return ref, sl
	}
	jobs <- spillJob{sl: sl, ref: ref}
	return ref, next
}

// writer writes the slabs queued to the file and makes them spares. One
// it could not write goes to the correlator as it is, in the reference: a
// spare less.
func (l *spool) writer(jobs <-chan spillJob, done chan<- struct{}) {
	defer close(done)
	for j := range jobs {
		if l.writeSlab(j.sl, j.ref.off) != nil {
			j.ref.held = j.sl
			close(j.ref.written)
			continue
		}
		close(j.ref.written)
		j.sl.reset()
		l.mu.Lock()
		l.spill.spare = append(l.spill.spare, j.sl)
		l.mu.Unlock()
	}
}

func (l *spool) writeSlab(sl *slab, off int64) error {
	_, err := l.spill.f.WriteAt(sl.mem[:sl.used], off)
	if err == nil {
		l.mu.Lock()
		l.spill.bytes += int64(sl.used)
		l.mu.Unlock()
		return nil
	}
	err = fmt.Errorf("spool: write %d bytes to %s: %w", sl.used, l.spill.f.Name(), err)
	l.mu.Lock()
	l.spill.err = cmp.Or(l.spill.err, err)
	l.mu.Unlock()
	return err
}

// readBack reads the spilled slab ref, once written, into the correlator's
// own slab; or returns the slab it holds, which could not be written (the
// correlator puts that back with the others).
func (l *spool) readBack(ref *slab) (*slab, error) {
	<-ref.written
	if ref.held != nil {
		return ref.held, nil
	}
	if l.back == nil {
		b, err := newSlab(slabBytes)
		if err != nil {
			return nil, err
		}
		l.back = b
	}
	b := l.back
	if _, err := l.spill.f.ReadAt(b.mem[:ref.used], ref.off); err != nil {
		return nil, fmt.Errorf("spool: read %d bytes back from %s: %w", ref.used, l.spill.f.Name(), err)
	}
	mem := b.mem
	*b = *ref
	b.mem, b.written, b.off = mem, nil, 0
	return b, nil
}

// readDone frees a spilled slab's place: once none is left in the file,
// the next is written at its start again.
func (l *spool) readDone() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spill.n--; l.spill.n == 0 {
		l.spill.off = 0
	}
}

// closeSpill stops the writer (every slab queued to it was read back) and
// releases the file and the spares.
func (l *spool) closeSpill() {
	sp := &l.spill
	if sp.jobs != nil {
		close(sp.jobs)
		<-sp.done
		sp.jobs = nil
	}
	if sp.f != nil {
		sp.f.Close()
		sp.f = nil
	}
	for _, s := range sp.spares {
		unix.Munmap(s.mem)
	}
	sp.spare, sp.spares = nil, nil
	if l.back != nil {
		unix.Munmap(l.back.mem)
		l.back = nil
	}
}

// tempFile makes the spill file, unlinked at once: it goes when the
// process does, however that ends.
func tempFile() (*os.File, error) {
	f, err := os.CreateTemp("", "pathtrace-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}
