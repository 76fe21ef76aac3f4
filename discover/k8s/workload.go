package k8s

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/kube"
)

// service is svc/NAME[:PORT]: one of the Service's ready endpoints from
// its EndpointSlices, on this node where there is one. Probes then go to
// the ClusterIP and port, so the report shows what kube-proxy rewrites.
func (r *Resolver) service(ctx context.Context, ref ref) (discover.Endpoint, error) {
	c, err := r.client()
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("svc/%s: %w", ref.name, err)
	}
	ns := c.namespace
	svc, err := c.cs.Services(ns).Get(ctx, ref.name, getOpts)
	if apierrors.IsNotFound(err) {
		return discover.Endpoint{}, noMatch("no service %q in namespace %s (context %s)", ref.name, ns, c.context)
	}
	if err != nil {
		return discover.Endpoint{}, c.apiError(err, "get", "services", ns)
	}
	sp, err := servicePort(svc, ref.port)
	if err != nil {
		return discover.Endpoint{}, err
	}
	slices, err := c.cs.EndpointSlices(ctx, ns, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + ref.name})
	if err != nil {
		return discover.Endpoint{}, c.apiError(err, "list", "endpointslices.discovery.k8s.io", ns)
	}
	var cands []candidatePod
	target := uint16(sp.TargetPort.IntValue())
	for _, s := range slices.Items {
		port := slicePort(s, sp)
		for _, e := range s.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
				continue
			}
			node := ""
			if e.NodeName != nil {
				node = *e.NodeName
			}
			cands = append(cands, candidatePod{namespace: e.TargetRef.Namespace, name: e.TargetRef.Name, node: node})
			if port != 0 {
				target = port
			}
		}
	}
	what := fmt.Sprintf("svc %s/%s", ns, ref.name)
	ep, err := r.choose(ctx, what, cands)
	if err != nil {
		return ep, err
	}
	info := &discover.Service{Namespace: ns, Name: ref.name, Port: uint16(sp.Port), TargetPort: target, Protocol: string(sp.Protocol)}
	info.ClusterIP, _ = netip.ParseAddr(svc.Spec.ClusterIP)
	ep.Service = info
	if info.ClusterIP.IsValid() {
		ep.Notes = append(ep.Notes, fmt.Sprintf("%s (%s:%d) → pod %s/%s %s:%d, chosen of %d ready endpoints",
			what, info.ClusterIP, info.Port, ep.Pod.Namespace, ep.Pod.Name, ep.IP, target, len(cands)))
	} else {
		ep.Notes = append(ep.Notes, fmt.Sprintf("%s is headless: traced to pod %s/%s, chosen of %d ready endpoints",
			what, ep.Pod.Namespace, ep.Pod.Name, len(cands)))
	}
	return ep, nil
}

// servicePort is the Service's port numbered port, or its first TCP port.
func servicePort(svc *corev1.Service, port uint16) (corev1.ServicePort, error) {
	var have []string
	for _, p := range svc.Spec.Ports {
		if (port == 0 && p.Protocol == corev1.ProtocolTCP) || (port != 0 && uint16(p.Port) == port) {
			return p, nil
		}
		have = append(have, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	if port == 0 {
		return corev1.ServicePort{}, noMatch("service %s/%s has no TCP port (has %s)", svc.Namespace, svc.Name, strings.Join(have, ", "))
	}
	return corev1.ServicePort{}, noMatch("service %s/%s has no port %d (has %s)", svc.Namespace, svc.Name, port, strings.Join(have, ", "))
}

// slicePort is the slice's port for the Service port (matched by name).
func slicePort(s discoveryv1.EndpointSlice, sp corev1.ServicePort) uint16 {
	for _, p := range s.Ports {
		if p.Port != nil && (p.Name == nil && sp.Name == "" || p.Name != nil && *p.Name == sp.Name) {
			return uint16(*p.Port)
		}
	}
	return 0
}

// workload is deploy/NAME and the like: one of the pods its selector
// matches, running, on this node where there is one.
func (r *Resolver) workload(ctx context.Context, ref ref) (discover.Endpoint, error) {
	c, err := r.client()
	if err != nil {
		return discover.Endpoint{}, fmt.Errorf("%s/%s: %w", ref.resource, ref.name, err)
	}
	ns := c.namespace
	sel, err := c.cs.Selector(ctx, kube.Workload{Group: apiGroup(ref.resource), Version: "v1", Resource: ref.resource}, ns, ref.name)
	if apierrors.IsNotFound(err) {
		return discover.Endpoint{}, noMatch("no %s %q in namespace %s (context %s)", ref.resource, ref.name, ns, c.context)
	}
	if err != nil {
		return discover.Endpoint{}, c.apiError(err, "get", ref.resource+"."+apiGroup(ref.resource), ns)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return discover.Endpoint{}, fmt.Errorf("%s/%s: no usable pod selector (%v)", ref.resource, ref.name, err)
	}
	pods, err := c.cs.Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return discover.Endpoint{}, c.apiError(err, "list", "pods", ns)
	}
	var cands []candidatePod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			cands = append(cands, candidatePod{namespace: p.Namespace, name: p.Name, node: p.Spec.NodeName})
		}
	}
	what := fmt.Sprintf("%s %s/%s", ref.resource, ns, ref.name)
	ep, err := r.choose(ctx, what, cands)
	if err != nil {
		return ep, err
	}
	ep.Notes = append(ep.Notes, fmt.Sprintf("%s → pod %s/%s, chosen of %d running pods (selector %s)",
		what, ep.Pod.Namespace, ep.Pod.Name, len(cands), s))
	return ep, nil
}

func apiGroup(resource string) string {
	if resource == "jobs" {
		return "batch"
	}
	return "apps"
}

// candidatePod is a pod a Service or workload may be traced to.
type candidatePod struct{ namespace, name, node string }

// choose resolves the first candidate on this node (by name, so the choice
// is repeatable); none there: one line naming where they run.
func (r *Resolver) choose(ctx context.Context, what string, cands []candidatePod) (discover.Endpoint, error) {
	if len(cands) == 0 {
		return discover.Endpoint{}, noMatch("%s has no ready pod", what)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].name < cands[j].name })
	if r.o.Cluster { // any node will do
		return r.podByName(ctx, cands[0].namespace, cands[0].name, "")
	}
	self := r.thisNode(ctx)
	var elsewhere []string
	for _, p := range cands {
		if self.err == nil && p.node != self.name {
			elsewhere = append(elsewhere, p.name+" on "+p.node)
			continue
		}
		ep, err := r.podByName(ctx, p.namespace, p.name, "")
		if err == nil || self.err == nil {
			return ep, err
		}
		elsewhere = append(elsewhere, p.name+" on "+p.node)
	}
	if self.err != nil {
		return discover.Endpoint{}, noMatch("%s: no pod on this node (%s); which node this is is unknown: %v", what, strings.Join(elsewhere, ", "), self.err)
	}
	return discover.Endpoint{}, noMatch("%s has no ready pod on this node %s (%s): run pathtrace on one of those nodes, or trace across nodes with --cluster", what, self.name, strings.Join(elsewhere, ", "))
}

// ServicePath adjusts a path whose destination was reached through a
// Service's ClusterIP: kube-proxy's DNAT to a pod on the same bridge happens
// in the bridge itself (br_netfilter), and the rewritten frame is bridged
// on without ever reaching the bridge device. Captured promiscuously, the
// bridge would also pass the frame up to the node's stack, which routes it
// a second time: the pod gets every SYN twice. So the bridge is not a
// point of such a path; a note says why.
func ServicePath(p *discover.Path) {
	if p.Dst.Service == nil || !p.Dst.Service.ClusterIP.IsValid() {
		return
	}
	kept := p.Points[:0]
	var dropped []string
	for _, pt := range p.Points {
		if pt.Role == discover.RoleBridge {
			dropped = append(dropped, pt.Name)
			continue
		}
		kept = append(kept, pt)
	}
	p.Points = kept
	if len(dropped) > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%s not captured: frames to a ClusterIP are rewritten (DNAT) inside the bridge and bridged on without reaching %s; capturing it promiscuously would make the node deliver them twice",
			strings.Join(dropped, ", "), strings.Join(dropped, ", ")))
	}
}
