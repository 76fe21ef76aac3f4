package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criSockets are where container runtimes put their CRI socket, as crictl
// looks for them.
var criSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/cri-dockerd.sock",
	"/run/k3s/containerd/containerd.sock",
}

// cri is a CRI runtime client: what the kubelet asked the runtime to run,
// and where each pod sandbox's network namespace is.
type cri struct {
	endpoint string
	conn     *grpc.ClientConn
	rt       runtime.RuntimeServiceClient
}

// errNoCRI: no CRI socket at the usual paths (and none was given).
var errNoCRI = errors.New("no CRI socket")

// dialCRI connects to endpoint (unix:///path or /path), or to the first of
// the usual sockets that exists.
func dialCRI(endpoint string) (*cri, error) {
	if endpoint == "" {
		for _, s := range criSockets {
			if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
				endpoint = "unix://" + s
				break
			}
		}
		if endpoint == "" {
			return nil, fmt.Errorf("%w at %s", errNoCRI, strings.Join(criSockets, ", "))
		}
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI %s: %w", endpoint, err)
	}
	return &cri{endpoint: endpoint, conn: conn, rt: runtime.NewRuntimeServiceClient(conn)}, nil
}

func (c *cri) Close() error { return c.conn.Close() }

// sandbox is what the runtime says about a pod's sandbox.
type sandbox struct {
	id          string
	hostNetwork bool
	netnsPath   string // as the runtime reports it (/var/run/netns/cni-…); "" for host network
	pid         int    // the sandbox's process: /proc/PID/ns/net where netnsPath is not visible
	ips         []netip.Addr
}

// sandboxOf finds the ready sandbox of the pod with this UID.
func (c *cri) sandboxOf(ctx context.Context, uid string) (*sandbox, error) {
	list, err := c.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{
		State:         &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid},
	}})
	if err != nil {
		return nil, fmt.Errorf("CRI %s ListPodSandbox: %w", c.endpoint, err)
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("CRI %s: %d ready sandboxes for pod uid %s, want 1", c.endpoint, len(list.Items), uid)
	}
	id := list.Items[0].Id
	st, err := c.rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("CRI %s PodSandboxStatus %s: %w", c.endpoint, id, err)
	}
	sb := &sandbox{id: id,
		hostNetwork: st.Status.GetLinux().GetNamespaces().GetOptions().GetNetwork() == runtime.NamespaceMode_NODE}
	if ip, err := netip.ParseAddr(st.Status.GetNetwork().GetIp()); err == nil {
		sb.ips = append(sb.ips, ip)
	}
	for _, a := range st.Status.GetNetwork().GetAdditionalIps() {
		if ip, err := netip.ParseAddr(a.GetIp()); err == nil {
			sb.ips = append(sb.ips, ip)
		}
	}
	if !sb.hostNetwork {
		sb.netnsPath, sb.pid = verboseNetns(st.Info)
		if sb.netnsPath == "" && sb.pid == 0 {
			return nil, fmt.Errorf("CRI %s: sandbox %s reports neither a network namespace path nor a pid", c.endpoint, id)
		}
	}
	return sb, nil
}

// verboseNetns reads the sandbox's network namespace path and pid from the
// verbose status, as `crictl inspectp` shows it: containerd and CRI-O both
// put the OCI runtime spec and the pid under "info".
func verboseNetns(info map[string]string) (string, int) {
	var v struct {
		Pid         int `json:"pid"`
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string } `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		return "", 0
	}
	var path string
	for _, n := range v.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" {
			path = n.Path
		}
	}
	return path, v.Pid
}

// netnsPaths are the paths to try for the sandbox's namespace, best first:
// the runtime's (valid where pathtrace shares the node's mounts), then the
// sandbox process's.
func (sb *sandbox) netnsPaths() []string {
	var ps []string
	if sb.netnsPath != "" {
		ps = append(ps, sb.netnsPath)
	}
	if sb.pid > 0 {
		ps = append(ps, "/proc/"+strconv.Itoa(sb.pid)+"/ns/net")
	}
	return ps
}
