// Command pathtrace shows where a packet goes, and how long each step takes,
// between two pods on a node: live (`pathtrace --src pod1 --dst pod2`) or from
// saved captures (`pathtrace analyze FILE...`). The commands live in
// internal/cli; main only hands them the process's streams and signals.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/pathtrace/pathtrace/internal/cli"
	"github.com/pathtrace/pathtrace/internal/iostreams"
)

func main() {
	// A closed stdout (pathtrace … | head) must fail a write, not kill the
	// process before it has undone what it changed (a lab, a capture).
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := cli.SignalContext()
	code := cli.Run(ctx, os.Args[1:], iostreams.System())
	stop()
	os.Exit(code)
}
