# shellcheck shell=bash
# Workload verbs for tests: namespaces as the controller-manager would leave
# them, busybox pods pinned to a node, a Service whose EndpointSlice is
# written by hand (no endpointslice controller runs).

# ns_prepare NS: the namespace, its `default` ServiceAccount (the
# ServiceAccount admission plugin rejects pods without it) and the
# kube-root-ca.crt ConfigMap.
ns_prepare() {
	local ns=$1
	kubectl_cp apply --server-side -f - >/dev/null <<YAML || die "namespace $ns"
apiVersion: v1
kind: Namespace
metadata: {name: "$ns"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: "$ns"}
YAML
	kubectl_cp -n "$ns" create configmap kube-root-ca.crt --from-file=ca.crt="$LIB/pki/ca.crt" \
		--dry-run=client -o yaml | kubectl_cp apply --server-side -f - >/dev/null || die "kube-root-ca.crt in $ns"
}

# pod_create NS/NAME NODE [--host-network] [--host-pid] [--privileged] [--image REF] [--label K=V]... [-- CMD...]
pod_create() {
	local ref=$1 node=$2 host_net=false host_pid=false privileged=false image=$BUSYBOX_IMAGE labels="" cmd='["sleep", "1000000"]'
	shift 2 || die "usage: pod NS/NAME NODE [--host-network] [--host-pid] [--privileged] [--image REF] [--label K=V]... [-- CMD...]"
	[[ $ref == */* ]] || die "pod: want NS/NAME, got '$ref'"
	local n
	n=$(node_arg "$node")
	while (($#)); do
		case $1 in
		--host-network) host_net=true ;;
		--host-pid) host_pid=true ;;
		--privileged) privileged=true ;;
		--image) image=$2 && shift ;;
		--label) labels+="    ${2%%=*}: \"${2#*=}\"
" && shift ;;
		--) shift && cmd=$(json_list "$@") && break ;;
		*) die "pod: unknown option $1" ;;
		esac
		shift
	done
	kubectl_cp apply -f - >/dev/null <<YAML || die "pod $ref"
apiVersion: v1
kind: Pod
metadata:
  namespace: "${ref%%/*}"
  name: "${ref#*/}"
  labels:
    app: "${ref#*/}"
$labels
spec:
  nodeName: "$(node_name "$n")"
  hostNetwork: $host_net
  hostPID: $host_pid
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: "$image"
    imagePullPolicy: Never
    securityContext: {privileged: $privileged}
    command: $cmd
YAML
}

# json_list ARG...: a JSON array of strings (jq would take "-c" for itself).
json_list() {
	local a out=""
	for a in "$@"; do out+=${out:+,}$(jq -n --arg a "$a" '$a'); done
	echo "[$out]"
}

# pod_wait NS/NAME [SECONDS]: until Running with an IP; prints the IP.
pod_wait() {
	local ref=$1 secs=${2:-60} i out
	for ((i = 0; i < secs * 5; i++)); do
		out=$(kubectl_cp -n "${ref%%/*}" get pod "${ref#*/}" -o 'jsonpath={.status.phase} {.status.podIP}' 2>/dev/null)
		if [[ $out == "Running "?* ]]; then
			echo "${out#Running }"
			return 0
		fi
		sleep 0.2
	done
	kubectl_cp -n "${ref%%/*}" describe pod "${ref#*/}" >&2 2>/dev/null
	die "pod $ref not Running with an IP after ${secs}s (last: '$out')"
}

# service_create NS/NAME PORT TARGETPORT POD...: a ClusterIP Service without
# selector and its EndpointSlice listing the pods' IPs (ready). Prints the
# ClusterIP.
service_create() {
	local ref=$1 port=$2 target=$3 ns=${1%%/*} name=${1#*/}
	shift 3 || die "usage: service NS/NAME PORT TARGETPORT POD..."
	(($#)) || die "service: no endpoint pods"
	local endpoints="" pod ip node
	for pod in "$@"; do
		ip=$(kubectl_cp -n "$ns" get pod "$pod" -o 'jsonpath={.status.podIP}')
		node=$(kubectl_cp -n "$ns" get pod "$pod" -o 'jsonpath={.spec.nodeName}')
		[[ -n $ip ]] || die "service: pod $ns/$pod has no IP"
		endpoints+="- addresses: [\"$ip\"]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: \"$node\"
  targetRef: {kind: Pod, namespace: \"$ns\", name: \"$pod\"}
"
	done
	kubectl_cp apply -f - >/dev/null <<YAML || die "service $ref"
apiVersion: v1
kind: Service
metadata: {namespace: "$ns", name: "$name"}
spec:
  type: ClusterIP
  ports:
  - {name: p, port: $port, targetPort: $target, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: "$ns"
  name: "$name-manual"
  labels:
    kubernetes.io/service-name: "$name"
    endpointslice.kubernetes.io/managed-by: pathtrace-test-cluster
addressType: IPv4
ports:
- {name: p, port: $target, protocol: TCP}
endpoints:
$endpoints
YAML
	kubectl_cp -n "$ns" get service "$name" -o 'jsonpath={.spec.clusterIP}'
	echo
}
