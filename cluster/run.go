package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/discover/k8s"
	"github.com/pathtrace/pathtrace/internal/interrupt"
	"github.com/pathtrace/pathtrace/internal/safefile"
)

// Run is one cluster-mode trace: two pods the API server placed, and what
// shapes the probes.
type Run struct {
	Src, Dst discover.Endpoint // as k8s resolves them with Options.Cluster (Pod set)
	// Probe are the capture flags that shape the probes on the source's
	// node (-c, -i, --size, --timeout, --no-why), passed on as they are.
	Probe []string
	// Dir receives each node's capture as DIR/NODE/path.pcapng, made and
	// written under Policy (no link followed, no shared folder unless
	// allowed); an existing capture is replaced only with Replace (--force).
	Dir     string
	Policy  safefile.Policy
	Replace bool
	// Log takes progress lines (agents started, the agents' own lines).
	Log func(string)
}

// Captures are a cross-node run's evidence, and how long its parts took.
type Captures struct {
	Dirs        []string // one folder per node, the source's first: analyze's arguments
	Nodes       []string // the nodes, in the same order
	Interrupted bool     // the run's context ended before the probes did
	Times       Times
	Capture     time.Duration // from the first exec to the last capture's end
}

// ArmTimeout bounds how long the destination's capture may take to arm
// (resolve, discover, open every point) before the probes go out.
const ArmTimeout = time.Minute

// StopTimeout bounds how long a capture may take to end once its stdin is
// closed (drain, statistics) before its stream is cut.
const StopTimeout = 20 * time.Second

// Capture runs a path across two nodes through agent pods: it starts one on
// each node (sweeping a killed run's leftovers first), execs `pathtrace
// capture --out -` on the destination's node and, once that is armed, with
// --probe on the source's node, streams both pcapng captures into Dir, and
// deletes the pods whatever happens: on success, on an error, when ctx ends
// (Ctrl-C: the captures are stopped by closing their stdin and what they
// streamed is kept), and on a forced exit (interrupt.AtExit). A path within
// one node is Same's.
func Capture(ctx context.Context, conn *k8s.Conn, cfg PodConfig, r Run) (*Captures, error) {
	srcNode, dstNode, err := r.nodes()
	if err != nil {
		return nil, err
	}
	if srcNode == dstNode {
		return nil, fmt.Errorf("%s and %s are both on node %s: a path within one node is traced by one agent (cluster.Same)", r.Src.Label, r.Dst.Label, srcNode)
	}
	agents, err := Start(ctx, conn, cfg, []string{dstNode, srcNode}, r.Log)
	if err != nil {
		return nil, err
	}
	unregister := interrupt.AtExit(func() { agents.Close() })
	defer unregister()
	c := &Captures{Nodes: []string{srcNode, dstNode}}
	r.Log(agents.started())
	t0 := time.Now()
	runErr := r.capture(ctx, agents, c, srcNode, dstNode)
	c.Capture = time.Since(t0)
	closeErr := noteForced(agents.Close(), r.Log)
	c.Times = agents.Times
	if runErr != nil {
		return c, errors.Join(runErr, closeErr)
	}
	if closeErr != nil {
		r.Log("pathtrace: " + closeErr.Error())
	}
	return c, nil
}

// nodes are the nodes of the two pods.
func (r Run) nodes() (src, dst string, err error) {
	for _, e := range []struct {
		ep   discover.Endpoint
		node *string
	}{{r.Src, &src}, {r.Dst, &dst}} {
		if e.ep.Pod == nil || e.ep.Pod.Node == "" {
			return "", "", fmt.Errorf("%s: cluster mode traces between pods the API server has placed on a node", e.ep.Label)
		}
		if e.ep.Pod.HostNetwork {
			return "", "", fmt.Errorf("pod %s/%s uses the host network: cluster mode traces between pods with their own network", e.ep.Pod.Namespace, e.ep.Pod.Name)
		}
		*e.node = e.ep.Pod.Node
	}
	return src, dst, nil
}

// podArg is the endpoint as an agent resolves it: the pod (a Service's or
// workload's chosen one), NAMESPACE/NAME.
func podArg(ep discover.Endpoint) string { return ep.Pod.Namespace + "/" + ep.Pod.Name }

// started is the line that says where the agents run and how long they
// took to start.
func (a *Agents) started() string {
	var parts []string
	for node, pod := range a.Pods {
		parts = append(parts, fmt.Sprintf("%s on %s (running after %v)", pod, node, a.Times.Running[node].Round(10*time.Millisecond)))
	}
	return fmt.Sprintf("pathtrace: agent pods in %s: %s", a.cfg.Namespace, strings.Join(parts, ", "))
}

// capture execs the two captures and waits for both.
func (r Run) capture(ctx context.Context, a *Agents, c *Captures, srcNode, dstNode string) error {
	base := []string{AgentBinary, RunCommand, "--", "capture", "--src", podArg(r.Src), "--dst", podArg(r.Dst), "--out", "-"}
	dst, err := r.start(a, dstNode, append(append([]string{}, base...), "--duration", "0"))
	if err != nil {
		return err
	}
	c.Dirs = append(c.Dirs, "", dst.dir)
	select {
	case <-dst.armed:
	case <-dst.done:
		return fmt.Errorf("capture on node %s ended before it was armed: %w", dstNode, dst.wait(0))
	case <-ctx.Done():
		c.Interrupted = true
		return errors.Join(fmt.Errorf("interrupted before the capture on node %s was armed: %w", dstNode, context.Cause(ctx)), dst.stop())
	case <-time.After(ArmTimeout):
		return errors.Join(fmt.Errorf("capture on node %s not armed after %v", dstNode, ArmTimeout), dst.stop())
	}
	src, err := r.start(a, srcNode, append(append(base, "--probe"), r.Probe...))
	if err != nil {
		return errors.Join(err, dst.stop())
	}
	c.Dirs[0] = src.dir
	select {
	case <-src.done:
	case <-ctx.Done():
		c.Interrupted = true
	}
	// The probes are done (or Ctrl-C): the source's capture ends by itself
	// --timeout after the last one, the destination's when told.
	return errors.Join(src.stop(), dst.stop())
}

// agentCapture is one node's capture streaming into DIR/NODE/path.pcapng.
type agentCapture struct {
	node   string
	dir    string
	stdin  *io.PipeWriter
	armed  chan struct{} // closed at the agent's "armed" line
	done   chan struct{} // closed when the exec returned
	err    error
	cancel context.CancelFunc
}

// start execs argv in the node's agent: stdout into the node's
// path.pcapng, stderr line by line to Log. The exec has a context of its
// own: Ctrl-C stops a capture by its stdin, so the end of its stream is
// still read.
func (r Run) start(a *Agents, node string, argv []string) (*agentCapture, error) {
	c := &agentCapture{node: node, dir: filepath.Join(r.Dir, node), armed: make(chan struct{}), done: make(chan struct{})}
	d, err := safefile.MkdirAll(c.dir, r.Policy)
	if err != nil {
		return nil, fmt.Errorf("capture of node %s: %w", node, err)
	}
	f, err := d.Place("path.pcapng", r.Replace)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("capture of node %s: %w (--force replaces it)", node, err)
	}
	stdin, w := io.Pipe()
	c.stdin = w
	var once sync.Once
	var tmu sync.Mutex
	var last []string // the agent's last lines: why it failed, even with -q
	errW := logWriter(func(line string) {
		if strings.Contains(line, "pathtrace capture: armed") {
			once.Do(func() { close(c.armed) })
		}
		tmu.Lock()
		last = append(last[max(0, len(last)-2):], strings.TrimPrefix(line, "node "+node+": "))
		tmu.Unlock()
		r.Log(line)
	}, "node "+node+": ")
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		err := a.Exec(ctx, node, argv, stdin, f, errW)
		errW.Close()
		var ee *ExitError
		// 1: the node's own view has findings (half a path often has);
		// 3: stopped by its stdin's end. Both streamed a capture.
		if errors.As(err, &ee) && (ee.Code == 1 || ee.Code == 3) {
			err = nil
		}
		if err != nil {
			tmu.Lock()
			if len(last) > 0 {
				err = fmt.Errorf("%w (node %s: %s)", err, node, strings.Join(last, " | "))
			}
			tmu.Unlock()
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("capture of node %s: %w", node, cerr)
		}
		c.err = err
		close(c.done)
	}()
	return c, nil
}

// logWriter passes what is written to it to log, a line at a time,
// prefixed; Close passes on a last unterminated line and returns once every
// line has been logged.
func logWriter(log func(string), prefix string) io.WriteCloser {
	pr, pw := io.Pipe()
	lw := &lineWriter{PipeWriter: pw, done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log(prefix + sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	return lw
}

type lineWriter struct {
	*io.PipeWriter
	done chan struct{}
}

func (w *lineWriter) Close() error {
	err := w.PipeWriter.Close()
	<-w.done
	return err
}

// stop ends the capture (its stdin closed) and waits for its stream's end,
// at most StopTimeout.
func (c *agentCapture) stop() error {
	c.stdin.Close()
	return c.wait(StopTimeout)
}

// wait waits for the exec to return (0: it has), cutting it after d.
func (c *agentCapture) wait(d time.Duration) error {
	if d > 0 {
		select {
		case <-c.done:
		case <-time.After(d):
			c.cancel()
			<-c.done
			return fmt.Errorf("capture on node %s did not end within %v of its stop: its stream was cut", c.node, d)
		}
	}
	<-c.done
	c.cancel()
	return c.err
}
