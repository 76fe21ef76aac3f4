package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pathtrace/pathtrace/netns"
)

// CNIConfig builds a node whose pods are wired by the real CNI bridge
// plugin with Flannel's configuration, to check discovery against what
// Kubernetes nodes actually have rather than against our own lab.
type CNIConfig struct {
	Prefix    string       // namespace name prefix, as in Config
	Subnet    netip.Prefix // node pod subnet; default 10.244.1.0/24
	Pods      int          // default 3
	DataDir   string       // host-local IPAM state; required, one per test
	PluginDir string       // default /usr/lib/cni
}

// CNINode creates "<prefix>node1" and pods "<prefix>pod1".. and runs the
// bridge plugin (CNI_COMMAND=ADD) for each pod inside the node namespace.
// Remove it with Down(Config{Prefix: cfg.Prefix}).
func CNINode(ctx context.Context, cfg CNIConfig) (*Lab, error) {
	lc, err := Config{Prefix: cfg.Prefix, Subnet: cfg.Subnet, Pods: cfg.Pods}.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Pods == 0 {
		lc.Pods = 3
	}
	if cfg.DataDir == "" {
		return nil, errors.New("cni node: DataDir is required (host-local keeps its leases there)")
	}
	if cfg.PluginDir == "" {
		cfg.PluginDir = "/usr/lib/cni"
	}
	unlock, err := lock(lc.Prefix)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := readState(lc.Prefix); err == nil {
		return nil, fmt.Errorf("lab %q already exists; run Down first", lc.Prefix)
	}
	st := lc.plan()
	st.Kind = "cni"
	if err := writeState(lc.Prefix, st); err != nil {
		return nil, err
	}
	if err := buildCNI(ctx, cfg, lc, st); err != nil {
		if derr := down(lc.Prefix, st); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
		}
		return nil, fmt.Errorf("build CNI node %q: %w", lc.Prefix, err)
	}
	return status(st)
}

func buildCNI(ctx context.Context, cfg CNIConfig, lc Config, st *state) error {
	node, err := openNode(st)
	if err != nil {
		return err
	}
	defer node.Close()
	netconf, err := flannelNetconf(lc.Subnet, MTU, cfg.DataDir)
	if err != nil {
		return err
	}
	for i := 1; i <= lc.Pods; i++ {
		if err := createNamed(lc.podName(i), mark(lc.Prefix)); err != nil {
			return err
		}
		p, err := cniAdd(ctx, node, cfg.PluginDir, netconf, lc.podName(i))
		if err != nil {
			return err
		}
		st.Pods = append(st.Pods, p)
		if err := writeState(lc.Prefix, st); err != nil {
			return err
		}
	}
	return nil
}

// flannelNetconf is the bridge plugin configuration flannel's CNI plugin
// hands down for a node with pod subnet sn.
func flannelNetconf(sn netip.Prefix, mtu int, dataDir string) ([]byte, error) {
	netconf, err := json.Marshal(map[string]any{
		"cniVersion":       "0.3.1",
		"name":             "cbr0",
		"type":             "bridge",
		"bridge":           "cni0",
		"isGateway":        true,
		"isDefaultGateway": true,
		"hairpinMode":      true,
		"mtu":              mtu,
		"ipam": map[string]any{
			"type":    "host-local",
			"subnet":  sn.String(),
			"routes":  []map[string]string{{"dst": clusterCIDR(sn).String()}},
			"dataDir": dataDir,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encode CNI config: %w", err)
	}
	return netconf, nil
}

// cniAdd runs the bridge plugin's ADD inside node for the pod namespace
// name (made by the caller).
func cniAdd(ctx context.Context, node *netns.Handle, pluginDir string, netconf []byte, name string) (Pod, error) {
	out, err := runPlugin(ctx, node, pluginDir, netconf, []string{
		"CNI_COMMAND=ADD",
		"CNI_CONTAINERID=" + name,
		"CNI_NETNS=" + filepath.Join(RunDir, name),
		"CNI_IFNAME=eth0",
		"CNI_PATH=" + pluginDir,
	})
	if err != nil {
		return Pod{}, fmt.Errorf("pod %s: %w", name, err)
	}
	p, err := parseResult(out, name)
	if err != nil {
		return Pod{}, fmt.Errorf("pod %s: %w", name, err)
	}
	return p, nil
}

// runPlugin execs the bridge plugin from a thread inside the node namespace:
// the child inherits the namespace of the thread that forks it. Stdin and
// output are files so exec.Cmd starts no copying goroutines there.
func runPlugin(ctx context.Context, node *netns.Handle, dir string, netconf []byte, env []string) ([]byte, error) {
	stdin, err := os.CreateTemp("", "pathtrace-cni-in")
	if err != nil {
		return nil, fmt.Errorf("temp file: %w", err)
	}
	defer os.Remove(stdin.Name())
	defer stdin.Close()
	if _, err := stdin.Write(netconf); err != nil {
		return nil, fmt.Errorf("write CNI config: %w", err)
	}
	if _, err := stdin.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	out, err := os.CreateTemp("", "pathtrace-cni-out")
	if err != nil {
		return nil, fmt.Errorf("temp file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()

	// Not CommandContext: its watcher goroutine would be started inside Do.
	cmd := exec.Command(filepath.Join(dir, "bridge"))
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, out, out
	if err := netns.Do(node, cmd.Start); err != nil {
		return nil, fmt.Errorf("start CNI bridge plugin: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	werr := cmd.Wait()
	stop()
	b, err := os.ReadFile(out.Name())
	if err != nil {
		return nil, fmt.Errorf("read CNI output: %w", err)
	}
	if werr != nil {
		return nil, fmt.Errorf("CNI bridge plugin: %w: %s", werr, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// parseResult reads a CNI 0.3.1 result: the pod address and which interface
// is the host veth (the one outside the sandbox that is not the bridge).
func parseResult(out []byte, name string) (Pod, error) {
	var res struct {
		Interfaces []struct {
			Name    string `json:"name"`
			MAC     string `json:"mac"`
			Sandbox string `json:"sandbox"`
		} `json:"interfaces"`
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return Pod{}, fmt.Errorf("parse CNI result %q: %w", out, err)
	}
	p := Pod{Name: name, Netns: filepath.Join(RunDir, name), Bridge: "cni0"}
	for _, itf := range res.Interfaces {
		switch {
		case itf.Sandbox != "":
			p.MAC = itf.MAC
		case itf.Name != "cni0":
			p.HostVeth = itf.Name
		}
	}
	if len(res.IPs) == 0 || p.HostVeth == "" {
		return p, fmt.Errorf("CNI result without address or host veth: %s", out)
	}
	pfx, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		return p, fmt.Errorf("CNI result address: %w", err)
	}
	p.IP = pfx.Addr()
	return p, nil
}
