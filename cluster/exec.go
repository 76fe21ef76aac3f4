package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	neturl "net/url"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// ExitError is a command in an agent that ran and exited non-zero.
type ExitError struct {
	Node string
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("agent on node %s exited %d: %v", e.Node, e.Code, e.Err)
}
func (e *ExitError) Unwrap() error { return e.Err }

// Exec runs argv in the node's agent through the API server's exec
// subresource, as `kubectl exec -i` does: stdout and stderr stream back
// as the command writes them (binary-safe, no TTY), stdin (when not nil)
// goes to the command and its end closes the command's stdin. The
// WebSocket protocol (v5) is tried first, SPDY where an API server or
// proxy cannot upgrade to it. It returns when the command exits, when
// ctx ends (the command itself keeps running until its pod is deleted),
// or when the stream breaks.
func (a *Agents) Exec(ctx context.Context, node string, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	pod, ok := a.Pods[node]
	if !ok {
		return fmt.Errorf("no agent on node %s", node)
	}
	u := a.conn.Client.Pods(a.cfg.Namespace).ExecURL(pod, &corev1.PodExecOptions{
		Container: ContainerName, Command: argv,
		Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil,
	})
	ex, err := executor(a.conn.REST, u.String())
	if err != nil {
		return fmt.Errorf("exec in agent on node %s: %w", node, err)
	}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	var ce utilexec.CodeExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return &ExitError{Node: node, Code: ce.Code, Err: err}
	case ctx.Err() != nil:
		return fmt.Errorf("exec in agent on node %s: %w", node, context.Cause(ctx))
	}
	return fmt.Errorf("exec in agent on node %s (pod %s/%s): %w", node, a.cfg.Namespace, pod,
		a.conn.APIError(err, "create", "pods/exec", a.cfg.Namespace, Manifest))
}

// executor is kubectl's: WebSocket first, SPDY where the upgrade fails.
// The streams are as long as a capture: the configuration's request
// timeout (meant for API calls) must not cut them.
func executor(base *rest.Config, url string) (remotecommand.Executor, error) {
	rc := rest.CopyConfig(base)
	rc.Timeout = 0
	u, err := neturl.Parse(url)
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(rc, "POST", u)
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(rc, "GET", url)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}
