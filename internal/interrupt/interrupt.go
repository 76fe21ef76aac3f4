// Package interrupt keeps what must run when a second Ctrl-C makes
// pathtrace exit at once: cleanups that leave evidence files valid and
// remove a demo's lab, so no exit path leaves the node changed.
// (Promiscuous mode needs none: the kernel drops the socket membership when
// the process exits.) The command registers the signal handling; the
// pipeline and the lab register cleanups.
package interrupt

import "sync"

var cleanups struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// AtExit registers fn for a forced exit and returns a func removing it.
func AtExit(fn func()) (remove func()) {
	cleanups.Lock()
	defer cleanups.Unlock()
	if cleanups.fns == nil {
		cleanups.fns = map[int]func(){}
	}
	id := cleanups.next
	cleanups.next++
	cleanups.fns[id] = fn
	return func() {
		cleanups.Lock()
		delete(cleanups.fns, id)
		cleanups.Unlock()
	}
}

// RunCleanups runs every registered cleanup once, all at the same time;
// the forced exit calls it.
func RunCleanups() {
	cleanups.Lock()
	fns := make([]func(), 0, len(cleanups.fns))
	for _, fn := range cleanups.fns {
		fns = append(fns, fn)
	}
	cleanups.fns = nil
	cleanups.Unlock()
	// Side by side: they are independent (evidence files, trace tables in
	// namespaces, a lab, agent pods), and the user asked to exit now.
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(fn)
	}
	wg.Wait()
}
