# shellcheck shell=bash
# Names, paths and small helpers shared by every cluster.sh verb. Everything
# the cluster creates on the machine is named after PREFIX, so `down` can find
# it again from names alone (after a SIGKILL of `up` or of the test process).

# Daemons exec nft, iptables, mount...: sbin dirs whatever the caller's PATH.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

K8S_VERSION=v1.37.2
CACHE=${PATHTRACE_K8S_CACHE:-/var/cache/pathtrace/k8s/$K8S_VERSION}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Addresses. They exist only inside the cluster's own network namespaces, so two
# clusters with different prefixes may use the same ones.
UNDERLAY_PREFIX=172.31.250     # the wire between the nodes and the control plane
CP_IP=$UNDERLAY_PREFIX.1       # API server, on the wire bridge in the cp namespace
CLUSTER_CIDR=10.244.0.0/16     # pods; node N owns 10.244.N.0/24
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
APISERVER_PORT=6443

set_prefix() {
	P=$1
	[[ $P =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "prefix '$P': want 1-8 characters [a-z0-9], starting with a letter (interface names hold 15)"
	RUN=/run/$P                # pids, pinned mount namespaces, node /run trees
	LIB=/var/lib/$P            # certs, configs, etcd, node /var trees, logs
	LOGS=$LIB/logs
	CP_NS=$P-cp                # etcd + kube-apiserver + the wire bridge
	WIRE_BR=$P-wire
	ADMIN_KUBECONFIG=$LIB/pki/admin.kubeconfig
	CGROUP_FS=/sys/fs/cgroup
}

now_ms() { date +%s%3N; }
# secs_since MS: seconds since now_ms returned MS, 0.1 s resolution.
secs_since() { local d=$(($(now_ms) - $1)); printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100)); }
log() { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }

node_name() { echo "$P-node$1"; }
node_ns() { echo "$P-node$1"; }
node_ip() { echo "$UNDERLAY_PREFIX.$((10 + $1))"; }
node_pod_cidr() { echo "10.244.$1.0/24"; }
node_dir() { echo "$LIB/node$1"; }           # the node's /var/lib, /var/log, configs
node_run() { echo "$RUN/node$1"; }           # the node's /run
node_mnt_pin() { echo "$RUN/ns/node$1.mnt"; } # bind mount pinning its mount namespace
node_cgroup() { echo "/$P-node$1"; }          # kubelet cgroupRoot, in every v1 hierarchy

# Nodes of the running cluster, from the state dir (not from arguments, so that
# verbs other than `up` need no --nodes).
nodes() {
	local f
	for f in "$RUN"/ns/node*.mnt; do
		[[ -e $f ]] || continue
		f=${f##*/node}
		echo "${f%.mnt}"
	done
}

# node_arg NAME|N -> N. Accepts "node1", "1" and the full node name "ptk-node1".
node_arg() {
	local a=${1#"$P"-}
	a=${a#node}
	[[ $a =~ ^[0-9]+$ && -e $(node_mnt_pin "$a") ]] || die "no node '$1' in cluster '$P' (nodes: $(nodes | tr '\n' ' '))"
	echo "$a"
}

# in_node N CMD...: run CMD in node N's network and mount namespace, the way a
# program started on that node runs.
in_node() {
	local n=$1
	shift
	nsenter --net="/run/netns/$(node_ns "$n")" --mount="$(node_mnt_pin "$n")" -- "$@"
}

in_cp() { ip netns exec "$CP_NS" "$@"; }

# start_daemon NAME LOGFILE CMD...: start CMD detached from the caller (its own
# session, no stdin) and record its pid, so `down` can stop it after the shell
# that ran `up` is gone. CMD is normally an nsenter/ip-netns-exec wrapper that
# execs the daemon, so the pid is the daemon's.
start_daemon() {
	local name=$1 logfile=$2
	shift 2
	mkdir -p "$RUN/pids" "$(dirname "$logfile")"
	setsid "$@" </dev/null >>"$logfile" 2>&1 &
	echo $! >"$RUN/pids/$name"
}

# wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "timed out after ${secs}s waiting for $what"
}

kubectl_cp() { in_cp "$CACHE/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
