package k8s

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Without a kubeconfig and outside a pod, client-go would fall back to
// http://localhost:8080: connect says there is no Kubernetes instead, and
// with a kubeconfig the context's namespace is the default.
func TestConnectConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := connect(genericclioptions.NewConfigFlags(false)); !errors.Is(err, errNoConfig) {
		t.Fatalf("no config: %v, want errNoConfig", err)
	}
	kc := filepath.Join(home, "kc")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://192.0.2.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: a, context: {cluster: c, user: u, namespace: shop}}
- {name: b, context: {cluster: c, user: u}}
current-context: a
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	c, err := connect(genericclioptions.NewConfigFlags(false))
	if err != nil || c.namespace != "shop" || c.context != "a" || c.server != "https://192.0.2.1:6443" || c.user != "u" {
		t.Fatalf("connect = %+v, %v", c, err)
	}
	cf := genericclioptions.NewConfigFlags(false)
	*cf.Context = "b"
	if c, err = connect(cf); err != nil || c.namespace != "default" || c.context != "b" {
		t.Fatalf("--context b: %+v, %v", c, err)
	}
}
