# shellcheck shell=bash
# A node: network namespace $P-nodeN (eth0 on the wire, flannel.1, cni0 made
# by the bridge plugin) plus a mount namespace pinned at $RUN/ns/nodeN.mnt in
# which /run, /var/lib and /var/log are the node's own trees. Inside it every
# path is the standard one of a real node (/run/containerd/containerd.sock,
# /var/lib/kubelet, /run/netns/cni-..., /var/log/pods), and the host's are
# never touched. containerd, kubelet and kube-proxy run in both namespaces.

# The kernel tunables kubelet insists on (pkg/kubelet/cm setupKernelTunables)
# are host-wide: kubelet would rewrite the host's kernel.panic and friends.
# Inside the node they are regular files bind-mounted over /proc/sys, already
# holding the values it wants, and protectKernelDefaults makes it check, not
# write.
declare -A KUBELET_STARTED
KUBELET_TUNABLES=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
	kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)

node_up() {
	local n=$1 ns dir run pin
	ns=$(node_ns "$n") dir=$(node_dir "$n") run=$(node_run "$n") pin=$(node_mnt_pin "$n")
	mkdir -p "$dir/var-lib" "$dir/var-log" "$dir/sysctl" "$dir/cni" "$run/run" "$LOGS/node$n"

	ip netns add "$ns" || die "ip netns add $ns"
	ip -n "$ns" link set lo up
	ip link add "$P-n$n-wire" netns "$CP_NS" type veth peer name eth0 netns "$ns" ||
		die "veth for node $n"
	ip -n "$CP_NS" link set "$P-n$n-wire" master "$WIRE_BR" up
	ip -n "$ns" addr add "$(node_ip "$n")/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$CP_IP"
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 ||
		die "sysctls in $ns"

	local t
	mkdir -p "$dir/sysctl/vm" "$dir/sysctl/kernel/keys"
	for t in "${KUBELET_TUNABLES[@]}"; do echo "${t#*=}" >"$dir/sysctl/${t%%=*}"; done
	flannel_dev "$n"

	# The pin directory must be a private mount for unshare to bind the
	# namespace file onto it (from the root mount namespace: nsenter, not `ip
	# netns exec`, whose own mount namespace would swallow the pin).
	mkdir -p "$RUN/ns"
	mountpoint -q "$RUN/ns" || { mount --bind "$RUN/ns" "$RUN/ns" && mount --make-private "$RUN/ns"; } ||
		die "private mount $RUN/ns"
	touch "$pin"
	nsenter --net="/run/netns/$ns" unshare --mount="$pin" --propagation private \
		sh -eu "$HERE/lib/node-mounts.sh" "$P" "$RUN" "$LIB" "$dir" "$run" "${KUBELET_TUNABLES[@]}" ||
		die "mount namespace of node $n"
	flannel_subnet_env "$n"

	node_cni_config "$n"
	node_containerd_config "$n"
	start_daemon "node$n-containerd" "$LOGS/node$n/containerd.log" \
		nsenter --net="/run/netns/$ns" --mount="$pin" -- containerd --config "$dir/containerd.toml"
	wait_for 30 "containerd of node $n (log: $LOGS/node$n/containerd.log)" \
		in_node "$n" ctr --address /run/containerd/containerd.sock version
	local img
	for img in "$CACHE"/images/*.tar; do
		in_node "$n" ctr --address /run/containerd/containerd.sock -n k8s.io images import - <"$img" >/dev/null ||
			die "import $img into node $n"
	done

	node_cgroups_make "$n"
	node_kubelet_config "$n"
	local node_ip
	node_ip=$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}')
	node_ip=${node_ip%/*}
	KUBELET_STARTED[$n]=$(now_ms)
	start_daemon "node$n-kubelet" "$LOGS/node$n/kubelet.log" \
		nsenter --net="/run/netns/$ns" --mount="$pin" -- "$CACHE/kubelet" \
		--config="$dir/kubelet.yaml" --kubeconfig="$LIB/pki/node$n.kubeconfig" \
		--hostname-override="$(node_name "$n")" --node-ip="$node_ip" --v=1
}

# node_ready N: wait until the Node is Ready, then write what the
# controller-manager and flanneld would have: spec.podCIDR and flannel's
# annotations. Then start kube-proxy (it reads the Node).
node_ready() {
	local n=$1 name
	name=$(node_name "$n")
	wait_for 60 "node $name Ready (log: $LOGS/node$n/kubelet.log)" node_is_ready "$name"
	log "node $name Ready $(secs_since "${KUBELET_STARTED[$n]}") after its kubelet's start"
	local mac
	mac=$(ip -n "$(node_ns "$n")" -j link show flannel.1 | jq -r '.[0].address')
	kubectl_cp patch node "$name" --type merge -p "{\"spec\":{\"podCIDR\":\"$(node_pod_cidr "$n")\",\"podCIDRs\":[\"$(node_pod_cidr "$n")\"]},\"metadata\":{\"annotations\":{\"flannel.alpha.coreos.com/backend-type\":\"vxlan\",\"flannel.alpha.coreos.com/backend-data\":\"{\\\"VNI\\\":1,\\\"VtepMAC\\\":\\\"$mac\\\"}\",\"flannel.alpha.coreos.com/public-ip\":\"$(node_ip "$n")\",\"flannel.alpha.coreos.com/kube-subnet-manager\":\"true\"}}}" >/dev/null
	kube_proxy_up "$n"
}

node_is_ready() {
	[[ $(kubectl_cp get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

# kubelet's cgroupRoot must exist in every hierarchy; cpuset needs its cpus
# and mems filled before anything can join.
node_cgroups_make() {
	local n=$1 h cg
	cg=$(node_cgroup "$n")
	for h in "$CGROUP_FS"/*/; do
		h=${h%/}
		[[ -d $h && ! -L $h ]] || continue
		mkdir -p "$h$cg"
		if [[ -e $h$cg/cpuset.cpus ]]; then
			cat "$h/cpuset.cpus" >"$h$cg/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h$cg/cpuset.mems"
		fi
	done
}

# Flannel's CNI plugin hands the bridge plugin exactly this (its delegate),
# and chains portmap.
node_cni_config() {
	local n=$1
	cat >"$(node_dir "$n")/cni/10-flannel.conflist" <<CNI
{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "bridge",
      "name": "cbr0",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": true,
      "hairpinMode": true,
      "ipMasq": false,
      "mtu": 1450,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$(node_pod_cidr "$n")"}]],
        "routes": [{"dst": "$CLUSTER_CIDR"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
}

# What flanneld leaves on a node for its CNI plugin; written for fidelity
# (tools read it), the cluster does not need it.
flannel_subnet_env() {
	local n=$1
	printf 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=10.244.%s.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' \
		"$CLUSTER_CIDR" "$n" >"$(node_run "$n")/run/flannel/subnet.env"
}

node_containerd_config() {
	local n=$1
	cat >"$(node_dir "$n")/containerd.toml" <<TOML
# containerd of $(node_name "$n"); paths are the node's (its mount namespace).
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# opt would create /opt/containerd on the host's /opt.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root lacks CAP_SYS_RESOURCE: without this every sandbox fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$(node_dir "$n")/cni"
    max_conf_num = 1
TOML
}

node_kubelet_config() {
	local n=$1
	cat >"$(node_dir "$n")/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $(node_cgroup "$n")
cgroupsPerQOS: true
failSwapOn: false
localStorageCapacityIsolation: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
protectKernelDefaults: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
volumePluginDir: /var/lib/kubelet/volume-plugins
resolvConf: ""
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $LIB/pki/node$n-kubelet.crt
tlsPrivateKeyFile: $LIB/pki/node$n-kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $LIB/pki/ca.crt}
authorization:
  mode: Webhook
YAML
}

kube_proxy_up() {
	local n=$1 dir
	dir=$(node_dir "$n")
	cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: $(node_name "$n")
clusterCIDR: $CLUSTER_CIDR
clientConnection:
  kubeconfig: $LIB/pki/kube-proxy.kubeconfig
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the conntrack table size (host-wide) and timeouts alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
oomScoreAdj: 0
YAML
	start_daemon "node$n-kube-proxy" "$LOGS/node$n/kube-proxy.log" \
		nsenter --net="/run/netns/$(node_ns "$n")" --mount="$(node_mnt_pin "$n")" -- \
		"$CACHE/kube-proxy" --config="$dir/kube-proxy.yaml" --v=1
}
