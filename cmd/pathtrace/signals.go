package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// cleanups run when a second Ctrl-C makes pathtrace exit at once: they leave
// evidence files valid and remove a demo's lab, so no exit path leaves the
// node changed. (Promiscuous mode needs none: the kernel drops the socket
// membership when the process exits.)
var cleanups struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// atInterrupt registers fn for a forced exit and returns a func removing it.
func atInterrupt(fn func()) (remove func()) {
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

func runCleanups() {
	cleanups.Lock()
	fns := make([]func(), 0, len(cleanups.fns))
	for _, fn := range cleanups.fns {
		fns = append(fns, fn)
	}
	cleanups.fns = nil
	cleanups.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// forcing is set once a second signal started the forced exit.
var forcing atomic.Bool

// signalContext cancels the context on the first SIGINT/SIGTERM, so a
// capture stops, drains and reports; a second one runs the cleanups and
// exits at once with exitInterrupted.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			cancel(fmt.Errorf("stopped by %v", s))
		case <-done:
			return
		}
		select {
		case s := <-ch:
			forcing.Store(true)
			fmt.Fprintf(os.Stderr, "pathtrace: %v again: exiting now\n", s)
			runCleanups()
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		// A forced exit in progress owns the exit status: wait for it.
		if forcing.Load() {
			select {}
		}
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}
