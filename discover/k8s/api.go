package k8s

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pathtrace/pathtrace/internal/kube"
)

// errNoConfig: no kubeconfig and not in a pod: names are netns names only.
var errNoConfig = errors.New("no Kubernetes configuration (no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster service account)")

// client is the API connection and what error messages name.
type client struct {
	cs        *kube.Client
	rc        *rest.Config
	server    string // https://host:port
	context   string // kubeconfig context, or "in-cluster"
	namespace string // -n, else the context's, else "default"
	user      string // kubeconfig user, for messages
}

// defaultRequestTimeout bounds each API request unless --request-timeout
// says otherwise: an unreachable API server must not hold up a trace.
const defaultRequestTimeout = 10 * time.Second

// connect builds the client from kubectl's flags and loading rules (the
// flag, KUBECONFIG, ~/.kube/config, then in-cluster).
func connect(cf *kube.Flags) (*client, error) {
	loader := cf.Loader()
	// No configuration is "no Kubernetes here" (not kubectl's fallback to
	// http://localhost:8080).
	if raw, err := loader.RawConfig(); err == nil && len(raw.Clusters) == 0 && !inCluster() &&
		cf.Overrides.ClusterInfo.Server == "" {
		return nil, errNoConfig
	}
	rc, err := loader.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errNoConfig
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if t := cf.Overrides.Timeout; t == "" || t == "0" {
		rc.Timeout = defaultRequestTimeout
	}
	rc.UserAgent = "pathtrace"
	c := &client{rc: rc, server: rc.Host, context: "in-cluster"}
	if raw, err := loader.RawConfig(); err == nil && len(raw.Contexts) > 0 {
		c.context = raw.CurrentContext
		if cf.Overrides.CurrentContext != "" {
			c.context = cf.Overrides.CurrentContext
		}
		if ctx := raw.Contexts[c.context]; ctx != nil {
			c.user = ctx.AuthInfo
		}
	}
	if c.namespace, _, err = loader.Namespace(); err != nil || c.namespace == "" {
		c.namespace = "default"
	}
	if c.cs, err = kube.New(rc); err != nil {
		return nil, err
	}
	return c, nil
}

// inCluster: the in-cluster configuration is possible (run in a pod).
func inCluster() bool {
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// apiError turns a failed request into one line that names the server, the
// context and what pathtrace needed: the verb and resource an RBAC rule
// must grant (deploy/rbac/pathtrace.yaml grants them all).
func (c *client) apiError(err error, verb, resource, ns string) error {
	return c.apiErrorGrant(err, verb, resource, ns, "deploy/rbac/pathtrace.yaml")
}

// apiErrorGrant is apiError naming the manifest that grants the verb.
func (c *client) apiErrorGrant(err error, verb, resource, ns, manifest string) error {
	where := ""
	if ns != "" {
		where = " in namespace " + ns
	}
	need := fmt.Sprintf("pathtrace needs to %s %s%s", verb, resource, where)
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("API server %s (context %s) rejected the credentials (401 Unauthorized): %s; check the token or certificate of user %q in the kubeconfig",
			c.server, c.context, need, c.user)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("API server %s (context %s) forbids it: %s (%s); grant it, e.g. with %s",
			c.server, c.context, need, oneLine(err), manifest)
	case apierrors.IsNotFound(err):
		return err
	case apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || isNetError(err):
		return fmt.Errorf("API server %s (context %s) unreachable: %s: %s", c.server, c.context, need, oneLine(err))
	}
	return fmt.Errorf("API server %s (context %s): %s: %s", c.server, c.context, need, oneLine(err))
}

// isNetError: the request never got an HTTP answer.
func isNetError(err error) bool {
	var se apierrors.APIStatus
	return !errors.As(err, &se)
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
