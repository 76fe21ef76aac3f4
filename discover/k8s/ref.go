package k8s

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// kind is what an endpoint argument names.
type kind uint8

const (
	kindLocal    kind = iota // IP, PID, namespace path: discover's own resolver
	kindBare                 // NAME: a netns on the node, else a pod
	kindPod                  // pod/NAME, NS/NAME
	kindService              // svc/NAME[:PORT]
	kindWorkload             // deploy/NAME, sts/…, ds/…, rs/…, job/…
	kindNode                 // node/NAME, host
)

var kindNames = [...]string{"local", "name", "pod", "service", "workload", "node"}

func (k kind) String() string { return kindNames[k] }

// ref is a parsed endpoint argument.
type ref struct {
	kind      kind
	resource  string // workloads: deployments, statefulsets, …
	namespace string // "" = the current namespace
	name      string
	port      uint16 // svc/NAME:PORT
}

// resources maps kubectl's names and short names to what pathtrace resolves.
var resources = map[string]struct {
	kind     kind
	resource string
}{
	"pod": {kindPod, "pods"}, "pods": {kindPod, "pods"}, "po": {kindPod, "pods"},
	"svc": {kindService, "services"}, "service": {kindService, "services"}, "services": {kindService, "services"},
	"deploy": {kindWorkload, "deployments"}, "deployment": {kindWorkload, "deployments"}, "deployments": {kindWorkload, "deployments"},
	"sts": {kindWorkload, "statefulsets"}, "statefulset": {kindWorkload, "statefulsets"}, "statefulsets": {kindWorkload, "statefulsets"},
	"ds": {kindWorkload, "daemonsets"}, "daemonset": {kindWorkload, "daemonsets"}, "daemonsets": {kindWorkload, "daemonsets"},
	"rs": {kindWorkload, "replicasets"}, "replicaset": {kindWorkload, "replicasets"}, "replicasets": {kindWorkload, "replicasets"},
	"job": {kindWorkload, "jobs"}, "jobs": {kindWorkload, "jobs"},
	"node": {kindNode, "nodes"}, "nodes": {kindNode, "nodes"}, "no": {kindNode, "nodes"},
}

// parseRef reads an endpoint as kubectl users write it. What is not a
// Kubernetes form stays with discover's resolver: an IP, a PID, a path
// (absolute, ./relative, or an existing file).
func parseRef(arg string) (ref, error) {
	if _, err := netip.ParseAddr(arg); err == nil {
		return ref{kind: kindLocal, name: arg}, nil
	}
	if n, err := strconv.Atoi(arg); err == nil && n > 0 {
		return ref{kind: kindLocal, name: arg}, nil
	}
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return ref{kind: kindLocal, name: arg}, nil
	}
	if arg == "host" {
		return ref{kind: kindNode}, nil
	}
	first, rest, ok := strings.Cut(arg, "/")
	if !ok {
		return ref{kind: kindBare, name: arg}, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return ref{kind: kindLocal, name: arg}, nil // a relative namespace path
	}
	if first == "" || rest == "" || strings.Count(rest, "/") > 0 {
		return ref{}, fmt.Errorf("%q: want NAME, NAMESPACE/POD, pod/NAME, svc/NAME[:PORT], deploy/NAME (sts, ds, rs, job), node/NAME or host", arg)
	}
	r, known := resources[strings.ToLower(first)]
	if !known {
		return ref{kind: kindPod, namespace: first, name: rest}, nil
	}
	out := ref{kind: r.kind, resource: r.resource, name: rest}
	if r.kind == kindService {
		if name, port, ok := strings.Cut(rest, ":"); ok {
			p, err := strconv.ParseUint(port, 10, 16)
			if err != nil || p == 0 {
				return ref{}, fmt.Errorf("%q: port %q is not a port number", arg, port)
			}
			out.name, out.port = name, uint16(p)
		}
	}
	return out, nil
}
