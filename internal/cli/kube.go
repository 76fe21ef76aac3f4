package cli

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/discover/k8s"
	"github.com/pathtrace/pathtrace/internal/kube"
)

// kubeOptions are the Kubernetes flags of the tracer: kubectl's own
// (internal/kube), and where this node and its container runtime are.
type kubeOptions struct {
	config      *kube.Flags
	node        string
	criEndpoint string
}

func (k *kubeOptions) addFlags(cmd *cobra.Command) {
	// Only what a node-local tool needs; --cluster is left for pathtrace's
	// own cluster mode, --timeout is the probes' (kubectl's is
	// --request-timeout).
	cf := kube.NewFlags()
	cf.AddFlags(cmd.Flags())
	// Its default stays kubectl's "0" (a changed default would make
	// client-go take the flags for a configuration and skip in-cluster);
	// pathtrace reads 0 as 10 s.
	if f := cmd.Flags().Lookup("request-timeout"); f != nil {
		f.Usage = "how long to wait for each API server request, e.g. 5s (0: 10s; an unreachable API server must not hold up a trace)"
	}
	k.config = cf
	f := cmd.Flags()
	f.StringVar(&k.node, "node", "", "this node's Kubernetes name (default: $NODE_NAME, else the Node with this host's address or hostname)")
	f.StringVar(&k.criEndpoint, "cri-endpoint", "", "container runtime's CRI socket (default: the first of /run/containerd/containerd.sock, /run/crio/crio.sock, …)")
	for _, name := range []string{"src", "dst"} {
		cmd.RegisterFlagCompletionFunc(name, k.completeEndpoint)
	}
}

// resolver is the endpoint resolver for these flags.
func (k *kubeOptions) resolver() *k8s.Resolver {
	return k8s.New(k8s.Options{Config: k.config, Node: k.node, CRIEndpoint: k.criEndpoint})
}

// completeEndpoint offers the network namespaces of the node, then, where
// the API answers within 2 s, the pods of the namespace (and NS/ for
// another namespace's, svc/, deploy/).
func (k *kubeOptions) completeEndpoint(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var out []string
	if entries, err := os.ReadDir("/run/netns"); err == nil && !strings.Contains(toComplete, "/") {
		for _, e := range entries {
			out = append(out, e.Name())
		}
		out = append(out, "host")
	}
	out = append(out, k.completeAPI(toComplete)...)
	var keep []string
	for _, s := range out {
		if strings.HasPrefix(s, toComplete) {
			keep = append(keep, s)
		}
	}
	sort.Strings(keep)
	return keep, cobra.ShellCompDirectiveNoFileComp
}

func (k *kubeOptions) completeAPI(toComplete string) []string {
	if k.config == nil {
		return nil
	}
	rc, err := k.config.RESTConfig()
	if err != nil {
		return nil
	}
	rc.Timeout = 2 * time.Second
	cs, err := kube.New(rc)
	if err != nil {
		return nil
	}
	ns := k.config.Namespace()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	prefix, _, hasSlash := strings.Cut(toComplete, "/")
	var out []string
	add := func(pre, name string) { out = append(out, pre+name) }
	opts := metav1.ListOptions{}
	switch {
	case !hasSlash:
		if l, err := cs.Pods(ns).List(ctx, opts); err == nil {
			for _, p := range l.Items {
				add("", p.Name)
			}
		}
		out = append(out, "pod/", "svc/", "deploy/", "node/")
	case prefix == "svc" || prefix == "service":
		if l, err := cs.Services(ns).List(ctx, opts); err == nil {
			for _, s := range l.Items {
				add(prefix+"/", s.Name)
			}
		}
	case prefix == "deploy" || prefix == "deployment":
		if names, err := cs.Names(ctx, kube.Workload{Group: "apps", Version: "v1", Resource: "deployments"}, ns); err == nil {
			for _, n := range names {
				add(prefix+"/", n)
			}
		}
	case prefix == "node":
		if l, err := cs.Nodes().List(ctx, opts); err == nil {
			for _, n := range l.Items {
				add("node/", n.Name)
			}
		}
	default: // pod/NAME or NAMESPACE/NAME
		podNS := prefix
		if prefix == "pod" || prefix == "po" || prefix == "pods" {
			podNS = ns
		}
		if l, err := cs.Pods(podNS).List(ctx, opts); err == nil {
			for _, p := range l.Items {
				add(prefix+"/", p.Name)
			}
		}
	}
	return out
}

// commandName is how the user called pathtrace: `kubectl pathtrace` when
// kubectl found it as its plugin kubectl-pathtrace.
func commandName() string {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-pathtrace") {
		return "kubectl pathtrace"
	}
	return "pathtrace"
}
