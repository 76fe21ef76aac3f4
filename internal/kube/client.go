// Package kube is the few Kubernetes API calls pathtrace makes (pods,
// nodes, Services, EndpointSlices, a workload's selector, exec), over
// client-go's REST client with a scheme of only the types it reads.
//
// Why not client-go's Clientset: its scheme registers every API group at
// start-up, which costs every run of pathtrace (also `analyze`, which never
// talks to a cluster) ~10 MiB of resident memory and doubles the binary;
// with cli-runtime's flags (kustomize, OpenAPI) it was ~16 MiB of the
// 64 MiB an analysis may use (issue #15).
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

var (
	scheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		// Each registers its group's types and metav1's options and Status.
		for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme} {
			if err := add(s); err != nil {
				panic(err)
			}
		}
		return s
	}()
	codecs = serializer.NewCodecFactory(scheme)
	params = runtime.NewParameterCodec(scheme)
)

// Client is a connection to one API server.
type Client struct {
	rest *rest.RESTClient // core/v1; other groups by absolute path
}

// New returns a client for rc (its Timeout bounds each request).
func New(rc *rest.Config) (*Client, error) {
	cfg := rest.CopyConfig(rc)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = codecs.WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rcl, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", rc.Host, err)
	}
	return &Client{rest: rcl}, nil
}

// get reads core/v1 object name of resource in namespace ns ("": a
// cluster-scoped resource) into out.
func (c *Client) get(ctx context.Context, ns, resource, name string, o *metav1.GetOptions, out runtime.Object) error {
	return c.in(ns).Resource(resource).Name(name).VersionedParams(o, params).Do(ctx).Into(out)
}

// list reads the core/v1 resource's objects in namespace ns ("": every
// namespace, or a cluster-scoped resource) into out.
func (c *Client) list(ctx context.Context, ns, resource string, o *metav1.ListOptions, out runtime.Object) error {
	return c.in(ns).Resource(resource).VersionedParams(o, params).Do(ctx).Into(out)
}

// in starts a GET in namespace ns; "" sets none (client-go refuses an
// empty namespace beside a name).
func (c *Client) in(ns string) *rest.Request {
	r := c.rest.Get()
	if ns != "" {
		r = r.Namespace(ns)
	}
	return r
}

// Pods are the pods of namespace ns ("": every namespace, for List).
func (c *Client) Pods(ns string) Pods { return Pods{c, ns} }

// Pods is kubectl's `get/create/delete pods` in one namespace.
type Pods struct {
	c  *Client
	ns string
}

func (p Pods) Get(ctx context.Context, name string, o metav1.GetOptions) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	return out, p.c.get(ctx, p.ns, "pods", name, &o, out)
}

func (p Pods) List(ctx context.Context, o metav1.ListOptions) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	return out, p.c.list(ctx, p.ns, "pods", &o, out)
}

func (p Pods) Create(ctx context.Context, pod *corev1.Pod, o metav1.CreateOptions) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	err := p.c.rest.Post().Namespace(p.ns).Resource("pods").VersionedParams(&o, params).Body(pod).Do(ctx).Into(out)
	return out, err
}

func (p Pods) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	return p.c.rest.Delete().Namespace(p.ns).Resource("pods").Name(name).Body(&o).Do(ctx).Error()
}

// ExecURL is the pod's exec subresource for o, as `kubectl exec` posts it.
func (p Pods) ExecURL(name string, o *corev1.PodExecOptions) *url.URL {
	return p.c.rest.Post().Namespace(p.ns).Resource("pods").Name(name).SubResource("exec").VersionedParams(o, params).URL()
}

// Nodes are the cluster's nodes.
func (c *Client) Nodes() Nodes { return Nodes{c} }

type Nodes struct{ c *Client }

func (n Nodes) Get(ctx context.Context, name string, o metav1.GetOptions) (*corev1.Node, error) {
	out := &corev1.Node{}
	return out, n.c.get(ctx, "", "nodes", name, &o, out)
}

func (n Nodes) List(ctx context.Context, o metav1.ListOptions) (*corev1.NodeList, error) {
	out := &corev1.NodeList{}
	return out, n.c.list(ctx, "", "nodes", &o, out)
}

// Services are the Services of namespace ns.
func (c *Client) Services(ns string) Services { return Services{c, ns} }

type Services struct {
	c  *Client
	ns string
}

func (s Services) Get(ctx context.Context, name string, o metav1.GetOptions) (*corev1.Service, error) {
	out := &corev1.Service{}
	return out, s.c.get(ctx, s.ns, "services", name, &o, out)
}

func (s Services) List(ctx context.Context, o metav1.ListOptions) (*corev1.ServiceList, error) {
	out := &corev1.ServiceList{}
	return out, s.c.list(ctx, s.ns, "services", &o, out)
}

// EndpointSlices lists the EndpointSlices of namespace ns.
func (c *Client) EndpointSlices(ctx context.Context, ns string, o metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	out := &discoveryv1.EndpointSliceList{}
	err := c.rest.Get().AbsPath("/apis", discoveryv1.GroupName, "v1", "namespaces", ns, "endpointslices").
		VersionedParams(&o, params).Do(ctx).Into(out)
	return out, err
}

// Workload is a resource of a group other than core named by kubectl's
// plural (deployments in apps/v1, jobs in batch/v1): pathtrace reads only
// names and pod selectors of those, so it decodes only them.
type Workload struct {
	Group, Version, Resource string
}

// workloadDoc is what pathtrace reads of a workload.
type workloadDoc struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Selector *metav1.LabelSelector `json:"selector"`
	} `json:"spec"`
}

func (w Workload) path(ns string) []string {
	return []string{"/apis", w.Group, w.Version, "namespaces", ns, w.Resource}
}

// Selector is the pod selector of workload name in namespace ns (nil if it
// has none).
func (c *Client) Selector(ctx context.Context, w Workload, ns, name string) (*metav1.LabelSelector, error) {
	body, err := c.rest.Get().AbsPath(append(w.path(ns), name)...).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var d workloadDoc
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", w.Resource, ns, name, err)
	}
	return d.Spec.Selector, nil
}

// Names lists the names of the workloads w in namespace ns.
func (c *Client) Names(ctx context.Context, w Workload, ns string) ([]string, error) {
	body, err := c.rest.Get().AbsPath(w.path(ns)...).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var d struct {
		Items []workloadDoc `json:"items"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", w.Resource, ns, err)
	}
	names := make([]string, len(d.Items))
	for i, it := range d.Items {
		names[i] = it.Metadata.Name
	}
	return names, nil
}
