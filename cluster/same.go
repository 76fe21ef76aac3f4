package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pathtrace/pathtrace/discover/k8s"
	"github.com/pathtrace/pathtrace/internal/interrupt"
)

// Same traces a path within one node through one agent pod on it: the
// tracer itself runs in the agent (--src and --dst the pods, then args:
// the probe and output flags), its report streamed to out, its progress
// to Log. Ctrl-C (ctx) stops it by its stdin: it reports what it
// captured. The pod is deleted as Capture deletes its pods. An exit status
// of the tracer other than 0 is an *ExitError.
func Same(ctx context.Context, conn *k8s.Conn, cfg PodConfig, r Run, args []string, out io.Writer) (Times, error) {
	node, dstNode, err := r.nodes()
	if err != nil {
		return Times{}, err
	}
	if node != dstNode {
		return Times{}, fmt.Errorf("%s is on node %s, %s on node %s: a path across nodes is cluster.Capture's", r.Src.Label, node, r.Dst.Label, dstNode)
	}
	agents, err := Start(ctx, conn, cfg, []string{node}, r.Log)
	if err != nil {
		return Times{}, err
	}
	unregister := interrupt.AtExit(func() { agents.Close() })
	defer unregister()
	r.Log(agents.started())
	argv := append([]string{AgentBinary, RunCommand, "--", "--src", podArg(r.Src), "--dst", podArg(r.Dst)}, args...)
	stdin, w := io.Pipe()
	ectx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	errW := logWriter(r.Log, "node "+node+": ")
	go func() {
		done <- agents.Exec(ectx, node, argv, stdin, out, errW)
		errW.Close()
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		w.Close()
		select {
		case err = <-done:
		case <-time.After(StopTimeout):
			cancel()
			err = errors.Join(<-done, fmt.Errorf("the trace on node %s did not end within %v of its stop", node, StopTimeout))
		}
	}
	w.Close()
	closeErr := noteForced(agents.Close(), r.Log)
	return agents.Times, errors.Join(err, closeErr)
}
