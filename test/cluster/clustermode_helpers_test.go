package cluster_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// agentPod is what the test reads of an agent pod from the API server.
type agentPod struct {
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		NodeName              string `json:"nodeName"`
		HostNetwork           bool   `json:"hostNetwork"`
		HostPID               bool   `json:"hostPID"`
		ActiveDeadlineSeconds int64  `json:"activeDeadlineSeconds"`
		Tolerations           []struct {
			Key      string `json:"key"`
			Operator string `json:"operator"`
			Effect   string `json:"effect"`
		} `json:"tolerations"`
		Containers []struct {
			SecurityContext struct {
				Privileged   *bool `json:"privileged"`
				Capabilities struct {
					Add  []string `json:"add"`
					Drop []string `json:"drop"`
				} `json:"capabilities"`
			} `json:"securityContext"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

const agentSelector = "app.kubernetes.io/name=pathtrace,app.kubernetes.io/component=agent,app.kubernetes.io/managed-by=pathtrace"

// agents lists the agent pods from the API server.
func agents(t *testing.T, c *testCluster) []agentPod {
	t.Helper()
	out, err := c.run(time.Minute, "kubectl", "get", "pods", "-n", "pathtrace-system", "-l", agentSelector, "-o", "json")
	if err != nil {
		t.Fatalf("kubectl get pods: %v\n%s", err, out)
	}
	var list struct{ Items []agentPod }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl get pods: %v\n%s", err, out)
	}
	return list.Items
}

// noAgents: not one agent pod, running or terminating, is left.
func noAgents(t *testing.T, c *testCluster) {
	t.Helper()
	if left := agents(t, c); len(left) > 0 {
		var names []string
		for _, p := range left {
			names = append(names, p.Metadata.Name+" on "+p.Spec.NodeName+" ("+p.Status.Phase+")")
		}
		t.Errorf("agent pods left behind: %s", strings.Join(names, ", "))
	}
}

// watchAgents polls the agent pods while a run goes and sends the first
// list of two running ones; stop ends the polling.
func watchAgents(c *testCluster, seen chan<- []agentPod) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(seen)
		for {
			select {
			case <-done:
				return
			default:
			}
			out, err := c.run(time.Minute, "kubectl", "get", "pods", "-n", "pathtrace-system", "-l", agentSelector, "-o", "json")
			var list struct{ Items []agentPod }
			if err == nil && json.Unmarshal([]byte(out), &list) == nil && len(list.Items) == 2 &&
				list.Items[0].Status.Phase == "Running" && list.Items[1].Status.Phase == "Running" {
				seen <- list.Items
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() { close(done); wg.Wait() }
}

// checkAgentPods: one agent per node of the path, in the node's network
// and PID namespaces, bound to it, tolerating every taint, labelled with
// the run, with the capture's capabilities only.
func checkAgentPods(t *testing.T, pods []agentPod, node1, node2 string) {
	t.Helper()
	if len(pods) != 2 {
		t.Fatalf("saw %d running agent pods during the run, want 2", len(pods))
	}
	var nodes []string
	for _, p := range pods {
		s := p.Spec
		nodes = append(nodes, s.NodeName)
		if !s.HostNetwork || !s.HostPID || s.ActiveDeadlineSeconds <= 0 {
			t.Errorf("pod %s: hostNetwork %v hostPID %v activeDeadlineSeconds %d", p.Metadata.Name, s.HostNetwork, s.HostPID, s.ActiveDeadlineSeconds)
		}
		if len(s.Tolerations) != 1 || s.Tolerations[0].Operator != "Exists" || s.Tolerations[0].Key != "" || s.Tolerations[0].Effect != "" {
			t.Errorf("pod %s: tolerations %+v, want one tolerating every taint", p.Metadata.Name, s.Tolerations)
		}
		if p.Metadata.Labels["pathtrace.github.io/run"] == "" || p.Metadata.Labels["pathtrace.github.io/run"] != pods[0].Metadata.Labels["pathtrace.github.io/run"] {
			t.Errorf("pod %s: labels %v, want one run id for both", p.Metadata.Name, p.Metadata.Labels)
		}
		if p.Metadata.Annotations["pathtrace.github.io/owner"] == "" || p.Metadata.Annotations["pathtrace.github.io/deadline"] == "" {
			t.Errorf("pod %s: annotations %v, want owner and deadline", p.Metadata.Name, p.Metadata.Annotations)
		}
		sc := s.Containers[0].SecurityContext
		if sc.Privileged != nil && *sc.Privileged || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("pod %s: privileged %v, drop %v; want capabilities only, every other dropped", p.Metadata.Name, sc.Privileged, sc.Capabilities.Drop)
		}
		for _, want := range []string{"NET_RAW", "SYS_ADMIN", "SYS_PTRACE"} {
			if !slices.Contains(sc.Capabilities.Add, want) {
				t.Errorf("pod %s: capabilities %v, no %s", p.Metadata.Name, sc.Capabilities.Add, want)
			}
		}
		t.Logf("agent pod %s on %s: capabilities %v", p.Metadata.Name, s.NodeName, sc.Capabilities.Add)
	}
	slices.Sort(nodes)
	if want := []string{node1, node2}; !slices.Equal(nodes, want) {
		t.Errorf("agent pods on %v, want one on each of %v", nodes, want)
	}
}

// jsonDoc is what the test reads of the JSON report.
type jsonDoc struct {
	Points []struct {
		Name string `json:"name"`
		Node string `json:"node"`
	} `json:"points"`
	Traces []struct {
		Type    string   `json:"type"`
		Missing []string `json:"missing"`
		Hops    []struct {
			Point string `json:"point"`
			Encap *struct {
				Type string `json:"type"`
				VNI  int    `json:"vni"`
			} `json:"encap"`
		} `json:"hops"`
	} `json:"traces"`
	Summary struct {
		Complete int  `json:"complete"`
		Lost     int  `json:"lost"`
		Clean    bool `json:"clean"`
	} `json:"summary"`
}

// checkAcrossNodes: ten points, five on each node in path order; every
// probe and reply crossed all ten, in VXLAN VNI 1 between the nodes.
func checkAcrossNodes(t *testing.T, d *jsonDoc, node1, node2 string) {
	t.Helper()
	var got []string
	for _, p := range d.Points {
		got = append(got, p.Node+"/"+p.Name)
	}
	want := []string{node1 + "/web-1", node1 + "/web-1-veth", node1 + "/" + node1 + "-cni0", node1 + "/" + node1 + "-flannel.1", node1 + "/" + node1 + "-eth0",
		node2 + "/" + node2 + "-eth0", node2 + "/" + node2 + "-flannel.1", node2 + "/" + node2 + "-cni0", node2 + "/db-0-veth", node2 + "/db-0"}
	if !slices.Equal(got, want) {
		t.Errorf("points %v\nwant %v", got, want)
	}
	echo := map[string]int{}
	for _, tr := range d.Traces {
		if tr.Type != "echo-request" && tr.Type != "echo-reply" {
			continue
		}
		echo[tr.Type]++
		if len(tr.Hops) != 10 || len(tr.Missing) > 0 {
			t.Errorf("%s: %d hops, missing %v; want all 10 points", tr.Type, len(tr.Hops), tr.Missing)
			continue
		}
		for _, h := range tr.Hops {
			onWire := strings.HasSuffix(h.Point, "-eth0")
			if onWire && (h.Encap == nil || h.Encap.Type != "vxlan" || h.Encap.VNI != 1) {
				t.Errorf("%s at %s: encap %+v, want vxlan VNI 1", tr.Type, h.Point, h.Encap)
			}
		}
	}
	if echo["echo-request"] != 5 || echo["echo-reply"] != 5 || d.Summary.Lost != 0 || !d.Summary.Clean {
		t.Errorf("echoes %v, summary %+v: want 5 requests and 5 replies, none lost", echo, d.Summary)
	}
}
