#!/usr/bin/env bash
# make-captures.sh — record the filter's own differential-test captures
# (capture/filter/testdata/*.pcap) from real traffic between two network
# namespaces: IPv4/IPv6 pings, fragments (ping -s 3000, 3000-byte UDP), TCP
# and UDP with socat, ARP, NS/NA and MLD (IPv6 hop-by-hop), VXLAN on 4789
# over IPv4 and on 8472 over IPv6 with pod-like inner addresses, and raw IP
# through a TUN device (socat's IP-over-UDP). VLAN tags are not made here:
# this kernel has no 802.1Q (CONFIG_VLAN_8021Q, nor bridge VLAN filtering);
# the public corpus has real tagged and QinQ frames.
#
# Files: veth.pcap (Ethernet, the underlay of everything), veth-snap54.pcap
# (the same point with a 54-byte snap length: headers cut), any.pcap
# (tcpdump -i any: LINUX_SLL2), tun.pcap (the TUN device: RAW).
#
# Usage: make-captures.sh   (root; ip, tcpdump, ping, arping, socat, /dev/net/tun)
# Everything lives in namespaces ptf<pid>a/b; the root namespace is never
# touched; the EXIT trap stops the captures and deletes the namespaces, also
# on failure. Files are replaced only when every capture succeeded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-$(cd "$HERE/.." && pwd)}
P=ptf$$
A=${P}a
B=${P}b
WORK=$(mktemp -d "/tmp/$P.XXXXXX")
CAP_PIDS=()
NSES=()

log() { printf '%s: %s\n' "$P" "$*" >&2; }
cleanup() {
	local rc=$? p ns
	trap - EXIT INT TERM
	for p in "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${CAP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in "${NSES[@]}"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
	for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for c in ip tcpdump ping arping socat timeout; do
	command -v "$c" >/dev/null || { log "missing $c"; exit 1; }
done

ina() { ip netns exec "$A" "$@"; }
inb() { ip netns exec "$B" "$@"; }

for ns in "$A" "$B"; do
	ip netns add "$ns"
	NSES+=("$ns")
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
		net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
	ip netns exec "$ns" ip link set lo up
done
ip link add "${P}v" netns "$A" type veth peer name "${P}v" netns "$B"

# start NAME NS IFACE [tcpdump options...]: capture until cleanup or stop.
start() {
	local name=$1 ns=$2 dev=$3
	shift 3
	ip netns exec "$ns" tcpdump -i "$dev" -U -n "$@" -w "$WORK/$name.pcap" 2>"$WORK/$name.err" &
	CAP_PIDS+=($!)
	for _ in $(seq 50); do
		grep -q 'listening on' "$WORK/$name.err" && return 0
		sleep 0.1
	done
	log "tcpdump $name did not start: $(cat "$WORK/$name.err")"
	exit 1
}

# The veth captures start before the addresses exist, so the DAD NS and the
# MLD reports (hop-by-hop option header) of every interface are recorded.
ina ip link set "${P}v" up
start veth "$A" "${P}v"
start veth-snap54 "$A" "${P}v" -s 54
start any "$A" any
for ns in "$A" "$B"; do
	n=1
	[[ $ns == "$B" ]] && n=2
	ip netns exec "$ns" ip link set "${P}v" up
	ip netns exec "$ns" ip addr add "10.99.0.$n/24" dev "${P}v"
	ip netns exec "$ns" ip -6 addr add "fd99::$n/64" dev "${P}v"
	peer=$((3 - n))
	ip netns exec "$ns" ip link add vx42 type vxlan id 42 local "10.99.0.$n" remote "10.99.0.$peer" dstport 4789 dev "${P}v"
	ip netns exec "$ns" ip addr add "10.244.7.$n/24" dev vx42
	ip netns exec "$ns" ip link add vx6 type vxlan id 6 local "fd99::$n" remote "fd99::$peer" dstport 8472 dev "${P}v"
	ip netns exec "$ns" ip addr add "10.244.8.$n/24" dev vx6
	ip netns exec "$ns" ip -6 addr add "fd44::$n/64" dev vx6
	for d in vx42 vx6; do ip netns exec "$ns" ip link set "$d" up; done
done
# Raw IP over UDP 7777 between two TUN devices.
inb socat UDP-LISTEN:7777 TUN:10.77.0.2/30,tun-name=tun0,iff-up &
sleep 0.3
ina socat UDP:10.99.0.2:7777,sourceport=7777 TUN:10.77.0.1/30,tun-name=tun0,iff-up &
for _ in $(seq 50); do ina ip link show tun0 >/dev/null 2>&1 && break; sleep 0.1; done
start tun "$A" tun0
sleep 2.5 # IPv6 DAD (1 s), so that the IPv6 addresses can be used

inb socat TCP-LISTEN:8080,reuseaddr,fork EXEC:/bin/cat &
inb socat TCP6-LISTEN:8080,ipv6only=1,reuseaddr,fork EXEC:/bin/cat &
inb socat UDP-RECVFROM:5353,fork EXEC:/bin/cat &
sleep 0.3

ina arping -q -c 2 -I "${P}v" 10.99.0.2 || true
ina ping -q -c 2 -i 0.2 10.99.0.2 >/dev/null
ina ping -q -c 1 -s 3000 10.99.0.2 >/dev/null
ina ping -6 -q -c 2 -i 0.2 fd99::2 >/dev/null
ina ping -6 -q -c 1 -s 3000 fd99::2 >/dev/null
ina ping -q -c 2 -i 0.2 10.244.7.2 >/dev/null
ina ping -q -c 2 -i 0.2 10.244.8.2 >/dev/null
ina ping -6 -q -c 1 fd44::2 >/dev/null
ina ping -q -c 2 -i 0.2 10.77.0.2 >/dev/null
echo hello | ina timeout 5 socat - TCP:10.99.0.2:8080
echo hello6 | ina timeout 5 socat - TCP6:[fd99::2]:8080
echo pod | ina timeout 5 socat - TCP:10.244.7.2:8080
echo dns | ina timeout 5 socat - UDP:10.99.0.2:5353
echo nobody | ina timeout 2 socat -u - UDP:10.99.0.2:53 || true
head -c 3000 /dev/zero | ina timeout 2 socat -u - UDP:10.99.0.2:9999 || true
head -c 3000 /dev/zero | ina timeout 2 socat -u - UDP6:[fd99::2]:9999 || true
echo tunnel | ina timeout 5 socat - TCP:10.77.0.2:8080
sleep 1.5 # TPACKET_V3 hands frames over when a block retires (1 s)

for p in "${CAP_PIDS[@]}"; do kill -INT "$p"; done
for p in "${CAP_PIDS[@]}"; do wait "$p" || true; done
CAP_PIDS=()
for name in veth veth-snap54 any tun; do
	grep -q '^0 packets dropped by kernel' "$WORK/$name.err" || { log "$name: $(cat "$WORK/$name.err")"; exit 1; }
done
for name in veth veth-snap54 any tun; do
	cp "$WORK/$name.pcap" "$OUT/$name.pcap"
	log "$name.pcap: $(tcpdump -r "$OUT/$name.pcap" 2>/dev/null | wc -l) frames"
done
