package k8s

import "testing"

func TestParseRef(t *testing.T) {
	for _, c := range []struct {
		arg  string
		want ref
	}{
		{"web-1", ref{kind: kindBare, name: "web-1"}},
		{"shop/web-1", ref{kind: kindPod, namespace: "shop", name: "web-1"}},
		{"pod/web-1", ref{kind: kindPod, resource: "pods", name: "web-1"}},
		{"po/web-1", ref{kind: kindPod, resource: "pods", name: "web-1"}},
		{"svc/db", ref{kind: kindService, resource: "services", name: "db"}},
		{"service/db:8080", ref{kind: kindService, resource: "services", name: "db", port: 8080}},
		{"deploy/web", ref{kind: kindWorkload, resource: "deployments", name: "web"}},
		{"sts/db", ref{kind: kindWorkload, resource: "statefulsets", name: "db"}},
		{"DS/agent", ref{kind: kindWorkload, resource: "daemonsets", name: "agent"}},
		{"job/once", ref{kind: kindWorkload, resource: "jobs", name: "once"}},
		{"node/n1", ref{kind: kindNode, resource: "nodes", name: "n1"}},
		{"host", ref{kind: kindNode}},
		{"10.244.1.2", ref{kind: kindLocal, name: "10.244.1.2"}},
		{"fd00::2", ref{kind: kindLocal, name: "fd00::2"}},
		{"4242", ref{kind: kindLocal, name: "4242"}},
		{"/run/netns/pod1", ref{kind: kindLocal, name: "/run/netns/pod1"}},
		{"./ns", ref{kind: kindLocal, name: "./ns"}},
	} {
		got, err := parseRef(c.arg)
		if err != nil || got != c.want {
			t.Errorf("parseRef(%q) = %+v, %v; want %+v", c.arg, got, err, c.want)
		}
	}
	for _, bad := range []string{"svc/db:http", "svc/db:0", "a/b/c", "shop/"} {
		if got, err := parseRef(bad); err == nil {
			t.Errorf("parseRef(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestVerboseNetns(t *testing.T) {
	// containerd's `crictl inspectp` info, cut down to what is read.
	info := map[string]string{"info": `{"pid": 4242, "runtimeSpec": {"linux": {"namespaces": [
		{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1234"}, {"type": "mount"}]}}}`}
	path, pid := verboseNetns(info)
	if path != "/var/run/netns/cni-1234" || pid != 4242 {
		t.Fatalf("verboseNetns = %q, %d", path, pid)
	}
	sb := sandbox{netnsPath: path, pid: pid}
	if got := sb.netnsPaths(); len(got) != 2 || got[1] != "/proc/4242/ns/net" {
		t.Fatalf("netnsPaths = %v", got)
	}
	if p, n := verboseNetns(map[string]string{"info": "not json"}); p != "" || n != 0 {
		t.Fatalf("bad info: %q %d", p, n)
	}
}
