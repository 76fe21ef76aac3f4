package k8s

import (
	"errors"
	"testing"

	"github.com/pathtrace/pathtrace/internal/kube"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// Without a kubeconfig and outside a pod, client-go would fall back to
// http://localhost:8080: connect says there is no Kubernetes instead, and
// with a kubeconfig the context's namespace is the default.
func TestConnectConfig(t *testing.T) {
	kc := testenv.Kubeconfig(t)
	if _, err := connect(kube.NewFlags()); !errors.Is(err, errNoConfig) {
		t.Fatalf("no config: %v, want errNoConfig", err)
	}
	t.Setenv("KUBECONFIG", kc)
	c, err := connect(kube.NewFlags())
	if err != nil || c.namespace != "shop" || c.context != "a" || c.server != "https://192.0.2.1:6443" || c.user != "u" {
		t.Fatalf("connect = %+v, %v", c, err)
	}
	cf := kube.NewFlags()
	cf.Overrides.CurrentContext = "b"
	if c, err = connect(cf); err != nil || c.namespace != "default" || c.context != "b" {
		t.Fatalf("--context b: %+v, %v", c, err)
	}
}
