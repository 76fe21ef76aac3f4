package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/netns"
)

var getOpts = metav1.GetOptions{}

// podByName gets the pod (ns "" = the current namespace) and resolves it.
// also ends the not-found message (a bare name: nor a netns).
func (r *Resolver) podByName(ctx context.Context, ns, name, also string) (discover.Endpoint, error) {
	c, err := r.client()
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("pod %s: %w", name, err)
	}
	if ns == "" {
		ns = c.namespace
	}
	pod, err := c.cs.Pods(ns).Get(ctx, name, getOpts)
	if apierrors.IsNotFound(err) {
		return discover.Endpoint{}, noMatch("no pod %q in namespace %s (context %s, API server %s)%s; kubectl get pods -n %s lists them", name, ns, c.context, c.server, also, ns)
	}
	if err != nil {
		return discover.Endpoint{}, c.apiError(err, "get", "pods", ns)
	}
	return r.pod(ctx, pod)
}

// podByIP is the pod on this node that has ip (an IP given as the
// endpoint names the pod in the report), where the API answers quickly;
// false otherwise, and the IP is resolved as before.
func (r *Resolver) podByIP(ctx context.Context, ip netip.Addr) (discover.Endpoint, bool) {
	c, err := r.client()
	if err != nil {
		return discover.Endpoint{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, quickLook)
	defer cancel()
	list, err := c.cs.Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=" + ip.String()})
	if err != nil {
		return discover.Endpoint{}, false
	}
	var found []*corev1.Pod
	for i := range list.Items {
		if p := &list.Items[i]; !p.Spec.HostNetwork && p.Status.Phase == corev1.PodRunning {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return discover.Endpoint{}, false
	}
	pod := found[0]
	if r.o.Cluster {
		return clusterPod(podInfo(pod)), true
	}
	if self := r.thisNode(ctx); self.err == nil && pod.Spec.NodeName != self.name {
		// Another node's pod, given by IP: traced to this node's egress
		// as any IP off the node is, but named.
		info := podInfo(pod)
		ep := discover.Remote(ip)
		ep.Label, ep.Pod = pod.Name, info
		ep.Notes = append(ep.Notes, fmt.Sprintf("%s is pod %s/%s on node %s: traced as far as it leaves this node %s",
			ip, pod.Namespace, pod.Name, pod.Spec.NodeName, self.name))
		return ep, true
	}
	ep, err := r.pod(ctx, pod)
	return ep, err == nil
}

// pod resolves a pod object to its endpoint on this node: the namespace of
// its sandbox (the CRI's answer, cross-checked with the namespace that
// holds the pod IP), or the node's own for a host-network pod.
func (r *Resolver) pod(ctx context.Context, pod *corev1.Pod) (discover.Endpoint, error) {
	ref := pod.Namespace + "/" + pod.Name
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		why := string(pod.Status.Phase)
		if pod.Status.PodIP == "" {
			why += ", no IP yet"
		}
		if pod.Spec.NodeName == "" {
			why += ", not scheduled to a node"
		}
		return discover.Endpoint{}, noMatch("pod %s is not running with an IP (%s): pathtrace traces running pods; kubectl describe pod -n %s %s says why", ref, why, pod.Namespace, pod.Name)
	}
	info := podInfo(pod)
	if r.o.Cluster {
		return clusterPod(info), nil
	}
	if err := r.onThisNode(ctx, ref, pod.Spec.NodeName, pod.Status.HostIP); err != nil {
		return discover.Endpoint{}, err
	}
	var ep discover.Endpoint
	var err error
	if pod.Spec.HostNetwork {
		ep, err = r.hostNetwork(info)
	} else {
		ep, err = r.sandboxEndpoint(ctx, info)
	}
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("pod %s: %w", ref, err)
	}
	ep.Label, ep.Pod = pod.Name, info
	return ep, nil
}

// clusterPod is a pod in cluster mode: its IP and node, named after it;
// the agent on its node resolves the IP to the pod's namespace there.
func clusterPod(info *discover.Pod) discover.Endpoint {
	ep := discover.Remote(info.IP)
	ep.Label, ep.Pod = info.Name, info
	if info.HostNetwork {
		ep.Host = true
		ep.Notes = append(ep.Notes, fmt.Sprintf("pod %s/%s uses the host network: its endpoint is node %s's own namespace (%s)",
			info.Namespace, info.Name, info.Node, info.IP))
	}
	return ep
}

func podInfo(pod *corev1.Pod) *discover.Pod {
	info := &discover.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID),
		Node: pod.Spec.NodeName, HostNetwork: pod.Spec.HostNetwork, ContainerIDs: []string{}}
	info.IP, _ = netip.ParseAddr(pod.Status.PodIP)
	for _, p := range pod.Status.PodIPs {
		if ip, err := netip.ParseAddr(p.IP); err == nil {
			info.IPs = append(info.IPs, ip)
		}
	}
	if len(info.IPs) < 2 {
		info.IPs = nil // the one IP is info.IP
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if _, id, ok := strings.Cut(cs.ContainerID, "://"); ok {
			info.ContainerIDs = append(info.ContainerIDs, id)
		}
	}
	return info
}

// hostNetwork: the pod shares the node's namespace, so its endpoint is the
// node's interface holding the pod IP (the node's own address).
func (r *Resolver) hostNetwork(info *discover.Pod) (discover.Endpoint, error) {
	ep, err := discover.InNamespace(r.hostNS().path, info.IP)
	if err != nil {
		return ep, fmt.Errorf("host-network pod: %w", err)
	}
	r.names[ep.Inode] = "host"
	ep.Host = true
	ep.Notes = append(ep.Notes, fmt.Sprintf("pod %s/%s uses the host network: its endpoint is node %s's own namespace (%s %s)",
		info.Namespace, info.Name, info.Node, ep.Interface, info.IP))
	return ep, nil
}

// sandboxEndpoint finds the pod's namespace two ways: the CRI sandbox's
// netns (where a runtime socket is reachable) and the namespace holding
// the pod IP. Both must agree; either alone will do.
func (r *Resolver) sandboxEndpoint(ctx context.Context, info *discover.Pod) (discover.Endpoint, error) {
	byIP, ipErr := r.local.Resolve(info.IP.String())
	sb, criErr := r.sandbox(ctx, info.UID)
	if criErr != nil {
		if errors.Is(criErr, errNoCRI) && r.o.CRIEndpoint == "" {
			if ipErr != nil {
				return discover.Endpoint{}, fmt.Errorf("pod IP %s: %w", info.IP, ipErr)
			}
			return byIP, nil
		}
		return discover.Endpoint{}, criErr
	}
	if sb.hostNetwork {
		return discover.Endpoint{}, fmt.Errorf("the runtime runs its sandbox %s in the host network, the API server says it has its own", sb.id)
	}
	if len(sb.ips) > 0 && !slices.Contains(sb.ips, info.IP) {
		return discover.Endpoint{}, fmt.Errorf("the runtime's sandbox %s has IPs %v, the API server says %s: a stale pod status?", sb.id, sb.ips, info.IP)
	}
	path, inode, err := openFirst(sb.netnsPaths())
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("sandbox %s network namespace: %w", sb.id, err)
	}
	if ipErr == nil && byIP.Inode != inode {
		return discover.Endpoint{}, fmt.Errorf("pod IP %s is in network namespace %s (inode %d), but the runtime's sandbox %s is in %s (inode %d): stale namespace or duplicate IP",
			info.IP, byIP.NetnsPath, byIP.Inode, sb.id, path, inode)
	}
	ep, err := discover.InNamespace(path, info.IP)
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("sandbox %s: %w", sb.id, err)
	}
	return ep, nil
}

// sandbox asks the runtime for the pod's sandbox.
func (r *Resolver) sandbox(ctx context.Context, uid string) (*sandbox, error) {
	c, err := r.runtimeClient()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, criTimeout)
	defer cancel()
	return c.sandboxOf(ctx, uid)
}

// openFirst opens the first of paths that is a network namespace.
func openFirst(paths []string) (string, uint64, error) {
	var errs []error
	for _, p := range paths {
		h, err := netns.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.Close()
		return p, h.Inode, nil
	}
	return "", 0, errors.Join(errs...)
}
