package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/discover/k8s"
)

// Manifest is the RBAC manifest that grants what agent pods need; errors
// name it.
const Manifest = "deploy/rbac/pathtrace-cluster.yaml"

// Agents are one run's agent pods, one per node, Running.
type Agents struct {
	conn  *k8s.Conn
	cfg   PodConfig
	Run   string            // the run's ID (LabelRun)
	Pods  map[string]string // node → pod name
	Times Times

	closeOnce sync.Once
	closeErr  error
}

// Times is how long the pods' lifecycle took.
type Times struct {
	Sweep   time.Duration            // removing a killed run's leftovers
	Running map[string]time.Duration // node → from create to Running
	Delete  time.Duration            // from delete to gone, every pod
}

// StartTimeout bounds how long a pod may take to run (image pull
// included) before the run gives up.
const StartTimeout = 2 * time.Minute

// Start removes a killed run's leftovers (Sweep), then creates an agent pod
// on each node and waits until all run. On any error the pods made so far
// are deleted again.
func Start(ctx context.Context, conn *k8s.Conn, cfg PodConfig, nodes []string, log func(string)) (*Agents, error) {
	if len(nodes) == 0 {
		return nil, errors.New("no node to start agents on")
	}
	a := &Agents{conn: conn, cfg: cfg, Run: newRunID(), Pods: map[string]string{}, Times: Times{Running: map[string]time.Duration{}}}
	t0 := time.Now()
	swept, err := Sweep(ctx, conn, cfg.Namespace)
	a.Times.Sweep = time.Since(t0)
	if err != nil {
		return nil, err
	}
	for _, s := range swept {
		log(s)
	}
	owner := Self()
	deadline := time.Now().Add(cfg.Lifetime)
	pods := conn.Client.Pods(cfg.Namespace)
	created := map[string]time.Time{}
	for i, node := range nodes {
		socket, err := a.runtimeSocket(ctx, node)
		if err != nil {
			a.Close()
			return nil, err
		}
		name := fmt.Sprintf("pathtrace-%s-%d", a.Run, i)
		created[node] = time.Now()
		if _, err := pods.Create(ctx, podFor(cfg, a.Run, name, node, socket, owner, deadline), metav1.CreateOptions{}); err != nil {
			a.Close()
			return nil, a.createError(err, node)
		}
		a.Pods[node] = name
	}
	if err := a.waitRunning(ctx, created); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// runtimeSocket is the CRI socket of the node's runtime, "" for a runtime
// pathtrace does not know (the agent then finds the pod by its IP alone).
func (a *Agents) runtimeSocket(ctx context.Context, node string) (string, error) {
	n, err := a.conn.Client.Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("node %s does not exist (API server %s)", node, a.conn.Server)
	}
	if err != nil {
		return "", a.conn.APIError(err, "get", "nodes", "", "deploy/rbac/pathtrace.yaml")
	}
	return criSocket(n.Status.NodeInfo.ContainerRuntimeVersion), nil
}

// newRunID is 8 random hex digits: unique enough for the pods of one
// namespace, short enough for their names.
func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// createError says what stopped the first pod: a missing namespace, a
// refusal by RBAC or by Pod Security admission.
func (a *Agents) createError(err error, node string) error {
	ns := a.cfg.Namespace
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("agent namespace %s does not exist (API server %s): create it with %s, or give --agent-namespace", ns, a.conn.Server, Manifest)
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "error looking up service account"):
		return fmt.Errorf("the agents' service account %s/%s does not exist (API server %s): create it with %s, or give --agent-service-account",
			ns, a.cfg.ServiceAccount, a.conn.Server, Manifest)
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
		return fmt.Errorf("namespace %s does not allow agent pods (hostNetwork, hostPID, capabilities): label it pod-security.kubernetes.io/enforce=privileged (%s does), or give --agent-namespace (%s)",
			ns, Manifest, oneLine(err))
	}
	return fmt.Errorf("agent pod on node %s: %w", node, a.conn.APIError(err, "create", "pods", ns, Manifest))
}

// waitRunning polls the run's pods until every one runs, failing at once
// for a pod that cannot (image not pullable, container not creatable, pod
// failed) and after StartTimeout. (Polling, not a watch: the RBAC manifest
// grants list, and a start takes a second or two.)
func (a *Agents) waitRunning(ctx context.Context, created map[string]time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	pods := a.conn.Client.Pods(a.cfg.Namespace)
	sel := metav1.ListOptions{LabelSelector: LabelRun + "=" + a.Run}
	last := map[string]*corev1.Pod{}
	for {
		list, err := pods.List(ctx, sel)
		if err != nil && ctx.Err() == nil {
			return a.conn.APIError(err, "list", "pods", a.cfg.Namespace, Manifest)
		}
		if err == nil {
			for i := range list.Items {
				p := &list.Items[i]
				node := p.Spec.NodeName
				last[node] = p
				if _, done := a.Times.Running[node]; done {
					continue
				}
				if err := podFailed(p); err != nil {
					return err
				}
				if p.Status.Phase == corev1.PodRunning {
					a.Times.Running[node] = time.Since(created[node])
				}
			}
			if len(a.Times.Running) == len(a.Pods) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return a.notRunning(ctx, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notRunning is the error for pods still not running when the wait ends.
func (a *Agents) notRunning(ctx context.Context, last map[string]*corev1.Pod) error {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		var which []string
		for node, name := range a.Pods {
			st := "not seen"
			if p := last[node]; p != nil {
				if p.Status.Phase == corev1.PodRunning {
					continue
				}
				st = podState(p)
			}
			which = append(which, fmt.Sprintf("%s on node %s (%s)", name, node, st))
		}
		return fmt.Errorf("agent pods not running after %v: %s; kubectl describe pod -n %s says why", StartTimeout, strings.Join(which, ", "), a.cfg.Namespace)
	}
	return fmt.Errorf("starting agent pods: %w", context.Cause(ctx))
}

// podFailed is an error for a pod that will not run as it is.
func podFailed(p *corev1.Pod) error {
	where := fmt.Sprintf("agent pod %s/%s on node %s", p.Namespace, p.Name, p.Spec.NodeName)
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return fmt.Errorf("%s ended (%s)", where, podState(p))
	}
	for _, cs := range p.Status.ContainerStatuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
			return fmt.Errorf("%s: image %s cannot be pulled (%s: %s): put it on the node (pathtrace image --out pathtrace.tar; README: \"Cluster mode\") or give --image",
				where, cs.Image, w.Reason, oneLineString(w.Message))
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
			return fmt.Errorf("%s: container not started (%s: %s); a runtime that does not know a capability may need --agent-privileged",
				where, w.Reason, oneLineString(w.Message))
		}
	}
	return nil
}

// podState is a pod's phase and its container's reason, for messages.
func podState(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	if p.Status.Reason != "" {
		s += ", " + p.Status.Reason
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			s += ", " + w.Reason
		}
		if t := cs.State.Terminated; t != nil {
			s += fmt.Sprintf(", exited %d (%s)", t.ExitCode, t.Reason)
		}
	}
	if p.Status.Message != "" {
		s += ": " + oneLineString(p.Status.Message)
	}
	return s
}

// DeleteTimeout bounds waiting for a deleted pod to be gone; a kubelet that
// never confirms (its node down) gets the pod removed by force after it.
const DeleteTimeout = 20 * time.Second

// Close deletes the run's pods and waits until they are gone. It is safe to
// call more than once and from a signal's cleanup; it does not take the
// run's context (which a Ctrl-C has cancelled).
func (a *Agents) Close() error {
	a.closeOnce.Do(func() {
		t0 := time.Now()
		a.closeErr = deletePods(a.conn, a.cfg.Namespace, LabelRun+"="+a.Run, valuesOf(a.Pods))
		a.Times.Delete = time.Since(t0)
	})
	return a.closeErr
}

func valuesOf(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// deletePods deletes the named pods (grace period 2 s: the idle agent
// exits at once on SIGTERM; the kubelet kills the captures exec'd beside
// it) and waits until the selector matches none of them; those a kubelet
// has not confirmed after DeleteTimeout are removed by force.
func deletePods(conn *k8s.Conn, ns, selector string, names []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), DeleteTimeout)
	defer cancel()
	pods := conn.Client.Pods(ns)
	grace := int64(2)
	var errs []error
	for _, n := range names {
		err := pods.Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, conn.APIError(err, "delete", "pods", ns, Manifest))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	left, err := waitGone(ctx, pods, selector, names)
	if err == nil || len(left) == 0 {
		return err
	}
	force := int64(0)
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	for _, n := range left {
		if ferr := pods.Delete(fctx, n, metav1.DeleteOptions{GracePeriodSeconds: &force}); ferr != nil && !apierrors.IsNotFound(ferr) {
			errs = append(errs, conn.APIError(ferr, "delete", "pods", ns, Manifest))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("agent pods %s not gone after %v (%v), and removing them by force failed: %w", strings.Join(left, ", "), DeleteTimeout, err, errors.Join(errs...))
	}
	return &ForcedRemoval{Pods: left}
}

// ForcedRemoval is deletePods' note that pods are gone from the API only
// by force: not a failure (nothing is left to delete), but worth a line.
type ForcedRemoval struct{ Pods []string }

func (f *ForcedRemoval) Error() string {
	return fmt.Sprintf("agent pods %s were removed by force: their kubelet did not confirm the deletion within %v (the node may be down; it kills their containers when it syncs)", strings.Join(f.Pods, ", "), DeleteTimeout)
}

// noteForced logs a forced removal and returns nil for it; other errors
// are returned as they are.
func noteForced(err error, log func(string)) error {
	var fr *ForcedRemoval
	if errors.As(err, &fr) {
		log("pathtrace: " + fr.Error())
		return nil
	}
	return err
}

// waitGone polls until none of names is left; the ones left when ctx ends.
func waitGone(ctx context.Context, pods podLister, selector string, names []string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	for {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector})
		var left []string
		if err == nil {
			for _, p := range list.Items {
				if want[p.Name] {
					left = append(left, p.Name)
				}
			}
			if len(left) == 0 {
				return nil, nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return names, err
			}
			return left, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// podLister is the part of the pods client waitGone uses.
type podLister interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
}

func oneLine(err error) string { return oneLineString(err.Error()) }

func oneLineString(s string) string { return strings.Join(strings.Fields(s), " ") }
