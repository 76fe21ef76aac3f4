package pipeline

import "github.com/pathtrace/pathtrace/correlate"

// feedAside runs produce (reading and decoding frames, calling its
// argument for each) on a goroutine of its own and calls consume for each
// frame on the caller's, in the same order: the clock pre-pass reads and
// decodes its sample on one core while a correlator takes it on the other
// (the main pass cannot start before it ends). Frames cross in batches;
// the frame consume gets is valid until it returns.
func feedAside(produce func(func(*correlate.Frame)) error, consume func(*correlate.Frame)) error {
	const batch, batches = 256, 4
	full := make(chan []correlate.Frame, batches)
	free := make(chan []correlate.Frame, batches+1)
	for range batches + 1 {
		free <- make([]correlate.Frame, 0, batch)
	}
	errc := make(chan error, 1)
	go func() {
		cur := <-free
		err := produce(func(f *correlate.Frame) {
			cur = append(cur, *f)
			if len(cur) == batch {
				full <- cur
				cur = (<-free)[:0]
			}
		})
		if len(cur) > 0 {
			full <- cur
		}
		close(full)
		errc <- err
	}()
	for b := range full {
		for i := range b {
			consume(&b[i])
		}
		free <- b[:0]
	}
	return <-errc
}
