// Package k8s resolves endpoints as kubectl users name them (pods, Services,
// workloads, nodes) to network namespaces on this node, through the
// Kubernetes API (client-go's REST client and kubeconfig handling, with
// kubectl's flags: internal/kube) and the container runtime's CRI socket. What is
// not a Kubernetes name (a netns name, a path, a PID, an IP) goes to
// discover's own resolver, so the lab and `ip netns` users keep working.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/kube"
)

// Options configure the resolver; the CLI fills them from its flags.
type Options struct {
	// Config is kubectl's flags (--kubeconfig, --context, -n, …); nil:
	// the defaults (KUBECONFIG, ~/.kube/config, in-cluster).
	Config *kube.Flags
	// Node is this node's name (--node); "" = NODE_NAME, else the Node
	// whose address or hostname is this host's.
	Node string
	// CRIEndpoint is the runtime's socket (--cri-endpoint); "" = the
	// usual paths.
	CRIEndpoint string
	// Cluster resolves pods on any node (cluster mode): an endpoint is
	// the pod as the API server knows it (IP, node), with no network
	// namespace on this machine; the agents on its node find that.
	Cluster bool
}

// Resolver implements discover.Resolver for Kubernetes names, and
// discover.Namer so the report names namespaces after the pods.
type Resolver struct {
	o     Options
	local discover.Resolver

	apiOnce sync.Once
	api     *client
	apiErr  error

	nodeOnce sync.Once
	node     selfNode

	criOnce sync.Once
	cri     *cri
	criErr  error

	selfOnce sync.Once
	self     nsID              // this process's network namespace: the node's
	names    map[uint64]string // netns inode → pod name, the node's → "host"
	used     map[string]string // point labels given out → who has it (collisions)
}

// New returns a resolver; nothing is contacted until an endpoint needs it.
func New(o Options) *Resolver {
	if o.Config == nil {
		o.Config = kube.NewFlags()
	}
	return &Resolver{o: o, local: discover.NewResolver(), names: map[uint64]string{}, used: map[string]string{}}
}

// NetnsNames is every namespace the resolver named (pods, "host"), by
// inode, for discover.NetnsNames.
func (r *Resolver) NetnsNames() map[uint64]string { return r.names }

// Close releases the CRI connection.
func (r *Resolver) Close() error {
	if r.cri != nil {
		return r.cri.Close()
	}
	return nil
}

// Resolve turns one endpoint argument into an Endpoint.
func (r *Resolver) Resolve(arg string) (discover.Endpoint, error) {
	arg = strings.TrimSpace(arg)
	ref, err := parseRef(arg)
	if err != nil {
		return discover.Endpoint{}, noMatch("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*defaultRequestTimeout)
	defer cancel()
	if r.o.Cluster {
		return r.resolveCluster(ctx, arg, ref)
	}
	var ep discover.Endpoint
	switch ref.kind {
	case kindLocal:
		if ip, err := netip.ParseAddr(arg); err == nil {
			if ep, ok := r.podByIP(ctx, ip.Unmap()); ok {
				ep.Arg = arg
				if ep.NetnsPath != "" {
					r.unique(&ep)
				}
				r.names[r.hostNS().inode] = "host"
				return ep, nil
			}
		}
		return r.local.Resolve(arg)
	case kindBare:
		ep, err = r.bare(ctx, arg)
	case kindPod, kindService, kindWorkload:
		ep, err = r.apiEndpoint(ctx, ref)
	case kindNode:
		ep, err = r.nodeEndpoint(ctx, ref.name)
	}
	if err != nil {
		return discover.Endpoint{}, err
	}
	ep.Arg = arg
	r.unique(&ep)
	if ep.Pod != nil || ref.kind == kindNode {
		// Kubernetes names in the report: the node's namespace is "host".
		r.names[r.hostNS().inode] = "host"
	}
	return ep, nil
}

// resolveCluster is Resolve in cluster mode: Kubernetes names only (a pod
// IP too), on any node; nothing on this machine is looked at.
func (r *Resolver) resolveCluster(ctx context.Context, arg string, ref ref) (discover.Endpoint, error) {
	var ep discover.Endpoint
	var err error
	switch ref.kind {
	case kindBare:
		ep, err = r.podByName(ctx, "", arg, "")
	case kindPod, kindService, kindWorkload:
		ep, err = r.apiEndpoint(ctx, ref)
	case kindLocal:
		ip, perr := netip.ParseAddr(arg)
		if perr != nil {
			return ep, noMatch("%q: with --cluster an endpoint is a pod, svc/, deploy/, sts/, ds/, rs/, job/ or a pod IP (network namespaces and PIDs are a node's own: run pathtrace there)", arg)
		}
		var ok bool
		if ep, ok = r.podByIP(ctx, ip.Unmap()); !ok {
			return ep, noMatch("%s is not the IP of exactly one running pod (with --cluster an IP must be a pod's)", ip)
		}
	default:
		return ep, noMatch("%q: with --cluster an endpoint is a pod, svc/, deploy/, sts/, ds/, rs/, job/ or a pod IP (%s is a node's own: run pathtrace there)", arg, ref.kind)
	}
	if err != nil {
		return discover.Endpoint{}, err
	}
	ep.Arg = arg
	return ep, nil
}

// apiEndpoint resolves what only the API server names: pod/NAME and
// NS/NAME, svc/, the workloads.
func (r *Resolver) apiEndpoint(ctx context.Context, ref ref) (discover.Endpoint, error) {
	switch ref.kind {
	case kindService:
		return r.service(ctx, ref)
	case kindWorkload:
		return r.workload(ctx, ref)
	}
	return r.podByName(ctx, ref.namespace, ref.name, "")
}

// bare is NAME: a network namespace on the node stays one; otherwise a pod
// in the current namespace. Both: ambiguous.
func (r *Resolver) bare(ctx context.Context, name string) (discover.Endpoint, error) {
	netnsFile := filepath.Join("/run/netns", name)
	_, serr := os.Stat(netnsFile)
	isNetns := serr == nil
	c, err := r.client()
	if err != nil {
		if isNetns {
			return r.local.Resolve(name) // no Kubernetes here: a netns name, as before
		}
		if errors.Is(err, errNoConfig) {
			ep, lerr := r.local.Resolve(name)
			if lerr != nil {
				// One line still: the pod form joins the list of forms.
				lerr = reworded{lerr, strings.Replace(lerr.Error(), discover.HowToGive,
					"an endpoint is a pod (no kubeconfig here), a netns name, a namespace path, a PID or an IP address", 1)}
			}
			return ep, lerr
		}
		return discover.Endpoint{}, err
	}
	if isNetns {
		// A netns of that name: only a pod of the same name makes it
		// ambiguous. A quick look: an API server that does not answer
		// must not hold up a trace of a plain netns.
		qctx, cancel := context.WithTimeout(ctx, quickLook)
		defer cancel()
		if _, perr := c.cs.Pods(c.namespace).Get(qctx, name, getOpts); perr == nil {
			return discover.Endpoint{}, ambiguous("%q is both network namespace %s and pod %s/%s (context %s): write %s for the namespace or pod/%s for the pod",
				name, netnsFile, c.namespace, name, c.context, netnsFile, name)
		}
		return r.local.Resolve(name)
	}
	return r.podByName(ctx, "", name, ", and no network namespace of that name on this node")
}

// unique keeps point names apart: two pods of one name in different
// namespaces become NAME.NAMESPACE.
func (r *Resolver) unique(ep *discover.Endpoint) {
	who := ep.NetnsPath
	if ep.Pod != nil {
		who = ep.Pod.Namespace + "/" + ep.Pod.Name
	}
	if prev, ok := r.used[ep.Label]; ok && prev != who && ep.Pod != nil {
		ep.Label += "." + ep.Pod.Namespace
	}
	r.used[ep.Label] = who
	if ep.Pod != nil && !ep.Pod.HostNetwork {
		r.names[ep.Inode] = ep.Label
	}
}

// nsID is a network namespace: a stable path and its inode.
type nsID struct {
	path  string
	inode uint64
}

// ownNetns is the namespace this process runs in, the node's: its inode,
// read on a locked thread (threads switched by netns.Do are never shared),
// and the path of a process there that is not this one (pid 1 on a node's
// host, the kubelet in the test cluster), so no thread switching of our
// own changes what the path names.
func ownNetns() nsID {
	runtime.LockOSThread()
	var st unix.Stat_t
	err := unix.Stat("/proc/thread-self/ns/net", &st)
	runtime.UnlockOSThread()
	if err != nil {
		return nsID{}
	}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		p := fmt.Sprintf("/proc/%d/ns/net", pid)
		var ps unix.Stat_t
		if unix.Stat(p, &ps) == nil && ps.Ino == st.Ino {
			return nsID{path: p, inode: st.Ino}
		}
	}
	return nsID{path: fmt.Sprintf("/proc/%d/ns/net", self), inode: st.Ino}
}

// hostNS is the node's own namespace, found once.
func (r *Resolver) hostNS() nsID {
	r.selfOnce.Do(func() { r.self = ownNetns() })
	return r.self
}

// client connects to the API once.
func (r *Resolver) client() (*client, error) {
	r.apiOnce.Do(func() { r.api, r.apiErr = connect(r.o.Config) })
	return r.api, r.apiErr
}

// runtimeClient connects to the CRI socket once; errNoCRI when there is
// none at the usual paths and none was given.
func (r *Resolver) runtimeClient() (*cri, error) {
	r.criOnce.Do(func() { r.cri, r.criErr = dialCRI(r.o.CRIEndpoint) })
	return r.cri, r.criErr
}

// quickLook bounds an API request whose answer only refines a name that
// resolves without it (a netns that might also be a pod, a pod IP).
const quickLook = 2 * time.Second

// criTimeout bounds a CRI call: the runtime is local.
const criTimeout = 5 * time.Second

// reworded is err with another message (errors.Is still sees err).
type reworded struct {
	err error
	msg string
}

func (r reworded) Error() string { return r.msg }
func (r reworded) Unwrap() error { return r.err }
