// Command pathtrace shows where a packet goes, and how long each step takes,
// between two pods on a node: live (`pathtrace --src pod1 --dst pod2`) or from
// saved captures (`pathtrace analyze FILE...`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit statuses, documented in the README.
const (
	exitOK          = 0 // analysed; every frame complete, no anomaly
	exitFindings    = 1 // analysed; loss or anomalies found
	exitUsage       = 2 // usage or input error
	exitInterrupted = 3 // live capture interrupted; the report covers what was captured
)

// exitError carries an exit status through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// A closed stdout (pathtrace … | head) must fail a write, not kill the
	// process before it has undone what it changed (a lab, a capture).
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status; errors go to
// stderr as one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd(stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	if err != nil {
		// One line, always: joined errors (cleanups) become "; ".
		fmt.Fprintf(stderr, "pathtrace: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return code
}
