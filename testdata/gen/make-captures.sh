#!/usr/bin/env bash
# make-captures.sh — record the golden captures under testdata/captures/ on a
# real kernel, the way the seed did it: a Flannel-style node (cni0 bridge, two
# pods on veths, hairpin on) built from network namespaces, tcpdump started at
# every point of the path at once, then one ping.
#
# Usage: make-captures.sh [scenario...]   (default: all)
#   scenarios: seed promisc hairpin-arp nft-drop routed any dumpcap-multi
#              flood-wrap ipv6
#   OUT=dir          where to write (default: testdata/captures beside gen/)
#   FLOOD_FULL=1     flood-wrap without the seq-window capture filter (tens of MB;
#                    meant for making the file at test time, not for committing)
#
# Needs root, ip, bridge, tcpdump, tshark, capinfos, dumpcap, nft, ping, arping
# (Debian: iproute2 tcpdump tshark wireshark-common nftables iputils-ping
# iputils-arping gzip).
# Everything happens in namespaces named ptgen<pid>-*; the root namespace is
# never touched. The EXIT trap stops every capture and deletes every namespace
# this run made, also on failure. Each scenario replaces its directory only
# once its capture succeeded, so re-running is safe.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-$(cd "$HERE/.." && pwd)/captures}
RUN=${RUN:-ptgen$$}
WORK=$(mktemp -d "/tmp/$RUN.XXXXXX")
ALL=(seed promisc hairpin-arp nft-drop routed any dumpcap-multi flood-wrap ipv6)
# The seed's tcpdump options (plus nano stamps). Without --immediate-mode,
# TPACKET_V3 hands packets to tcpdump only when a ring block retires (tcpdump's
# 1 s timeout), so a SIGINT 0.3 s after the ping loses the last echoes
# ("captured" < "received by filter"): STOP_WAIT waits past that timeout.
# (--immediate-mode would avoid the wait, but then "-i any" drops packets in the
# kernel with the default 2 MB ring: one block per packet.)
read -ra TCPDUMP_OPTS <<<"${TCPDUMP_OPTS:---time-stamp-precision=nano -U -n -e}"
STOP_WAIT=${STOP_WAIT:-1.5}
FIELDS=(frame.number frame.time_epoch eth.src eth.dst ip.ttl icmp.type icmp.seq icmp.ident
	arp.opcode arp.src.proto_ipv4 arp.dst.proto_ipv4
	ipv6.hlim icmpv6.type icmpv6.echo.sequence_number icmpv6.echo.identifier
	frame.interface_name sll.ifindex sll.pkttype sll.src.eth frame.len)

NSES=()     # namespaces this run created, deleted by cleanup
CAP_PIDS=() # running capture processes
CAP_NAMES=()
CAP_ERRS=()
CHECK_FAILS=0

log() { printf '%s: %s\n' "$RUN" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
	local rc=$? p ns
	trap - EXIT INT TERM
	for p in "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${CAP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
	local c
	for c in "$@"; do command -v "$c" >/dev/null || die "missing command $c"; done
}

# --- building the node -------------------------------------------------------

mkns() { # name [ipv6]
	ip netns add "$1"
	NSES+=("$1")
	local v6=${2:-0}
	if [[ $v6 == 1 ]]; then
		# IPv6 on, but no router solicitations: only the scenario's own traffic.
		ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
			net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
	else
		# IPv6 off keeps MLD/RS/DAD noise out of the files.
		ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	fi
	ip -n "$1" link set lo up
}

delns_all() {
	local ns
	for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	NSES=()
}

randmac() { printf '%02x%s' $(((0x$(od -An -N1 -tx1 /dev/urandom | tr -d ' ') & 0xfc) | 0x02)) "$(od -An -N5 -tx1 /dev/urandom | tr ' ' ':' | tr -d '\n')"; }
randveth() { printf 'veth%s' "$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"; }

ROLES=() # "ifname role" pairs in NODE, for naming points of multi-interface files

# mkbridge BR CIDR
mkbridge() {
	# An own address, as Flannel's cni0 has, rather than the lowest port's.
	ip -n "$NODE" link add "$1" address "$(randmac)" type bridge
	ip -n "$NODE" link set "$1" mtu 1450
	ip -n "$NODE" addr add "$2" dev "$1"
	ip -n "$NODE" link set "$1" up
	ROLES+=("$1 $1")
}

# addpod POD IP/LEN GW BRIDGE ROLE → sets VETH to the host-side name
addpod() {
	local pod=$1 addr=$2 gw=$3 br=$4 role=$5
	VETH=$(randveth)
	ip -n "$NODE" link add "$VETH" mtu 1450 type veth peer name eth0 mtu 1450 netns "$pod"
	ip -n "$NODE" link set "$VETH" master "$br" up
	ip netns exec "$NODE" bridge link set dev "$VETH" hairpin on
	ip -n "$pod" link set eth0 up
	ip -n "$pod" addr add "$addr" dev eth0
	ip -n "$pod" route add default via "$gw"
	ip -n "$pod" route add 10.244.0.0/16 via "$gw"
	ROLES+=("$VETH $role-veth")
}

# build_node [ipv6]: the seed's node. Sets NODE POD1 POD2 V1 V2.
build_node() {
	local v6=${1:-0}
	NODE=$RUN-node POD1=$RUN-pod1 POD2=$RUN-pod2
	ROLES=()
	mkns "$NODE" "$v6"
	mkns "$POD1" "$v6"
	mkns "$POD2" "$v6"
	mkbridge cni0 10.244.1.1/24
	addpod "$POD1" 10.244.1.2/24 10.244.1.1 cni0 pod1
	V1=$VETH
	addpod "$POD2" 10.244.1.3/24 10.244.1.1 cni0 pod2
	V2=$VETH
	if [[ $v6 == 1 ]]; then
		# nodad: usable at once; the link-local addresses still run (enhanced) DAD.
		ip -n "$POD1" addr add fd00:10:244:1::2/64 dev eth0 nodad
		ip -n "$POD2" addr add fd00:10:244:1::3/64 dev eth0 nodad
	fi
}

# build_routed: NODE with cni0 (pod1) and cni1 (pod3), forwarding on.
build_routed() {
	NODE=$RUN-node POD1=$RUN-pod1 POD3=$RUN-pod3
	ROLES=()
	mkns "$NODE"
	mkns "$POD1"
	mkns "$POD3"
	ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
	mkbridge cni0 10.244.1.1/24
	mkbridge cni1 10.244.2.1/24
	addpod "$POD1" 10.244.1.2/24 10.244.1.1 cni0 pod1
	V1=$VETH
	addpod "$POD3" 10.244.2.2/24 10.244.2.1 cni1 pod3
	V3=$VETH
}

flush_neigh() {
	local ns
	for ns in "${NSES[@]}"; do ip -n "$ns" neigh flush all 2>/dev/null || true; done
}

# wait until no address in any namespace is still tentative (IPv6 DAD).
wait_dad() {
	local ns i
	for ((i = 0; i < 100; i++)); do
		local busy=0
		for ns in "${NSES[@]}"; do
			[[ -n $(ip -n "$ns" -6 addr show tentative) ]] && busy=1
		done
		((busy == 0)) && return 0
		sleep 0.1
	done
	die "IPv6 addresses still tentative after 10 s"
}

# --- captures ----------------------------------------------------------------

# cap NAME NS IFACE FILE [tcpdump args...]
cap() {
	local name=$1 ns=$2 ifc=$3 file=$4
	shift 4
	local err=$WORK/$name.err
	ip netns exec "$ns" tcpdump "${TCPDUMP_OPTS[@]}" -i "$ifc" -w "$file" "$@" 2>"$err" &
	CAP_PIDS+=($!)
	CAP_NAMES+=("$name")
	CAP_ERRS+=("$err")
}

# capdumpcap NAME NS FILE dumpcap-args...
capdumpcap() {
	local name=$1 ns=$2 file=$3
	shift 3
	local err=$WORK/$name.err
	ip netns exec "$ns" dumpcap "$@" -w "$file" 2>"$err" &
	CAP_PIDS+=($!)
	CAP_NAMES+=("$name")
	CAP_ERRS+=("$err")
}

# wait until every capture says it is listening. Before that, let the
# IGMP reports that follow link-up (unsolicited, repeated within 1 s) go by.
cap_ready() {
	local i j ok
	sleep 1.5
	for ((i = 0; i < 100; i++)); do
		ok=1
		for j in "${!CAP_PIDS[@]}"; do
			kill -0 "${CAP_PIDS[$j]}" 2>/dev/null || die "capture ${CAP_NAMES[$j]} exited: $(cat "${CAP_ERRS[$j]}")"
			grep -q -e 'listening on' -e '^Capturing on' "${CAP_ERRS[$j]}" || ok=0
		done
		((ok)) && return 0
		sleep 0.1
	done
	die "captures not listening after 10 s"
}

# stop all captures; fail (return 1) if any reports a kernel drop or lost a
# packet it had counted.
cap_stop() {
	local p j bad=0 err dropped captured received
	sleep "$STOP_WAIT"
	for p in "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${CAP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for j in "${!CAP_NAMES[@]}"; do
		err=${CAP_ERRS[$j]}
		if grep -Eq 'packets? captured' "$err"; then
			captured=$(awk '/packets? captured/ {print $1}' "$err")
			received=$(awk '/packets? received by filter/ {print $1}' "$err")
			dropped=$(awk '/packets? dropped by kernel/ {print $1}' "$err")
			log "${CAP_NAMES[$j]}: captured $captured received $received dropped $dropped"
			STATS+=("${CAP_NAMES[$j]}: $captured captured, $received received by filter, $dropped dropped by kernel")
			[[ $dropped == 0 ]] || bad=1
			[[ $captured == "$received" ]] || { log "${CAP_NAMES[$j]}: captured != received"; bad=1; }
		elif grep -q 'Packets received/dropped' "$err"; then
			# dumpcap: "Packets received/dropped on interface 'x': 12/0 (...)"
			while read -r line; do
				log "${CAP_NAMES[$j]}: $line"
				STATS+=("${CAP_NAMES[$j]}: $line")
				[[ $line =~ :\ [0-9]+/0\  ]] || bad=1
			done < <(grep 'Packets received/dropped' "$err")
		else
			log "${CAP_NAMES[$j]}: no statistics: $(cat "$err")"
			bad=1
		fi
	done
	CAP_PIDS=() CAP_NAMES=() CAP_ERRS=()
	return "$bad"
}

# --- scenarios ---------------------------------------------------------------
# Each sc_X runs in a fresh node, writes its files into $DIR and sets
# CMDS (what was run), POINTS (path order of the request), PROTO, STORY.

five_points() { # [cni0 extra args...]
	cap pod1 "$POD1" eth0 "$DIR/pod1.cap" -p
	cap pod1-veth "$NODE" "$V1" "$DIR/pod1-veth.cap" -p
	cap cni0 "$NODE" cni0 "$DIR/cni0.cap" "$@"
	cap pod2-veth "$NODE" "$V2" "$DIR/pod2-veth.cap" -p
	cap pod2 "$POD2" eth0 "$DIR/pod2.cap" -p
}

FILES_ORDER=(pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap)
POINTS5="pod1 pod1-veth cni0 pod2-veth pod2"
PING3=(ping -c 3 -i 0.2 -W 1 10.244.1.3)

sc_seed() {
	build_node
	five_points -p
	cap_ready
	flush_neigh
	ip netns exec "$POD1" "${PING3[@]}" >/dev/null || true
	CMDS="tcpdump ${TCPDUMP_OPTS[*]} -p -i IF -w F at all five points (cni0 too, as the seed's tcpdump -pne); ip netns exec POD1 ${PING3[*]}"
	POINTS=$POINTS5 PROTO=icmp
	STORY="cni0 is captured without promiscuous mode, as in the seed: the bridge forwards the unicast echo between its ports without passing it up to cni0, so every echo is a gap at cni0 (seen before and after it). ARP requests are broadcast and do show at cni0."
}

sc_promisc() {
	build_node
	five_points
	cap_ready
	flush_neigh
	ip netns exec "$POD1" "${PING3[@]}" >/dev/null || true
	CMDS="tcpdump ${TCPDUMP_OPTS[*]} -p -i IF -w F at pod1, pod1-veth, pod2-veth, pod2; cni0 without -p (promiscuous); ip netns exec POD1 ${PING3[*]}"
	POINTS=$POINTS5 PROTO=icmp
	STORY="cni0 promiscuous: every echo is seen at all five points, requests pod1 → pod1-veth → cni0 → pod2-veth → pod2 and replies back."
}

sc_hairpin-arp() {
	build_node
	five_points
	cap node-any "$NODE" any "$DIR/node-any.cap"
	cap_ready
	flush_neigh
	ip netns exec "$POD1" arping -c 1 -w 1 -I eth0 10.244.1.3 >/dev/null || true
	ip netns exec "$POD1" ip neigh flush all
	ip netns exec "$POD1" ping -c 1 -W 1 10.244.1.3 >/dev/null || true
	CMDS="five points as in promisc plus tcpdump -i any in NODE (node-any.cap, SLL2 keeps the direction); ip netns exec POD1 arping -c 1 -w 1 -I eth0 10.244.1.3; ip neigh flush all; ping -c 1 -W 1 10.244.1.3"
	POINTS=$POINTS5 PROTO=icmp
	STORY="Both ARP requests from pod1 (arping's, then the kernel's for the ping) are broadcast; cni0 floods them to every port and, hairpin being on, back out of pod1's own port: the identical frame appears twice at pod1-veth (first received from pod1, then sent back to it) and twice at pod1 (sent, then received). pod1-veth.cap (pcap) has no direction; node-any.cap shows it: sll.pkttype 1 (broadcast, in) then 4 (outgoing) on pod1-veth's ifindex."
}

sc_nft-drop() {
	build_node
	ip netns exec "$NODE" nft -f - <<-'EOF'
		table bridge pt {
			chain forward {
				type filter hook forward priority 0;
				ip daddr 10.244.1.3 icmp type echo-request drop;
			}
		}
	EOF
	five_points
	cap_ready
	flush_neigh
	ip netns exec "$POD1" "${PING3[@]}" >/dev/null || true
	CMDS="nft in NODE: table bridge pt { chain forward { type filter hook forward priority 0; ip daddr 10.244.1.3 icmp type echo-request drop; } }; five points as in promisc (cni0 promiscuous); ip netns exec POD1 ${PING3[*]}"
	POINTS=$POINTS5 PROTO=icmp
	STORY="Each echo request is seen at pod1, pod1-veth and cni0 (promiscuous: the bridge passes it up before the forward hook) and never at pod2-veth or pod2: lost after cni0. There are no replies. ARP is not affected."
}

sc_routed() {
	build_routed
	cap pod1 "$POD1" eth0 "$DIR/pod1.cap" -p
	cap pod1-veth "$NODE" "$V1" "$DIR/pod1-veth.cap" -p
	cap cni0 "$NODE" cni0 "$DIR/cni0.cap"
	cap cni1 "$NODE" cni1 "$DIR/cni1.cap"
	cap pod3-veth "$NODE" "$V3" "$DIR/pod3-veth.cap" -p
	cap pod3 "$POD3" eth0 "$DIR/pod3.cap" -p
	cap_ready
	flush_neigh
	ip netns exec "$POD1" ping -c 3 -i 0.2 -W 1 10.244.2.2 >/dev/null || true
	CMDS="NODE: cni0 10.244.1.1/24 (pod1 10.244.1.2), cni1 10.244.2.1/24 (pod3 10.244.2.2), net.ipv4.ip_forward=1; tcpdump at pod1, pod1-veth, cni0, cni1, pod3-veth, pod3 (bridges promiscuous); ip netns exec POD1 ping -c 3 -i 0.2 -W 1 10.244.2.2"
	POINTS="pod1 pod1-veth cni0 cni1 pod3-veth pod3" PROTO=icmp
	STORY="Requests pod1 → pod1-veth → cni0 → cni1 → pod3-veth → pod3, replies back. The node routes between cni0 and cni1: the Ethernet addresses change (pod1→cni0 becomes cni1→pod3) and the TTL drops 64 → 63 there. The first request makes the node resolve pod3 by ARP on cni1 (first two frames of cni1.cap) while it waits between cni0 and cni1."
}

sc_any() {
	build_node
	cap pod1 "$POD1" eth0 "$DIR/pod1.cap" -p
	cap node-any "$NODE" any "$DIR/node-any.cap"
	cap pod2 "$POD2" eth0 "$DIR/pod2.cap" -p
	cap_ready
	flush_neigh
	ip netns exec "$POD1" "${PING3[@]}" >/dev/null || true
	CMDS="tcpdump ${TCPDUMP_OPTS[*]} -i any -w node-any.cap in NODE; -p -i eth0 in POD1 and POD2; ip netns exec POD1 ${PING3[*]}"
	POINTS=$POINTS5 PROTO=icmp
	STORY="node-any.cap (LINUX_SLL2) holds the frames of pod1-veth and pod2-veth interleaved, told apart by sll.ifindex; the any device is never promiscuous, so bridged unicast is not seen on cni0 (only broadcast ARP, and cni0's own ARP if any)."
}

sc_dumpcap-multi() {
	build_node
	cap pod1 "$POD1" eth0 "$DIR/pod1.cap" -p
	# Interface order deliberately not the path order.
	capdumpcap node "$NODE" "$DIR/node.pcapng" -i cni0 -i "$V2" -i "$V1"
	cap pod2 "$POD2" eth0 "$DIR/pod2.cap" -p
	cap_ready
	flush_neigh
	ip netns exec "$POD1" "${PING3[@]}" >/dev/null || true
	CMDS="ip netns exec NODE dumpcap -i cni0 -i $V2 -i $V1 -w node.pcapng (promiscuous, interface order not the path order); tcpdump -p at pod1 and pod2 eth0; ip netns exec POD1 ${PING3[*]}"
	POINTS=$POINTS5 PROTO=icmp
	STORY="node.pcapng has three interfaces in the order cni0, pod2-veth, pod1-veth; the path order pod1-veth → cni0 → pod2-veth must come from the traffic. cni0 is promiscuous, so it sees every echo."
}

FLOOD_FILTER='icmp and (icmp[6:2] >= 65336 or icmp[6:2] < 200)'
sc_flood-wrap() {
	build_node
	local filt=()
	[[ ${FLOOD_FULL:-0} == 1 ]] || filt=("$FLOOD_FILTER")
	cap pod1 "$POD1" eth0 "$DIR/pod1.cap" -p -s 96 "${filt[@]}"
	cap cni0 "$NODE" cni0 "$DIR/cni0.cap" -s 96 "${filt[@]}"
	cap pod2 "$POD2" eth0 "$DIR/pod2.cap" -p -s 96 "${filt[@]}"
	cap_ready
	flush_neigh
	ip netns exec "$POD1" ping -q -f -c 65600 -s 16 10.244.1.3 >"$WORK/flood.out" || true
	tail -2 "$WORK/flood.out" >&2
	CMDS="tcpdump ${TCPDUMP_OPTS[*]} -s 96 at pod1 (-p), cni0 (promiscuous), pod2 (-p), filter '${filt[*]:-none}'; ip netns exec POD1 ping -q -f -c 65600 -s 16 10.244.1.3; files gzip -9"
	POINTS="pod1 cni0 pod2" PROTO=icmp
	STORY="A flood ping of 65600 echoes: seq runs 1..65535 then wraps to 0..64 with the same ident, so seq 1..64 occur twice a few seconds apart. The capture filter keeps only seq < 200 and seq >= 65336 (both rounds) to keep the files small. Every echo is seen at all three points; the analyzer must pair the second round's seq n with the second round, not the first."
}

sc_ipv6() {
	build_node 1
	wait_dad
	sleep 1 # let the MLD reports of link-up go by before capturing
	five_points
	cap_ready
	flush_neigh
	ip netns exec "$POD1" ping -6 -c 2 -i 0.2 -W 1 fd00:10:244:1::3 >/dev/null || true
	CMDS="IPv6 on (router_solicitations=0, accept_ra=0), pods fd00:10:244:1::2/64 and ::3 (nodad); five points as in promisc; ip netns exec POD1 ping -6 -c 2 -i 0.2 -W 1 fd00:10:244:1::3"
	POINTS=$POINTS5 PROTO=icmpv6
	STORY="Neighbour solicitation (multicast to the solicited-node address, flooded, hairpin-reflected back to pod1) and advertisement, then two ICMPv6 echo requests and replies at all five points; hop limit 64 everywhere."
}

# --- facts -------------------------------------------------------------------

# point_of FILE → the point a single-interface file stands for.
point_of() { basename "${1%%.*}"; }

# write_tsv: tshark output of every file, one row per frame, with the point
# (for multi-interface files: the role of the frame's interface).
write_tsv() {
	local tsv=$DIR/tshark.tsv f args=() fld map
	for fld in "${FIELDS[@]}"; do args+=(-e "$fld"); done
	map=$WORK/roles
	: >"$map"
	local r
	for r in "${ROLES[@]}"; do echo "$r" >>"$map"; done
	ip -n "$NODE" -o link | awk -F': ' '{split($2, n, "@"); print $1, n[1]}' >"$WORK/ifindex"
	{
		printf 'point\tfile'
		printf '\t%s' "${FIELDS[@]}"
		printf '\n'
		for f in "${FILES[@]}"; do
			tshark -r "$DIR/$f" -T fields "${args[@]}" |
				awk -F'\t' -v OFS='\t' -v file="$f" -v pt="$(point_of "$f")" -v map="$map" -v idx="$WORK/ifindex" '
					BEGIN {
						while ((getline l < map) > 0) { split(l, a, " "); role[a[1]] = a[2] }
						while ((getline l < idx) > 0) { split(l, a, " "); name[a[1]] = a[2] }
					}
					{
						p = pt
						if ($16 != "" && ($16 in role)) p = role[$16]
						else if ($17 != "" && (name[$17] in role)) p = role[name[$17]]
						else if ($17 != "" && ($17 in name)) p = name[$17]
						print p, file, $0
					}'
		done
	} >"$tsv"
}

# order_of FILE: whether the file's frames are in time order (a multi-interface
# file need not be: dumpcap writes per interface, "any" per CPU ring).
order_of() {
	awk -F'\t' -v f="$1" 'NR > 1 && $2 == f { if (seen && ($4 "") < prev) inv++; prev = $4 ""; seen = 1 }
		END { if (inv) print "NOT in time order (" inv " frames earlier than the one before)"; else print "in time order" }' "$DIR/tshark.tsv"
}

# facts_body NOTE: the files, capture statistics, expected story and echo
# table of a FACTS.md; NOTE says how tshark.tsv was made.
facts_body() {
	local f r
	echo "Files:"
	echo
	for f in "${FILES[@]}"; do
		echo "- $f: $(capinfos -T -r -t -E -c "$DIR/$f" 2>/dev/null | awk -F'\t' '{print $2", "$3", "$4" packets"}') ($(stat -c %s "$DIR/$f") bytes), $(order_of "$f")"
	done
	echo
	echo "Capture statistics:"
	echo
	for r in "${STATS[@]}"; do echo "- $r"; done
	echo
	echo "## Expected story"
	echo
	echo "$STORY"
	echo
	echo "## What tshark shows"
	echo
	echo "$1"
	echo
	awk -F'\t' -v points="$POINTS" -v proto="$PROTO" -v brief="${BRIEF:-0}" -f "$HERE/story.awk" "$DIR/tshark.tsv"
}

write_facts() {
	local facts=$DIR/FACTS.md f
	{
		echo "# $SC"
		echo
		echo "Made by testdata/gen/make-captures.sh on $(date -u +%Y-%m-%d), kernel $(uname -r), $(tcpdump --version | head -1), $(tshark --version | head -1 | sed "s/\.$//"), $(dumpcap --version | head -1 | sed "s/\.$//")."
		echo
		echo "Command: $CMDS"
		echo
		echo "Host-side interfaces in NODE (role ifindex name mac):"
		echo
		local r nm role
		for r in "${ROLES[@]}"; do
			nm=${r%% *} role=${r#* }
			echo "- $role: $(ip -n "$NODE" -o link show "$nm" | awk '{sub(":", "", $1); print $1}') $nm $(cat "$WORK/mac-$nm")"
		done
		for r in "${PODMACS[@]}"; do echo "- $r"; done
		echo
		facts_body "tshark.tsv = \`tshark -r FILE -T fields -e frame.number -e frame.time_epoch -e eth.src -e eth.dst -e ip.ttl -e icmp.type -e icmp.seq -e icmp.ident ...\` (all columns in its header) for every file, prefixed by point and file."
		echo
		echo "## Checks"
		echo
		for r in "${CHECKS[@]}"; do echo "- $r"; done
	} >"$facts"
}

# record MACs while the namespaces still exist.
record_macs() {
	local r nm
	PODMACS=()
	for r in "${ROLES[@]}"; do
		nm=${r%% *}
		ip -n "$NODE" -o link show "$nm" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2 >"$WORK/mac-$nm"
	done
	local ns
	for ns in "${NSES[@]}"; do
		[[ $ns == "$NODE" ]] && continue
		PODMACS+=("${ns#"$RUN"-} eth0 $(ip -n "$ns" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)")
	done
}

# count ROWS matching an awk condition over tshark.tsv ($1 point, then FIELDS).
count() { awk -F'\t' "NR > 1 && ($1) {n++} END {print n+0}" "$DIR/tshark.tsv"; }

# check DESCRIPTION AWK-CONDITION EXPECTED
check() {
	local got
	got=$(count "$2")
	if [[ $got == "$3" ]]; then
		CHECKS+=("ok: $1 = $got")
	else
		CHECKS+=("DIFFERENT: $1 = $got (expected $3)")
		log "$SC: $1 = $got, expected $3"
		CHECK_FAILS=$((CHECK_FAILS + 1))
	fi
}

# columns: 1 point 2 file 3 frame.number 4 epoch 5 eth.src 6 eth.dst 7 ttl
# 8 icmp.type 9 icmp.seq 10 icmp.ident 11 arp.opcode ... 15 icmpv6.type
# 16 icmpv6 seq 19 sll.ifindex 20 sll.pkttype
checks_for() {
	CHECKS=()
	case $SC in
	seed)
		check "echo requests at pod1, pod1-veth, pod2-veth, pod2" '$8=="8" && $1!="cni0"' 12
		check "echo replies at pod1, pod1-veth, pod2-veth, pod2" '$8=="0" && $1!="cni0"' 12
		check "echoes at cni0 (not promiscuous)" '$1=="cni0" && $8!=""' 0
		check "ARP requests at cni0" '$1=="cni0" && $11=="1"' 1
		;;
	promisc | dumpcap-multi)
		check "echo requests at the five points" '$8=="8"' 15
		check "echo replies at the five points" '$8=="0"' 15
		;;
	hairpin-arp)
		check "ARP requests at pod1-veth (2 requests x in+hairpin)" '$1=="pod1-veth" && $2=="pod1-veth.cap" && $11=="1"' 4
		check "ARP requests at pod1 (sent + reflected)" '$1=="pod1" && $11=="1"' 4
		check "ARP requests on pod1-veth in node-any.cap, incoming broadcast" '$2=="node-any.cap" && $1=="pod1-veth" && $11=="1" && $20=="1"' 2
		check "ARP requests on pod1-veth in node-any.cap, outgoing (hairpin)" '$2=="node-any.cap" && $1=="pod1-veth" && $11=="1" && $20=="4"' 2
		;;
	nft-drop)
		check "echo requests at pod1, pod1-veth, cni0" '$8=="8" && ($1=="pod1" || $1=="pod1-veth" || $1=="cni0")' 9
		check "echo requests at pod2-veth, pod2" '$8=="8" && ($1=="pod2-veth" || $1=="pod2")' 0
		check "echo replies anywhere" '$8=="0"' 0
		;;
	routed)
		check "echo requests at the six points" '$8=="8"' 18
		check "echo replies at the six points" '$8=="0"' 18
		check "requests with TTL 64 before routing" '$8=="8" && $7=="64" && ($1=="pod1" || $1=="pod1-veth" || $1=="cni0")' 9
		check "requests with TTL 63 after routing" '$8=="8" && $7=="63" && ($1=="cni1" || $1=="pod3-veth" || $1=="pod3")' 9
		;;
	any)
		check "echo requests in node-any.cap on pod1-veth" '$2=="node-any.cap" && $1=="pod1-veth" && $8=="8"' 3
		check "echo requests in node-any.cap on pod2-veth" '$2=="node-any.cap" && $1=="pod2-veth" && $8=="8"' 3
		check "echo requests in node-any.cap on cni0" '$2=="node-any.cap" && $1=="cni0" && $8=="8"' 0
		;;
	flood-wrap)
		check "echo requests seq 1..64 at pod1 (twice each)" '$1=="pod1" && $8=="8" && $9>=1 && $9<=64' 128
		check "echo request seq 0 at pod1 (after the wrap)" '$1=="pod1" && $8=="8" && $9=="0"' 1
		if [[ ${FLOOD_FULL:-0} != 1 ]]; then
			check "frames at pod1 (464 echoes x 2)" '$1=="pod1"' 928
			check "frames at cni0" '$1=="cni0"' 928
			check "frames at pod2" '$1=="pod2"' 928
		fi
		;;
	ipv6)
		check "ICMPv6 echo requests at the five points" '$15=="128"' 10
		check "ICMPv6 echo replies at the five points" '$15=="129"' 10
		check "neighbour solicitations at pod1-veth (sent + hairpin)" '$1=="pod1-veth" && $15=="135"' 2
		;;
	esac
}

run_scenario() {
	SC=$1
	local attempt
	declare -F "sc_$SC" >/dev/null || die "unknown scenario $SC"
	for attempt in 1 2 3; do
		DIR=$WORK/out/$SC
		rm -rf "$DIR"
		mkdir -p "$DIR"
		STATS=()
		log "$SC: attempt $attempt"
		"sc_$SC"
		record_macs
		if cap_stop; then
			break
		fi
		delns_all
		((attempt < 3)) || die "$SC: captures dropped packets three times"
	done
	FILES=()
	local f
	for f in "${FILES_ORDER[@]}" pod1-veth.cap cni1.cap pod3-veth.cap pod3.cap node-any.cap node.pcapng; do
		[[ -e $DIR/$f ]] || continue
		[[ " ${FILES[*]} " == *" $f "* ]] && continue
		FILES+=("$f")
	done
	if [[ $SC == flood-wrap ]]; then
		for f in "${!FILES[@]}"; do
			gzip -9 -n "$DIR/${FILES[$f]}"
			FILES[$f]=${FILES[$f]}.gz
		done
		BRIEF=1
	else
		BRIEF=0
	fi
	write_tsv
	checks_for
	write_facts
	delns_all
	rm -rf "${OUT:?}/$SC"
	mkdir -p "$OUT"
	chown -R 0:0 "$DIR" # tcpdump wrote them as its own user
	mv "$DIR" "$OUT/$SC"
	log "$SC: wrote $OUT/$SC ($(du -sk "$OUT/$SC" | cut -f1) KB)"
}

# Sourced (make-2node.sh uses the helpers above), it stops here.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0
[[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
need ip bridge tcpdump tshark capinfos dumpcap nft ping arping gzip od
if (($# == 0)); then set -- "${ALL[@]}"; fi
for sc in "$@"; do run_scenario "$sc"; done
if ((CHECK_FAILS > 0)); then
	log "$CHECK_FAILS check(s) differ from the expected story; see the Checks section of each FACTS.md"
	exit 2
fi
