package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Kubeconfig isolates a test from the machine's Kubernetes configuration
// (HOME, KUBECONFIG, the in-cluster variables) and writes a kubeconfig
// with one cluster at https://192.0.2.1:6443 and two contexts: "a"
// (current, user u with token t, namespace shop) and "b" (user v with token
// tv, no namespace). It returns the file's path; KUBECONFIG is left empty.
func Kubeconfig(t testing.TB) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	kc := filepath.Join(home, "kc")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://192.0.2.1:6443"}}]
users: [{name: u, user: {token: t}}, {name: v, user: {token: tv}}]
contexts:
- {name: a, context: {cluster: c, user: u, namespace: shop}}
- {name: b, context: {cluster: c, user: v}}
current-context: a
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kc
}
