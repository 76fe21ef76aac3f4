package cluster_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criNetns asks node1's containerd (CRI PodSandboxStatus, verbose, as
// `crictl inspectp` does) for the pod's sandbox, and checks that the netns
// path it reports is, inside node1's mount namespace, the network namespace
// of the sandbox's pid and holds the pod's IP on eth0.
func criNetns(t *testing.T, c *testCluster, ns, pod string, podIP netip.Addr) {
	sock := c.env["PATHTRACE_K8S_NODE1_CRI_HOST"]
	conn, err := grpc.NewClient(sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("CRI %s: %v", sock, err)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{
		State:         &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod},
	}})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("CRI ListPodSandbox %s/%s: %v (%d sandboxes)", ns, pod, err, len(list.GetItems()))
	}
	st, err := rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: list.Items[0].Id, Verbose: true})
	if err != nil {
		t.Fatalf("CRI PodSandboxStatus: %v", err)
	}
	if got := st.Status.GetNetwork().GetIp(); got != podIP.String() {
		t.Errorf("CRI sandbox IP %q, API server says %v", got, podIP)
	}
	var info struct {
		Pid         int `json:"pid"`
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string } `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
		t.Fatalf("CRI verbose info: %v\n%s", err, st.Info["info"])
	}
	var path string
	for _, n := range info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" {
			path = n.Path
		}
	}
	if path == "" || info.Pid == 0 {
		t.Fatalf("CRI verbose info: no network namespace path or pid: %s", st.Info["info"])
	}
	t.Logf("CRI: sandbox pid %d, netns %s", info.Pid, path)
	// The same namespace object: the file inside the node and the sandbox
	// process's ns link (/proc is the host's in every node).
	inNode, err := c.onNode("node1", 30*time.Second, "stat", "-L", "-c", "%i", path)
	if err != nil {
		t.Fatalf("stat %s inside node1: %v\n%s", path, err, inNode)
	}
	procNs, err := os.Stat("/proc/" + strconv.Itoa(info.Pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.FormatUint(procNs.Sys().(*syscall.Stat_t).Ino, 10); strings.TrimSpace(inNode) != want {
		t.Errorf("netns %s in node1 is inode %s, sandbox pid %d's netns is %s", path, strings.TrimSpace(inNode), info.Pid, want)
	}
	addr, err := c.onNode("node1", 30*time.Second, "nsenter", "--net="+path, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(addr, " "+podIP.String()+"/") {
		t.Errorf("nsenter --net=%s ip addr show eth0 (in node1): %v\n%s", path, err, addr)
	}
}
