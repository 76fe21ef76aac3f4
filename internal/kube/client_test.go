package kube

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// apiServer answers like kube-apiserver for the requests the client makes
// and records them (method, path?query, body).
type apiServer struct {
	mu   sync.Mutex
	seen []string
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.seen = append(a.seen, r.Method+" "+r.URL.RequestURI()+" "+strings.TrimSpace(string(body)))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasSuffix(r.URL.Path, "/pods/missing"):
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"pods \"missing\" not found","details":{"name":"missing","kind":"pods"}}`)
	case r.URL.Path == "/api/v1/namespaces/shop/pods/web-0":
		io.WriteString(w, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"shop"},"spec":{"nodeName":"n1"},"status":{"podIP":"10.244.0.7"}}`)
	case r.URL.Path == "/api/v1/pods":
		io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces/pt/pods":
		io.WriteString(w, string(body))
	case r.Method == http.MethodDelete:
		io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Success"}`)
	case r.URL.Path == "/api/v1/nodes/n1":
		io.WriteString(w, `{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.56.1"}]}}`)
	case r.URL.Path == "/api/v1/namespaces/shop/services/web":
		io.WriteString(w, `{"kind":"Service","apiVersion":"v1","metadata":{"name":"web"},"spec":{"clusterIP":"10.96.0.10"}}`)
	case r.URL.Path == "/api/v1/namespaces/shop/services":
		io.WriteString(w, `{"kind":"ServiceList","apiVersion":"v1","items":[{"metadata":{"name":"web"}}]}`)
	case r.URL.Path == "/api/v1/nodes":
		io.WriteString(w, `{"kind":"NodeList","apiVersion":"v1","items":[{"metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.56.1"}]}}]}`)
	case r.URL.Path == "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices":
		io.WriteString(w, `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","items":[{"metadata":{"name":"web-x"},"addressType":"IPv4","endpoints":[{"addresses":["10.244.0.7"]}]}]}`)
	case r.URL.Path == "/apis/apps/v1/namespaces/shop/deployments/web":
		io.WriteString(w, `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}}}}`)
	case r.URL.Path == "/apis/apps/v1/namespaces/shop/deployments":
		io.WriteString(w, `{"kind":"DeploymentList","apiVersion":"apps/v1","items":[{"metadata":{"name":"web"}},{"metadata":{"name":"api"}}]}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
	}
}

// Each call goes to the path, verb and query kubectl uses, and its answer
// decodes into the typed object; API errors stay client-go's StatusError.
func TestClientRequests(t *testing.T) {
	api := &apiServer{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c, err := New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	pod, err := c.Pods("shop").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil || pod.Name != "web-0" || pod.Spec.NodeName != "n1" || pod.Status.PodIP != "10.244.0.7" {
		t.Fatalf("get pod: %+v, %v", pod, err)
	}
	if _, err := c.Pods("shop").Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get missing pod: %v, want NotFound", err)
	}
	pods, err := c.Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=10.244.0.7"})
	if err != nil || len(pods.Items) != 2 || pods.Items[1].Name != "b" {
		t.Fatalf("list pods: %+v, %v", pods, err)
	}
	made, err := c.Pods("pt").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent-n1"}}, metav1.CreateOptions{})
	if err != nil || made.Name != "agent-n1" {
		t.Fatalf("create: %+v, %v", made, err)
	}
	grace := int64(0)
	if err := c.Pods("pt").Delete(ctx, "agent-n1", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 || nodes.Items[0].Status.Addresses[0].Address != "192.168.56.1" {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
	// A cluster-scoped get: no namespace in its path.
	if node, err := c.Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil || node.Status.Addresses[0].Address != "192.168.56.1" {
		t.Fatalf("node: %+v, %v", node, err)
	}
	if svc, err := c.Services("shop").Get(ctx, "web", metav1.GetOptions{}); err != nil || svc.Spec.ClusterIP != "10.96.0.10" {
		t.Fatalf("service: %+v, %v", svc, err)
	}
	if svcs, err := c.Services("shop").List(ctx, metav1.ListOptions{}); err != nil || len(svcs.Items) != 1 {
		t.Fatalf("services: %+v, %v", svcs, err)
	}
	slices, err := c.EndpointSlices(ctx, "shop", metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
	if err != nil || len(slices.Items) != 1 || slices.Items[0].Endpoints[0].Addresses[0] != "10.244.0.7" {
		t.Fatalf("endpointslices: %+v, %v", slices, err)
	}
	deploy := Workload{Group: "apps", Version: "v1", Resource: "deployments"}
	sel, err := c.Selector(ctx, deploy, "shop", "web")
	if err != nil || sel == nil || sel.MatchLabels["app"] != "web" {
		t.Fatalf("selector: %+v, %v", sel, err)
	}
	if _, err := c.Selector(ctx, Workload{Group: "apps", Version: "v1", Resource: "statefulsets"}, "shop", "db"); !apierrors.IsNotFound(err) {
		t.Fatalf("missing workload: %v, want NotFound", err)
	}
	names, err := c.Names(ctx, deploy, "shop")
	if err != nil || strings.Join(names, ",") != "web,api" {
		t.Fatalf("names: %v, %v", names, err)
	}
	u := c.Pods("pt").ExecURL("agent-n1", &corev1.PodExecOptions{Container: "agent", Command: []string{"pathtrace", "agent"}, Stdout: true})
	if got, want := u.String(), srv.URL+"/api/v1/namespaces/pt/pods/agent-n1/exec?command=pathtrace&command=agent&container=agent&stdout=true"; got != want {
		t.Fatalf("exec URL %s, want %s", got, want)
	}

	want := []string{
		"GET /api/v1/namespaces/shop/pods/web-0 ",
		"GET /api/v1/namespaces/shop/pods/missing ",
		"GET /api/v1/pods?fieldSelector=status.podIP%3D10.244.0.7 ",
		`POST /api/v1/namespaces/pt/pods {"kind":"Pod","apiVersion":"v1","metadata":{"name":"agent-n1"},"spec":{"containers":null},"status":{}}`,
		`DELETE /api/v1/namespaces/pt/pods/agent-n1 {"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0}`,
		"GET /api/v1/nodes ",
		"GET /api/v1/nodes/n1 ",
		"GET /api/v1/namespaces/shop/services/web ",
		"GET /api/v1/namespaces/shop/services ",
		"GET /apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweb ",
		"GET /apis/apps/v1/namespaces/shop/deployments/web ",
		"GET /apis/apps/v1/namespaces/shop/statefulsets/db ",
		"GET /apis/apps/v1/namespaces/shop/deployments ",
	}
	if got := strings.Join(api.seen, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	// The POSTed pod is JSON the API server can read back.
	var p corev1.Pod
	if err := json.Unmarshal([]byte(strings.SplitN(api.seen[3], " ", 3)[2]), &p); err != nil || p.Name != "agent-n1" {
		t.Fatalf("posted pod: %v", err)
	}
}
