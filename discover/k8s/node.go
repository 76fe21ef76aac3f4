package k8s

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/discover"
)

// selfNode is which Node this host is, and how that was decided.
type selfNode struct {
	name string
	how  string // "--node", "NODE_NAME", "address 10.0.0.5", …
	err  error  // the Nodes could not be listed or none matched
}

// thisNode decides once: --node, else NODE_NAME, else the Node one of
// whose addresses is on this host's interfaces or whose hostname is this
// host's (kubelet registers the lowercased hostname by default).
func (r *Resolver) thisNode(ctx context.Context) selfNode {
	r.nodeOnce.Do(func() {
		switch {
		case r.o.Node != "":
			r.node = selfNode{name: r.o.Node, how: "--node"}
		case os.Getenv("NODE_NAME") != "":
			r.node = selfNode{name: os.Getenv("NODE_NAME"), how: "NODE_NAME"}
		default:
			r.node = r.findNode(ctx)
		}
	})
	return r.node
}

func (r *Resolver) findNode(ctx context.Context) selfNode {
	c, err := r.client()
	if err != nil {
		return selfNode{err: err}
	}
	nodes, err := c.cs.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return selfNode{err: c.apiError(err, "list", "nodes", "")}
	}
	local := localAddrs()
	host, _ := os.Hostname()
	host = strings.ToLower(host)
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			switch a.Type {
			case corev1.NodeInternalIP, corev1.NodeExternalIP:
				if ip, err := netip.ParseAddr(a.Address); err == nil && local[ip] {
					return selfNode{name: n.Name, how: "address " + a.Address}
				}
			case corev1.NodeHostName:
				if strings.ToLower(a.Address) == host {
					return selfNode{name: n.Name, how: "hostname " + host}
				}
			}
		}
		if n.Name == host {
			return selfNode{name: n.Name, how: "hostname " + host}
		}
	}
	return selfNode{err: fmt.Errorf("none of the %d Nodes has an address of this host or its hostname %q: give --node or NODE_NAME", len(nodes.Items), host)}
}

// localAddrs are the addresses of this namespace's interfaces.
func localAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}

// onThisNode fails, at once and in one line, for a pod on another node:
// never a silent trace to the wrong place. Where the Nodes cannot be
// listed, the pod's host IP on this host's interfaces decides.
func (r *Resolver) onThisNode(ctx context.Context, ref, podNode, hostIP string) error {
	self := r.thisNode(ctx)
	if self.err != nil {
		ip, err := netip.ParseAddr(hostIP)
		if err == nil && localAddrs()[ip] {
			return nil
		}
		return noMatch("pod %s runs on node %s (host IP %s), and which node this is is unknown (%v)", ref, podNode, hostIP, self.err)
	}
	if podNode == self.name {
		return nil
	}
	return noMatch("pod %s runs on node %s, not on this node %s (by %s): run pathtrace on %s, or trace across nodes with --cluster", ref, podNode, self.name, self.how, podNode)
}

// nodeEndpoint is node/NAME or host: the node's own namespace, its main
// interface (the default route's).
func (r *Resolver) nodeEndpoint(ctx context.Context, name string) (discover.Endpoint, error) {
	label := "host"
	if name != "" {
		self := r.thisNode(ctx)
		if self.err != nil {
			return discover.Endpoint{}, fmt.Errorf("node/%s: which node this is is unknown: %w", name, self.err)
		}
		if self.name != name {
			return discover.Endpoint{}, noMatch("node/%s is not this node %s (by %s): run pathtrace on %s", name, self.name, self.how, name)
		}
		label = name
	}
	ep, err := discover.InNamespace(r.hostNS().path, netip.Addr{})
	if err != nil {
		return ep, fmt.Errorf("the node's namespace: %w", err)
	}
	ep.Label, ep.Host = label, true
	r.names[ep.Inode] = "host"
	return ep, nil
}

// NodeNames maps the cluster's Node addresses (internal and external) to
// their names, so a path that crosses into another node's namespace (a
// test cluster on one machine) names its points after the node. nil when
// no Kubernetes client was needed or the Nodes cannot be listed.
func (r *Resolver) NodeNames() map[netip.Addr]string {
	if r.api == nil {
		return nil // no Kubernetes name was resolved: do not ask for one now
	}
	c, err := r.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), quickLook)
	defer cancel()
	nodes, err := c.cs.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	out := map[netip.Addr]string{}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				out[ip.Unmap()] = n.Name
			}
		}
	}
	return out
}
