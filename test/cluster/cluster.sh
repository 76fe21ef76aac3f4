#!/usr/bin/env bash
# A real Kubernetes test cluster (kube-apiserver, kubelet, kube-proxy built
# from k8s.io/kubernetes; etcd, containerd, runc, CNI plugins from Debian) in
# network and mount namespaces of its own. See README.md beside this file.
set -euo pipefail
shopt -s nullglob

LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib
for f in common build pki controlplane node flannel down workload; do
	# shellcheck source=/dev/null
	source "$LIBDIR/$f.sh"
done

usage() {
	cat >&2 <<'USAGE'
usage: cluster.sh [--prefix P] VERB [ARGS]   (prefix: --prefix, else $PATHTRACE_K8S_PREFIX, else ptk)
  build                                binaries + images into $PATHTRACE_K8S_CACHE (only what is missing)
  up [--nodes 1|2]                     start a cluster (runs build first); fails if one with this prefix exists
  down                                 remove everything of this prefix (idempotent, works after a crash)
  status                               daemons, nodes, pods
  env                                  KEY=VALUE lines for tests to source
  kubectl ARGS...                      kubectl against this cluster (run in the control-plane namespace)
  exec NODE -- CMD...                  CMD in NODE's network + mount namespace (NODE: node1, 1, P-node1, cp)
  import-image NODE|all FILE.tar       docker-archive into the node's containerd, namespace k8s.io
  ns NAME                              namespace + default ServiceAccount + kube-root-ca.crt
  pod NS/NAME NODE [--host-network] [--host-pid] [--privileged] [--image REF] [--label K=V]... [-- CMD...]
                                       busybox pod (sleep) bound to NODE, imagePullPolicy Never
  wait-pod NS/NAME [SECONDS]           until Running with an IP; prints the IP
  service NS/NAME PORT TARGETPORT POD...  ClusterIP Service + hand-written EndpointSlice; prints the ClusterIP
  make-image REF ROOTDIR OUT.tar [-- CMD...]  docker-archive of ROOTDIR (for import-image; pods: imagePullPolicy Never)
USAGE
	exit 2
}

prefix=${PATHTRACE_K8S_PREFIX:-ptk}
while [[ ${1:-} == --prefix ]]; do
	prefix=${2:?--prefix needs a value}
	shift 2
done
verb=${1:-}
[[ -n $verb ]] || usage
shift
# --prefix is also accepted after the verb (up/down/status/env).
args=()
while (($#)); do
	case $1 in
	--prefix) prefix=${2:?--prefix needs a value} && shift 2 ;;
	--) args+=("$@") && break ;;
	*) args+=("$1") && shift ;;
	esac
done
set -- "${args[@]+"${args[@]}"}"
[[ $(id -u) == 0 ]] || die "must run as root (network/mount namespaces, cgroups)"
set_prefix "$prefix"

cmd_up() {
	local nodes=1
	while (($#)); do
		case $1 in
		--nodes) nodes=${2:?} && shift 2 ;;
		*) die "up: unknown argument $1" ;;
		esac
	done
	[[ $nodes == 1 || $nodes == 2 ]] || die "up: --nodes 1 or 2"
	[[ -e $RUN || -e /run/netns/$CP_NS ]] && die "cluster '$P' exists (or left overs): run 'cluster.sh down --prefix $P' first"
	build_all
	local start=$SECONDS n m
	# Whatever fails from here on, leave nothing behind.
	trap up_failed EXIT
	trap 'exit 130' INT TERM HUP
	mkdir -p "$RUN" "$LIB"
	echo "$nodes" >"$RUN/nodes"
	pki_make "$nodes"
	cp_up
	for ((n = 1; n <= nodes; n++)); do node_up "$n"; done
	for ((n = 1; n <= nodes; n++)); do
		for ((m = 1; m <= nodes; m++)); do ((n == m)) || flannel_peer "$n" "$m"; done
	done
	for ((n = 1; n <= nodes; n++)); do node_ready "$n"; done
	trap - EXIT INT TERM HUP
	log "cluster '$P' up with $nodes node(s) in $((SECONDS - start))s"
}

# up_failed: `up` stopped half way (a die, a failed command, a signal): keep the
# logs next to $LIB for debugging, remove everything else.
up_failed() {
	local rc=$?
	trap - EXIT
	local keep=/var/tmp/$P-failed-logs
	rm -rf "$keep"
	cp -r "$LOGS" "$keep" 2>/dev/null || true
	log "up failed (exit $rc); logs kept in $keep; tearing down"
	cluster_down keep-logs || true
	exit "$rc"
}

cmd_env() {
	[[ -e $RUN/nodes ]] || die "no cluster '$P'"
	local n names=""
	q() { printf '%s=%q\n' "$1" "$2"; }
	q PATHTRACE_K8S_PREFIX "$P"
	q KUBECONFIG "$ADMIN_KUBECONFIG"
	[[ -e $LIB/pki/admin-host.kubeconfig ]] && q PATHTRACE_K8S_HOST_KUBECONFIG "$LIB/pki/admin-host.kubeconfig"
	q PATHTRACE_K8S_KUBECTL "$CACHE/kubectl"
	q PATHTRACE_K8S_CLUSTER_SH "$HERE/cluster.sh"
	q PATHTRACE_K8S_APISERVER "https://$CP_IP:$APISERVER_PORT"
	q PATHTRACE_K8S_CP_NETNS "$CP_NS"
	q PATHTRACE_K8S_CLUSTER_CIDR "$CLUSTER_CIDR"
	q PATHTRACE_K8S_SERVICE_CIDR "$SERVICE_CIDR"
	for n in $(nodes); do
		names+="$(node_name "$n") "
		q "PATHTRACE_K8S_NODE${n}_NAME" "$(node_name "$n")"
		q "PATHTRACE_K8S_NODE${n}_IP" "$(node_ip "$n")"
		q "PATHTRACE_K8S_NODE${n}_POD_CIDR" "$(node_pod_cidr "$n")"
		q "PATHTRACE_K8S_NODE${n}_NETNS" "/run/netns/$(node_ns "$n")"
		q "PATHTRACE_K8S_NODE${n}_MNTNS" "$(node_mnt_pin "$n")"
		q "PATHTRACE_K8S_NODE${n}_CRI" "unix:///run/containerd/containerd.sock"
		q "PATHTRACE_K8S_NODE${n}_CRI_HOST" "unix://$(node_run "$n")/run/containerd/containerd.sock"
		q "PATHTRACE_K8S_NODE${n}_CGROUP_ROOT" "$(node_cgroup "$n")"
	done
	q PATHTRACE_K8S_NODES "${names% }"
}

cmd_status() {
	local f pid
	echo "cluster '$P' (state $RUN, data $LIB)"
	for f in "$RUN"/pids/*; do
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			printf '  %-22s pid %-8s rss %s KiB\n' "${f##*/}" "$pid" "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
		else
			printf '  %-22s DEAD (was pid %s)\n' "${f##*/}" "$pid"
		fi
	done
	local total=0 count=0 rss
	for pid in $(cluster_pids); do
		rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
		total=$((total + ${rss:-0})) count=$((count + 1))
	done
	echo "  all $count cluster processes (daemons, shims, pods): RSS $((total / 1024)) MiB"
	pids_alive kube-apiserver || return 0
	kubectl_cp get nodes -o wide
	kubectl_cp get pods -A -o wide
}

cmd_exec() {
	local node=${1:?exec: NODE -- CMD...}
	shift
	[[ ${1:-} == -- ]] && shift
	(($#)) || die "exec: no command"
	if [[ $node == cp || $node == "$CP_NS" ]]; then
		exec ip netns exec "$CP_NS" "$@"
	fi
	local n
	n=$(node_arg "$node")
	exec nsenter --net="/run/netns/$(node_ns "$n")" --mount="$(node_mnt_pin "$n")" -- "$@"
}

cmd_import() {
	local which=${1:?import-image: NODE|all FILE.tar} file=${2:?import-image: NODE|all FILE.tar} n
	[[ -r $file ]] || die "import-image: cannot read $file"
	local targets
	if [[ $which == all ]]; then targets=$(nodes); else targets=$(node_arg "$which"); fi
	for n in $targets; do
		# Through stdin: FILE's path may be hidden inside the node's mounts.
		in_node "$n" ctr --address /run/containerd/containerd.sock -n k8s.io images import - <"$file" ||
			die "import $file into node $n"
	done
}

case $verb in
build) build_all ;;
up) cmd_up "$@" ;;
down) cluster_down ;;
status) cmd_status ;;
env) cmd_env ;;
kubectl) exec ip netns exec "$CP_NS" "$CACHE/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@" ;;
exec) cmd_exec "$@" ;;
import-image) cmd_import "$@" ;;
ns) ns_prepare "${1:?ns NAME}" ;;
pod) pod_create "$@" ;;
wait-pod) pod_wait "$@" ;;
service) service_create "$@" ;;
make-image)
	(($# >= 3)) || usage
	ref=$1 root=$2 out=$3
	shift 3
	[[ ${1:-} == -- ]] && shift
	make_image "$ref" "$root" "$(json_list "${@:-/bin/sh}")" "$out"
	;;
*) usage ;;
esac
