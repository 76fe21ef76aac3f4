# shellcheck shell=bash
# Flannel's VXLAN backend, set up the way flanneld does it (backend/vxlan):
# flannel.1 with VNI 1, UDP 8472, local = node IP, nolearning, MTU 1450, the
# node's subnet .0/32 on it; per peer an onlink route to the peer's /24 via
# the peer's .0, a permanent neighbour for that .0 with the peer's VTEP MAC,
# and an FDB entry sending that MAC to the peer's node IP.

flannel_dev() {
	local n=$1 ns
	ns=$(node_ns "$n")
	ip -n "$ns" link add flannel.1 type vxlan id 1 local "$(node_ip "$n")" dev eth0 dstport 8472 nolearning ||
		die "flannel.1 on node $n"
	ip -n "$ns" link set flannel.1 mtu 1450
	ip -n "$ns" addr add "10.244.$n.0/32" dev flannel.1
	ip -n "$ns" link set flannel.1 up
}

# flannel_peer N M: on node N, the way to node M's pods.
flannel_peer() {
	local n=$1 m=$2 ns mac
	ns=$(node_ns "$n")
	mac=$(ip -n "$(node_ns "$m")" -j link show flannel.1 | jq -r '.[0].address')
	[[ $mac =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "flannel.1 MAC of node $m: '$mac'"
	ip -n "$ns" neigh replace "10.244.$m.0" lladdr "$mac" dev flannel.1 nud permanent
	bridge -n "$ns" fdb replace "$mac" dev flannel.1 dst "$(node_ip "$m")" self permanent
	ip -n "$ns" route replace "10.244.$m.0/24" via "10.244.$m.0" dev flannel.1 onlink
}
