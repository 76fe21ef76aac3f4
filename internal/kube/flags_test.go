package kube

import (
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// kubectl's flags on the command line select what kubectl would: the
// kubeconfig, the context, the namespace, and override the server, token
// and request timeout.
func TestFlags(t *testing.T) {
	kc := testenv.Kubeconfig(t)
	parse := func(args ...string) *Flags {
		f := NewFlags()
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.AddFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}

	f := parse("--kubeconfig", kc)
	rc, err := f.RESTConfig()
	if err != nil || rc.Host != "https://192.0.2.1:6443" || rc.BearerToken != "t" || rc.Timeout != 0 || f.Namespace() != "shop" {
		t.Fatalf("kubeconfig alone: %+v, %v, namespace %s", rc, err, f.Namespace())
	}
	f = parse("--kubeconfig", kc, "--context", "b")
	if rc, err = f.RESTConfig(); err != nil || rc.BearerToken != "tv" || f.Namespace() != "default" {
		t.Fatalf("--context b: %+v, %v, namespace %s", rc, err, f.Namespace())
	}
	f = parse("--kubeconfig", kc, "-n", "web", "-s", "https://192.0.2.9:6443", "--token", "x", "--request-timeout", "5s")
	if rc, err = f.RESTConfig(); err != nil || rc.Host != "https://192.0.2.9:6443" || rc.BearerToken != "x" || rc.Timeout != 5*time.Second || f.Namespace() != "web" {
		t.Fatalf("overrides: %+v, %v, namespace %s", rc, err, f.Namespace())
	}
	t.Setenv("KUBECONFIG", kc)
	if rc, err = parse("--user", "v").RESTConfig(); err != nil || rc.BearerToken != "tv" {
		t.Fatalf("KUBECONFIG and --user v: %+v, %v", rc, err)
	}
}
