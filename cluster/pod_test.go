package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/internal/privs"
)

func TestPodFor(t *testing.T) {
	cfg := PodConfig{Namespace: "pathtrace-system", Image: "ghcr.io/pathtrace/pathtrace:v1", ServiceAccount: "pathtrace-agent",
		Caps: []privs.Cap{privs.NetRaw, privs.SysAdmin, privs.BPF}, Lifetime: 90 * time.Second}
	owner := Self()
	deadline := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	p := podFor(cfg, "0a1b2c3d", "pathtrace-0a1b2c3d-1", "node-7", "/run/containerd/containerd.sock", owner, deadline)
	s := p.Spec
	if s.NodeName != "node-7" || !s.HostNetwork || !s.HostPID || s.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("spec %+v", s)
	}
	if s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds != 90 {
		t.Errorf("activeDeadlineSeconds %v, want 90", s.ActiveDeadlineSeconds)
	}
	if len(s.Tolerations) != 1 || s.Tolerations[0].Operator != corev1.TolerationOpExists || s.Tolerations[0].Key != "" || s.Tolerations[0].Effect != "" {
		t.Errorf("tolerations %+v: want one that tolerates every taint", s.Tolerations)
	}
	c := s.Containers[0]
	if c.Name != ContainerName || c.ImagePullPolicy != corev1.PullIfNotPresent || c.Command[0] != AgentBinary || c.Command[1] != IdleCommand {
		t.Errorf("container %+v", c)
	}
	sc := c.SecurityContext
	if sc.Privileged != nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_RAW", "SYS_ADMIN", "BPF"}) {
		t.Errorf("security context %+v %+v", sc, sc.Capabilities)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/run/containerd/containerd.sock" ||
		*s.Volumes[0].HostPath.Type != corev1.HostPathSocket {
		t.Errorf("CRI socket: mounts %+v, volumes %+v", c.VolumeMounts, s.Volumes)
	}
	sel := map[string]string{}
	for _, kv := range strings.Split(AgentSelector, ",") {
		k, v, _ := strings.Cut(kv, "=")
		sel[k] = v
	}
	for k, v := range sel {
		if p.Labels[k] != v {
			t.Errorf("label %s=%q, the selector wants %q", k, p.Labels[k], v)
		}
	}
	if p.Labels[LabelRun] != "0a1b2c3d" || p.Annotations[AnnDeadline] != "2026-11-30T08:00:00Z" {
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	if o, ok := parseOwner(p.Annotations[AnnOwner]); !ok || o != owner {
		t.Errorf("owner annotation %q, want %+v", p.Annotations[AnnOwner], owner)
	}

	cfg.Privileged = true
	p = podFor(cfg, "0a1b2c3d", "x", "node-7", "", owner, deadline)
	if sc := p.Spec.Containers[0].SecurityContext; sc.Privileged == nil || !*sc.Privileged || sc.Capabilities != nil {
		t.Errorf("--agent-privileged: %+v", sc)
	}
	if len(p.Spec.Volumes) != 0 {
		t.Errorf("no socket, volumes %+v", p.Spec.Volumes)
	}
}

func TestCRISocket(t *testing.T) {
	for v, want := range map[string]string{
		"containerd://1.6.20":      "/run/containerd/containerd.sock",
		"containerd://1.7.15-k3s1": "/run/k3s/containerd/containerd.sock",
		"cri-o://1.30.1":           "/run/crio/crio.sock",
		"docker://26.1.0":          "/var/run/cri-dockerd.sock",
		"remote://whatever":        "",
		"":                         "",
	} {
		if got := criSocket(v); got != want {
			t.Errorf("criSocket(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestOver(t *testing.T) {
	now := time.Now()
	self := Self()
	gone := self
	gone.Start++ // this PID, started at another time: another process
	other := self
	other.BootID = "another-machine"
	pod := func(o Owner, deadline time.Time, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			AnnOwner: o.marshal(), AnnDeadline: deadline.UTC().Format(time.RFC3339)}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	later, earlier := now.Add(time.Minute), now.Add(-time.Second)
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
		over string // "" = left alone, else a word of the reason
	}{
		{"this live coordinator", pod(self, later, corev1.PodRunning), ""},
		{"another machine's, before its deadline", pod(other, later, corev1.PodRunning), ""},
		{"another machine's, after its deadline", pod(other, earlier, corev1.PodRunning), "deadline"},
		{"an exited coordinator here", pod(gone, later, corev1.PodRunning), "exited"},
		{"ended by the kubelet", pod(other, later, corev1.PodFailed), "ended"},
		{"no annotations", &corev1.Pod{}, "no owner"},
	} {
		got := over(c.pod, now)
		if (c.over == "") != (got == "") || !strings.Contains(got, c.over) {
			t.Errorf("%s: over = %q, want %q", c.name, got, c.over)
		}
	}
}

func TestOwnerStart(t *testing.T) {
	o := Self()
	if o.PID <= 0 || o.Start == 0 || o.BootID == "" || o.PIDNS == 0 {
		t.Fatalf("Self() = %+v", o)
	}
	if o.Gone() {
		t.Error("this process is gone")
	}
}
