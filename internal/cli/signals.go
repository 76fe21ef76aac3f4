package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/pathtrace/pathtrace/internal/interrupt"
)

// forcing is set once a second signal started the forced exit.
var forcing atomic.Bool

// SignalContext cancels the context on the first SIGINT/SIGTERM, so a
// capture stops, drains and reports; a second one runs the registered
// cleanups (interrupt.AtExit) and exits at once with exitInterrupted.
func SignalContext() (context.Context, func()) {
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
			interrupt.RunCleanups()
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
