package cli

import (
	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/internal/iostreams"
)

func newRootCmd(ios *iostreams.IOStreams) *cobra.Command {
	o := &traceOptions{IO: ios}
	cmd := &cobra.Command{
		Use:         "pathtrace --src ENDPOINT --dst ENDPOINT [flags]",
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: commandName()},
		Short:       "Show where a packet goes, and how long each step takes, between two pods on a node",
		Long: `pathtrace finds the path between two endpoints on this node with netlink
(pod eth0 → host veth → bridge → host veth → pod eth0), captures on every
point at once with AF_PACKET inside the right network namespaces, sends its
own ICMP probes, matches each frame across the points and prints a
hop-by-hop timeline: the time at each point, the latency of each hop, MAC,
TTL and IP rewrites, and where a frame was lost.

An endpoint is a pod as kubectl names it (NAME with -n NAMESPACE,
NAMESPACE/NAME, pod/NAME), a Service (svc/NAME: one of its ready pods,
probed through its ClusterIP with TCP SYNs), a workload (deploy/NAME, sts/,
ds/, rs/, job/: one of its pods), the node itself (node/NAME or host), a
network namespace name (as 'ip netns' lists it; a bare name that is one
stays one), a namespace path (/run/netns/NAME, /proc/PID/ns/net), a PID, or
an IP address held by exactly one namespace on the node. Kubernetes names
use kubectl's configuration (--kubeconfig, KUBECONFIG, --context,
in-cluster) and must be pods on this node.`,
		Example: `  # two pods on this node, as kubectl names them
  sudo pathtrace --src web-1 --dst db-0 -n shop
  sudo pathtrace --src shop/web-1 --dst svc/db -n shop

  # the lab: network namespace names
  sudo pathtrace --src pod1 --dst pod2

  # by IP, ten probes, evidence for the ticket
  sudo pathtrace --src 10.244.1.2 --dst 10.244.1.3 -c 10 --out /tmp/case-4711

  # correlate the pods' own traffic (kubectl exec … ping) for 30 s
  sudo pathtrace --src pod1 --dst pod2 --passive --duration 30s

  # saved captures
  pathtrace analyze pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap

  # try it on a Flannel node built in network namespaces
  sudo pathtrace demo`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Src == "" && o.Dst == "" {
				return cmd.Help()
			}
			o.noteProbeFlags(cmd)
			return o.run(cmd.Context())
		},
		Version: buildTool().String(),
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	o.addFlags(cmd)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.AddCommand(newAnalyzeCmd(ios, nil), newCaptureCmd(ios, nil), newLabCmd(ios), newDemoCmd(ios, nil))
	return cmd
}
