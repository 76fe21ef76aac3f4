// Package cli is pathtrace's commands, as cli/cli lays out gh's: each
// command an options struct filled from its flags, with injected streams (a
// fakeable terminal) and a runF hook so tests can check what the flags
// became without running anything. A command only wires: flags into
// options, options into the pipeline, its result into a report, errors into
// an exit status by cause.
package cli

import (
	"context"

	"github.com/pathtrace/pathtrace/internal/iostreams"
)

// Run executes one command line and returns the exit status; errors go to
// stderr as one line.
func Run(ctx context.Context, args []string, ios *iostreams.IOStreams) int {
	cmd := newRootCmd(ios)
	cmd.SetArgs(args)
	return exitStatus(cmd.ExecuteContext(ctx), ios.ErrOut)
}
