package k8s

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/pathtrace/pathtrace/discover"
)

// Agent mode (`pathtrace capture`) captures one node's part of a path:
// the endpoint on this node is resolved as the tracer resolves it, the
// other one only to its address, wherever it runs.

// ResolvePeer resolves the far endpoint of an agent's capture: a pod (NAME,
// NAMESPACE/NAME, pod/NAME) on any node, to discover.Remote of its IP,
// named after the pod. It never looks for a namespace on this node.
func (r *Resolver) ResolvePeer(arg string) (discover.Endpoint, error) {
	ref, err := parseRef(arg)
	if err != nil {
		return discover.Endpoint{}, noMatch("%v", err)
	}
	if ref.kind != kindBare && ref.kind != kindPod {
		return discover.Endpoint{}, noMatch("%q is a %s: the other node's endpoint is a pod (NAME, NAMESPACE/NAME, pod/NAME) or an IP address", arg, ref.kind)
	}
	c, err := r.client()
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("pod %s: %w", ref.name, err)
	}
	ns := ref.namespace
	if ns == "" {
		ns = c.namespace
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*defaultRequestTimeout)
	defer cancel()
	pod, err := c.cs.Pods(ns).Get(ctx, ref.name, getOpts)
	if apierrors.IsNotFound(err) {
		return discover.Endpoint{}, noMatch("no pod %q in namespace %s (context %s, API server %s); kubectl get pods -n %s lists them", ref.name, ns, c.context, c.server, ns)
	}
	if err != nil {
		return discover.Endpoint{}, c.apiError(err, "get", "pods", ns)
	}
	info := podInfo(pod)
	if pod.Status.Phase != corev1.PodRunning || !info.IP.IsValid() {
		return discover.Endpoint{}, noMatch("pod %s/%s is not running with an IP (%s)", pod.Namespace, pod.Name, pod.Status.Phase)
	}
	ep := discover.Remote(info.IP)
	ep.Arg, ep.Label, ep.Pod = arg, pod.Name, info
	return ep, nil
}

// NodeName is this node's Kubernetes name where it is known without
// asking the API server unless an endpoint needed it already: --node,
// NODE_NAME, or the Node whose address or hostname is this host's; ""
// otherwise.
func (r *Resolver) NodeName() string {
	if r.o.Node == "" && os.Getenv("NODE_NAME") == "" && r.api == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), quickLook)
	defer cancel()
	return r.thisNode(ctx).name
}
