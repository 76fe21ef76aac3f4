package k8s

import (
	"k8s.io/client-go/rest"

	"github.com/pathtrace/pathtrace/internal/kube"
)

// Conn is the resolver's connection to the API server, for what goes
// through it besides names: cluster mode's agent pods.
type Conn struct {
	Client *kube.Client
	// REST is the configuration the client was made from (exec
	// streams are built from it); its Timeout bounds each request.
	REST *rest.Config
	// Server, Context and Namespace are what messages name: the API
	// server's URL, the kubeconfig context ("in-cluster" in a pod), the
	// namespace -n or the context gave.
	Server, Context, Namespace string
	c                          *client
}

// Conn connects (once) and returns the connection.
func (r *Resolver) Conn() (*Conn, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	return &Conn{Client: c.cs, REST: c.rc, Server: c.server, Context: c.context, Namespace: c.namespace, c: c}, nil
}

// APIError is a failed request as one line that names the server, the
// context and what pathtrace needed (verb, resource, namespace), and for a
// refusal the manifest that grants it.
func (c *Conn) APIError(err error, verb, resource, ns, manifest string) error {
	return c.c.apiErrorGrant(err, verb, resource, ns, manifest)
}
