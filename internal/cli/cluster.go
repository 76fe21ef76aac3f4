package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/cluster"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/discover/k8s"
	"github.com/pathtrace/pathtrace/internal/interrupt"
	"github.com/pathtrace/pathtrace/internal/privs"
	"github.com/pathtrace/pathtrace/internal/safefile"
	"github.com/pathtrace/pathtrace/pipeline"
)

// clusterOptions are cluster mode's flags: pods on any node, traced through
// short-lived agent pods the API server runs on their nodes.
type clusterOptions struct {
	Cluster        bool
	Namespace      string
	Image          string
	Privileged     bool
	ServiceAccount string
}

func (c *clusterOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&c.Cluster, "cluster", false, "trace pods on any node: start an agent pod on each node of the path through the API server, capture there, correlate here, delete the agents")
	f.StringVar(&c.Namespace, "agent-namespace", "pathtrace-system", "with --cluster: the namespace of the agent pods (Pod Security level privileged; "+cluster.Manifest+")")
	f.StringVar(&c.Image, "image", "", "with --cluster: the agents' image (default: "+cluster.Repository+":VERSION, this build's; 'pathtrace image' writes it)")
	f.BoolVar(&c.Privileged, "agent-privileged", false, "with --cluster: run the agents privileged instead of with the capture's capabilities only")
	f.StringVar(&c.ServiceAccount, "agent-service-account", "pathtrace-agent", "with --cluster: the agents' service account (reads pods as the tracer does)")
}

// clusterFlagsAlone refuses cluster mode's own flags without --cluster,
// rather than ignore them.
func (o *traceOptions) clusterFlagsAlone() error {
	for _, n := range []string{"agent-namespace", "image", "agent-privileged", "agent-service-account"} {
		if o.changed != nil && o.changed(n) {
			return fmt.Errorf("--%s is for --cluster's agent pods: add --cluster, or drop it", n)
		}
	}
	return nil
}

// clusterRefused are the tracer's flags cluster mode does not take yet:
// agents capture with probes only, ICMP only.
var clusterRefused = []string{"passive", "duration", "filter", "why", "tcp-port", "ring-size", "spool-size", "spool-memory", "node", "cri-endpoint"}

// podConfig is how the agent pods are made for a run of this many probes.
// The drop-reason steps' capabilities only where they are used: a path
// within one node runs the tracer in its agent, which asks the kernel why
// probes were lost; the captures of a path across nodes stream frames
// only (their drop records have no place in the stream yet).
func (o *traceOptions) podConfig(sameNode bool) (cluster.PodConfig, error) {
	img := o.cl.Image
	if img == "" {
		bin, err := cluster.Binary()
		if err != nil {
			return cluster.PodConfig{}, err
		}
		img = cluster.DefaultImage(buildTool().Version, bin)
	}
	steps := append([]privs.Step{}, privs.LiveTrace...)
	if sameNode && !o.NoWhy {
		steps = append(steps, privs.DropReasons, privs.DropLocation, privs.DropRules)
	}
	return cluster.PodConfig{
		Namespace: o.cl.Namespace, Image: img, Privileged: o.cl.Privileged, ServiceAccount: o.cl.ServiceAccount,
		Caps:     privs.For(steps...),
		Lifetime: 5*time.Minute + time.Duration(o.Count)*o.Interval + o.Timeout,
	}, nil
}

// probeArgs are the probe flags as the source's agent takes them.
func (o *traceOptions) probeArgs() []string {
	a := []string{"-c", strconv.Itoa(o.Count), "-i", o.Interval.String(), "--size", strconv.Itoa(o.Size), "--timeout", o.Timeout.String()}
	if o.NoWhy {
		a = append(a, "--no-why")
	}
	return a
}

// runCluster is `pathtrace --cluster`: resolve both pods through the API
// server; across nodes, capture on both through agents and analyse their
// captures here as `analyze nodeA/ nodeB/` does; within one node, run the
// tracer in that node's agent.
func (o *traceOptions) runCluster(ctx context.Context) error {
	if err := o.validate(); err != nil {
		return usageError(err)
	}
	if strings.HasPrefix(o.Src, "svc/") || strings.HasPrefix(o.Dst, "svc/") {
		return usageError(errors.New("--cluster traces between pods: a Service's ClusterIP (kube-proxy's DNAT) is traced without --cluster, on the node; give the pod behind it"))
	}
	for _, n := range clusterRefused {
		if o.changed(n) {
			return usageError(fmt.Errorf("--%s does not go with --cluster (its agents send ICMP probes from the source's node)", n))
		}
	}
	kr := k8s.New(k8s.Options{Config: o.kube.config, Cluster: true})
	defer kr.Close()
	var r cluster.Run
	for _, e := range []struct {
		flag, arg string
		ep        *discover.Endpoint
	}{{"--src", o.Src, &r.Src}, {"--dst", o.Dst, &r.Dst}} {
		ep, err := kr.Resolve(e.arg)
		if err != nil {
			return usageError(fmt.Errorf("%s %s: %w", e.flag, e.arg, err))
		}
		*e.ep = ep
	}
	conn, err := kr.Conn()
	if err != nil {
		return usageError(err)
	}
	var mu sync.Mutex
	r.Log = func(s string) {
		if !o.Quiet {
			mu.Lock()
			fmt.Fprintln(o.IO.ErrOut, s)
			mu.Unlock()
		}
	}
	for _, ep := range []discover.Endpoint{r.Src, r.Dst} {
		for _, n := range ep.Notes {
			r.Log("pathtrace: " + n) // which pod of a workload
		}
	}
	r.Probe = o.probeArgs()
	same := r.Src.Pod != nil && r.Dst.Pod != nil && r.Src.Pod.Node == r.Dst.Pod.Node
	cfg, err := o.podConfig(same)
	if err != nil {
		return usageError(err)
	}
	if same {
		return o.clusterSame(ctx, conn, cfg, r)
	}
	r.Policy, r.Replace = safefile.UserPolicy(o.SharedOut, "--allow-shared-out"), o.Force
	if r.Dir = o.OutDir; r.Dir == "" {
		if r.Dir, err = os.MkdirTemp("", "pathtrace-cluster-"); err != nil {
			return outputError(err)
		}
		// Full payloads of two nodes: gone at the end, also on a forced exit.
		defer interrupt.AtExit(func() { os.RemoveAll(r.Dir) })()
		defer os.RemoveAll(r.Dir)
	} else if err := clusterOutFree(r); err != nil {
		return outputError(err) // before any pod is made
	}
	t0 := time.Now()
	c, err := cluster.Capture(ctx, conn, cfg, r)
	if err != nil {
		return clusterError(ctx, err)
	}
	r.Log(fmt.Sprintf("pathtrace: captured on %s and %s in %v (agents: swept %v, deleted %v); run %v",
		c.Nodes[0], c.Nodes[1], c.Capture.Round(time.Millisecond), c.Times.Sweep.Round(time.Millisecond),
		c.Times.Delete.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond)))
	// What was captured is analysed even after Ctrl-C, as a live run
	// reports what it captured; the status says it was interrupted.
	actx := ctx
	if c.Interrupted {
		actx = context.WithoutCancel(ctx)
	}
	a := &analyzeOptions{IO: o.IO, outputOptions: o.outputOptions, Args: c.Dirs, Reorder: time.Duration(pipeline.DefaultReorder)}
	err = a.run(actx)
	var ee *exitError
	if c.Interrupted && (err == nil || errors.As(err, &ee) && ee.code == exitFindings) {
		return &exitError{code: exitInterrupted}
	}
	return err
}

// clusterSame traces two pods on one node: the tracer runs in the node's
// agent and its report comes back as it writes it.
func (o *traceOptions) clusterSame(ctx context.Context, conn *k8s.Conn, cfg cluster.PodConfig, r cluster.Run) error {
	if o.OutDir != "" {
		return usageError(errors.New("--out with --cluster keeps the nodes' captures of a path across nodes; these pods share a node, whose agent writes no evidence here: drop --out, or run pathtrace on the node"))
	}
	args := append(r.Probe, "-f", o.Format, "--limit", strconv.Itoa(o.Limit), "--window", o.Window.String(), "-q")
	if o.Detail {
		args = append(args, "--detail")
	}
	_, err := cluster.Same(ctx, conn, cfg, r, args, o.IO.Out)
	var ee *cluster.ExitError
	if errors.As(err, &ee) && ee.Code != exitUsage {
		return &exitError{code: ee.Code}
	}
	if err != nil {
		return clusterError(ctx, err)
	}
	return nil
}

// clusterOutFree refuses, before any agent runs, --out folders that could
// not take the nodes' captures: a folder the policy refuses, or a capture
// already there without --force.
func clusterOutFree(r cluster.Run) error {
	for _, ep := range []discover.Endpoint{r.Src, r.Dst} {
		if ep.Pod == nil {
			continue // not a pod: cluster.Capture says so
		}
		dir := filepath.Join(r.Dir, ep.Pod.Node)
		if err := safefile.Check(dir, r.Policy); err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Join(dir, "path.pcapng")); err == nil && !r.Replace {
			return fmt.Errorf("%s: exists (--force replaces it)", filepath.Join(dir, "path.pcapng"))
		}
	}
	return nil
}

// clusterError gives a failed cluster run its exit status: interrupted
// (Ctrl-C before the captures were under way), an evidence file that could
// not be written, else the run's own error.
func clusterError(ctx context.Context, err error) error {
	var pe *fs.PathError
	var re *safefile.RefusedError
	switch {
	case ctx.Err() != nil:
		return &exitError{exitInterrupted, err}
	case errors.As(err, &re), errors.As(err, &pe):
		return outputError(err)
	}
	return usageError(err)
}
