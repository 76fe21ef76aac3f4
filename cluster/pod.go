package cluster

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/internal/privs"
)

// What marks an agent pod as pathtrace's: the well-known labels, the run it
// belongs to, who started it and until when it may live.
const (
	LabelName      = "app.kubernetes.io/name"       // pathtrace
	LabelComponent = "app.kubernetes.io/component"  // agent
	LabelManagedBy = "app.kubernetes.io/managed-by" // pathtrace
	LabelRun       = "pathtrace.github.io/run"      // the run's ID
	AnnOwner       = "pathtrace.github.io/owner"    // Owner, JSON
	AnnDeadline    = "pathtrace.github.io/deadline" // RFC 3339: after it, the pod is a leftover whoever started it
	AnnNode        = "pathtrace.github.io/node"     // the node it was made for (spec.nodeName too)

	// ContainerName is the agent's container, where commands are run.
	ContainerName = "agent"
)

// AgentSelector selects every agent pod of pathtrace, of any run.
const AgentSelector = LabelName + "=pathtrace," + LabelComponent + "=agent," + LabelManagedBy + "=pathtrace"

// PodConfig is how agent pods are made.
type PodConfig struct {
	Namespace string
	Image     string
	// Privileged runs the agent privileged instead of with Caps only,
	// for clusters whose policy (a PSP or admission rule) demands it or
	// whose runtime does not know a capability by name.
	Privileged bool
	// Caps are the capabilities the agent's capture needs (privs).
	Caps []privs.Cap
	// Lifetime bounds each pod's life from its start
	// (activeDeadlineSeconds): the kubelet ends a pod its coordinator
	// never deleted.
	Lifetime time.Duration
	// ServiceAccount is the agents' account, bound to the read-only
	// ClusterRole the tracer needs (deploy/rbac/pathtrace.yaml): an agent
	// resolves the pod on its node as the tracer on a node does, through
	// the API server and the runtime's CRI socket.
	ServiceAccount string
}

// criSockets are the runtimes' CRI sockets by the name a Node reports in
// status.nodeInfo.containerRuntimeVersion ("containerd://1.7.2").
var criSockets = map[string]string{
	"containerd": "/run/containerd/containerd.sock",
	"cri-o":      "/run/crio/crio.sock",
	"docker":     "/var/run/cri-dockerd.sock",
}

// criSocket is the CRI socket of a node's runtime, "" when unknown: k3s
// runs its containerd at its own path, which its version string names.
func criSocket(runtimeVersion string) string {
	name, version, _ := strings.Cut(runtimeVersion, "://")
	if name == "containerd" && strings.Contains(version, "k3s") {
		return "/run/k3s/containerd/containerd.sock"
	}
	return criSockets[name]
}

// podFor is the agent pod of a run on node: in the node's network and PID
// namespaces (hostNetwork: its interfaces; hostPID: the pods' namespaces by
// /proc/PID/ns/net), bound to the node, tolerating every taint, with just
// the capabilities the capture needs, idle until the coordinator execs the
// capture in it. Its token is the agents' service account's (read-only),
// its CRI socket the node runtime's (socket; "" when unknown).
func podFor(c PodConfig, run, name, node, socket string, owner Owner, deadline time.Time) *corev1.Pod {
	deadlineSecs := int64(c.Lifetime / time.Second)
	grace := int64(2)
	no := false
	sc := &corev1.SecurityContext{
		RunAsUser:      new(int64), // root: the capabilities are root's in the pod's user namespace
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
	}
	if c.Privileged {
		sc.Privileged = new(bool)
		*sc.Privileged = true
	} else {
		caps := &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
		for _, cp := range c.Caps {
			caps.Add = append(caps.Add, corev1.Capability(strings.TrimPrefix(cp.String(), "CAP_")))
		}
		sc.Capabilities = caps
	}
	ctr := corev1.Container{
		Name:            ContainerName,
		Image:           c.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		// Idle until deleted: the scratch image has no sleep.
		Command:         []string{AgentBinary, IdleCommand, "--for", c.Lifetime.String()},
		SecurityContext: sc,
		// The node's name for the resolver (as the tracer's DaemonSet
		// recipe sets it).
		Env: []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
	}
	var vols []corev1.Volume
	if socket != "" {
		// The socket alone, at its usual path: a mount of its directory
		// would hold the other containers' rootfs mounts.
		sock := corev1.HostPathSocket
		vols = []corev1.Volume{{Name: "cri", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: socket, Type: &sock}}}}
		ctr.VolumeMounts = []corev1.VolumeMount{{Name: "cri", MountPath: socket}}
	}
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: c.Namespace,
			Labels: map[string]string{
				LabelName: "pathtrace", LabelComponent: "agent", LabelManagedBy: "pathtrace", LabelRun: run,
			},
			Annotations: map[string]string{
				AnnOwner: owner.marshal(), AnnDeadline: deadline.UTC().Format(time.RFC3339), AnnNode: node,
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			HostPID:                       true,
			DNSPolicy:                     corev1.DNSClusterFirstWithHostNet,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadlineSecs,
			TerminationGracePeriodSeconds: &grace,
			ServiceAccountName:            c.ServiceAccount,
			AutomountServiceAccountToken:  &yes,
			EnableServiceLinks:            &no,
			// Every taint, NoExecute too, for as long as the pod lives:
			// the path may cross a tainted or cordoned node.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{ctr},
			Volumes:     vols,
		},
	}
}

// IdleCommand is the hidden subcommand an agent pod's container runs
// while the coordinator execs captures beside it.
const IdleCommand = "agent-idle"

// RunCommand is the hidden subcommand the coordinator execs a capture
// through: it stops the capture when the exec's stdin ends.
const RunCommand = "agent-run"
