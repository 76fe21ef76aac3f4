package kube

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Flags are kubectl's connection flags that a node-local tool needs
// (--kubeconfig, --context, -n, -s, --token, …, with kubectl's words), and
// kubectl's loading rules: the flag, KUBECONFIG, ~/.kube/config, then the
// in-cluster service account. Left out: --cluster (pathtrace's own cluster
// mode), impersonation, basic auth, --cache-dir (nothing is discovered),
// proxy and compression settings.
type Flags struct {
	Kubeconfig string
	Overrides  clientcmd.ConfigOverrides
}

// NewFlags returns the flags with kubectl's defaults.
func NewFlags() *Flags {
	return &Flags{Overrides: clientcmd.ConfigOverrides{ClusterDefaults: clientcmd.ClusterDefaults, Timeout: "0"}}
}

// AddFlags registers the flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	o := &f.Overrides
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "Path to the kubeconfig file to use for CLI requests.")
	fs.StringVar(&o.AuthInfo.ClientCertificate, "client-certificate", "", "Path to a client certificate file for TLS")
	fs.StringVar(&o.AuthInfo.ClientKey, "client-key", "", "Path to a client key file for TLS")
	fs.StringVar(&o.AuthInfo.Token, "token", "", "Bearer token for authentication to the API server")
	fs.StringVar(&o.Context.AuthInfo, "user", "", "The name of the kubeconfig user to use")
	fs.StringVarP(&o.Context.Namespace, "namespace", "n", "", "If present, the namespace scope for this CLI request")
	fs.StringVar(&o.CurrentContext, "context", "", "The name of the kubeconfig context to use")
	fs.StringVarP(&o.ClusterInfo.Server, "server", "s", "", "The address and port of the Kubernetes API server")
	fs.BoolVar(&o.ClusterInfo.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false,
		"If true, the server's certificate will not be checked for validity. This will make your HTTPS connections insecure")
	fs.StringVar(&o.ClusterInfo.CertificateAuthority, "certificate-authority", "", "Path to a cert file for the certificate authority")
	fs.StringVar(&o.Timeout, "request-timeout", "0", "The length of time to wait before giving up on a single server request. "+
		"Non-zero values should contain a corresponding time unit (e.g. 1s, 2m, 3h). A value of zero means don't timeout requests.")
}

// Loader is the kubeconfig as the flags select it (read on use).
func (f *Flags) Loader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	// What a configuration equal to it is taken for: none, so the
	// in-cluster service account is used in a pod (an agent), as kubectl
	// does.
	rules.DefaultClientConfig = &clientcmd.DefaultClientConfig
	o := f.Overrides
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &o)
}

// RESTConfig is the connection the flags and the kubeconfig describe.
func (f *Flags) RESTConfig() (*rest.Config, error) { return f.Loader().ClientConfig() }

// Namespace is -n, else the context's namespace, else "default".
func (f *Flags) Namespace() string {
	if ns, _, err := f.Loader().Namespace(); err == nil && ns != "" {
		return ns
	}
	return "default"
}
