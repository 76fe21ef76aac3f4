package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/cluster"
)

// The hidden commands of agent pods (cluster mode): what the container
// runs, and the wrapper the coordinator execs the capture through.

// newAgentIdleCmd is what an agent pod's container runs while captures are
// exec'd beside it: nothing, until SIGTERM (the pod's deletion) or --for.
// As the container's PID 1 it must handle SIGTERM itself: the kernel
// ignores signals PID 1 has no handler for.
func newAgentIdleCmd() *cobra.Command {
	var d time.Duration
	cmd := &cobra.Command{
		Use:    cluster.IdleCommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().DurationVar(&d, "for", 0, "exit after this long (0: only on SIGTERM)")
	return cmd
}

// newAgentRunCmd runs `pathtrace ARGS...` (the capture) as its child and
// stops it as SIGTERM would when its own stdin ends. Through the API
// server's exec, stdin ends when the coordinator closes it (the prober is
// done, Ctrl-C) and when the coordinator's connection is gone (killed,
// its machine lost): a capture never outlives the one reading it, even
// before its pod is deleted. Its stdout and stderr are the child's own.
func newAgentRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:    cluster.RunCommand + " -- ARGS...",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := agentRun(args)
			if err != nil {
				return usageError(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}

// agentRun runs this binary with args until it exits; the end of stdin,
// SIGTERM or SIGINT are passed on to it as SIGTERM.
func agentRun(args []string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find this executable: %w", err)
	}
	child := exec.Command(exe, args...)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", exe, err)
	}
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case <-eof:
			eof = nil
			child.Process.Signal(syscall.SIGTERM)
		case <-sigs:
			child.Process.Signal(syscall.SIGTERM)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), nil
			}
			if err != nil {
				return 0, err
			}
			return 0, nil
		}
	}
}
