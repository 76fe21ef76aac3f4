//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// kdrop: on skb:kfree_skb (BTF tracepoint), keep only the dropped packets
// that belong to a pathtrace run and report them over a ring buffer with the
// kernel's drop reason, the drop location, the namespace and the device.
//
// The packet's headers are copied from skb->head + skb->network_header (not
// skb->data: at a drop data may point anywhere from the MAC header to the
// payload), at most KDROP_CAP bytes of the linear part. A packet matches
//   - probe mode: an ICMP/ICMPv6 echo request or reply carrying the run's
//     echo id and payload prefix;
//   - address mode: ICMP/ICMPv6 or ARP whose source/destination (ARP:
//     sender/target) address is in the addrs map;
// directly or inside one tunnel (VXLAN 4789/8472 or GENEVE 6081 over UDP,
// IPv4/IPv6 in IPv4/IPv6). Kept: the outer network header onward; inner_off
// says where the matched inner network header starts (0: not tunnelled).

#include "kdrop.h"

#define KDROP_CAP 192 // bytes copied: outer IPv6 + UDP + GENEVE + Ethernet + IPv6 + ICMP + 16

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_IPV6 0x86DD
#define ETH_P_TEB 0x6558
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

// Struct layouts come from the running kernel's BTF (CO-RE): only the fields
// used here are named.
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	__u16 protocol; // big endian
	__u16 network_header;
	__u16 mac_header;
	unsigned int tail; // an offset from head on 64-bit kernels
	unsigned char *head;
} __attribute__((preserve_access_index));

// One dropped packet. Go mirrors it in event.go (fixed layout, no padding
// holes: fields are ordered by size).
struct event {
	__u64 time_ns;   // bpf_ktime_get_tai_ns or bpf_ktime_get_ns (use_tai)
	__u64 location;  // kernel text address that freed the skb
	__u64 skb;       // skb address: ties repeated reports of one skb
	__u32 reason;    // enum skb_drop_reason (with subsystem bits)
	__u32 netns;     // network namespace inode
	__u32 ifindex;   // skb->dev's ifindex, 0 without a device
	__u32 skb_len;   // skb->len
	__u16 protocol;  // L3 ethertype (host order) the bytes start with
	__u16 cap_len;   // valid bytes in data
	__u16 inner_off; // offset of the matched inner network header, 0: none
	__u16 pad;
	__u8 data[KDROP_CAP];
};

// Set by the loader before the program is verified: the verifier prunes
// the branches of the mode not in use.
const volatile __u8 cfg_has_id = 0;
const volatile __u8 cfg_id_hi = 0;
const volatile __u8 cfg_id_lo = 0;
const volatile __u8 cfg_payload_len = 0; // 0..16
const volatile __u8 cfg_payload[16] = {};
const volatile __u8 cfg_has_addrs = 0;
const volatile __u8 cfg_use_tai = 0;

struct addr_key {
	__u8 a[16]; // IPv6, or IPv4-mapped IPv6
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct addr_key);
	__type(value, __u8);
} addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

// lost[0]: matched packets the ring buffer had no room for.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

// The offset checks below keep every index provably inside data (the
// verifier needs that); a packet shorter than what is read is rejected by
// the cap_len checks.

static __always_inline bool addr_known4(const __u8 *d, __u64 off)
{
	struct addr_key k = {};
	k.a[10] = 0xff;
	k.a[11] = 0xff;
	k.a[12] = d[off];
	k.a[13] = d[off + 1];
	k.a[14] = d[off + 2];
	k.a[15] = d[off + 3];
	return bpf_map_lookup_elem(&addrs, &k) != 0;
}

static __always_inline bool addr_known6(const __u8 *d, __u64 off)
{
	struct addr_key k;
	__builtin_memcpy(&k, &d[off], 16);
	return bpf_map_lookup_elem(&addrs, &k) != 0;
}

// match_echo: an echo request/reply (req/rep: the ICMP types) at off with
// the run's id and payload prefix.
static __always_inline bool match_echo(const __u8 *d, __u64 off, __u64 len, __u8 req, __u8 rep)
{
	if (off > KDROP_CAP - 24 || off + 8 + cfg_payload_len > len)
		return false;
	if (d[off] != req && d[off] != rep)
		return false;
	if (cfg_has_id && (d[off + 4] != cfg_id_hi || d[off + 5] != cfg_id_lo))
		return false;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i < cfg_payload_len && d[off + 8 + i] != cfg_payload[i])
			return false;
	}
	return true;
}

// match_ip4/match_ip6: the packet at off (an IPv4/IPv6 header).
static __always_inline bool match_ip4(const __u8 *d, __u64 off, __u64 len, __u8 *proto, __u64 *l4)
{
	if (off > KDROP_CAP - 20 || off + 20 > len || (d[off] >> 4) != 4)
		return false;
	__u64 ihl = (d[off] & 0xf) * 4;
	if (ihl < 20)
		return false;
	*proto = d[off + 9];
	// Not a first fragment: no L4 header here.
	if (((d[off + 6] & 0x1f) | d[off + 7]) != 0)
		*l4 = 0;
	else
		*l4 = off + ihl;
	if (cfg_has_addrs)
		return *proto == 1 && (addr_known4(d, off + 12) || addr_known4(d, off + 16));
	return *proto == 1 && *l4 != 0 && match_echo(d, *l4, len, 8, 0);
}

static __always_inline bool match_ip6(const __u8 *d, __u64 off, __u64 len, __u8 *proto, __u64 *l4)
{
	if (off > KDROP_CAP - 40 || off + 40 > len || (d[off] >> 4) != 6)
		return false;
	*proto = d[off + 6];
	*l4 = off + 40;
	if (cfg_has_addrs)
		return *proto == 58 && (addr_known6(d, off + 8) || addr_known6(d, off + 24));
	return *proto == 58 && match_echo(d, *l4, len, 128, 129);
}

static __always_inline bool match_arp(const __u8 *d, __u64 off, __u64 len)
{
	// Ethernet/IPv4 ARP only: sender IP at 14, target IP at 24.
	if (!cfg_has_addrs || off > KDROP_CAP - 28 || off + 28 > len)
		return false;
	if (d[off + 2] != 0x08 || d[off + 3] != 0x00 || d[off + 4] != 6 || d[off + 5] != 4)
		return false;
	return addr_known4(d, off + 14) || addr_known4(d, off + 24);
}

// match_l3: the network header of type proto at off, without tunnels.
static __always_inline bool match_l3(const __u8 *d, __u64 off, __u64 len, __u16 proto)
{
	__u8 p;
	__u64 l4;
	if (proto == ETH_P_IP)
		return match_ip4(d, off, len, &p, &l4);
	if (proto == ETH_P_IPV6)
		return match_ip6(d, off, len, &p, &l4);
	if (proto == ETH_P_ARP)
		return match_arp(d, off, len);
	return false;
}

// inner_eth: the network header behind an Ethernet header at off (one
// optional VLAN tag); 0 if none.
static __always_inline __u64 inner_eth(const __u8 *d, __u64 off, __u64 len, __u16 *proto)
{
	if (off > KDROP_CAP - 18 || off + 18 > len)
		return 0;
	__u16 t = (__u16)d[off + 12] << 8 | d[off + 13];
	off += 14;
	if (t == ETH_P_8021Q || t == ETH_P_8021AD) {
		t = (__u16)d[off + 2] << 8 | d[off + 3];
		off += 4;
	}
	*proto = t;
	return off;
}

// tunnel_inner: where the inner network header of a tunnelled packet starts
// (0: not a tunnel this knows), given the outer L4 protocol p at l4.
static __always_inline __u64 tunnel_inner(const __u8 *d, __u64 l4, __u64 len, __u8 p, __u16 *proto)
{
	if (l4 == 0 || l4 > KDROP_CAP - 16)
		return 0;
	if (p == 4) {
		*proto = ETH_P_IP;
		return l4;
	}
	if (p == 41) {
		*proto = ETH_P_IPV6;
		return l4;
	}
	if (p != 17 || l4 + 16 > len)
		return 0;
	__u16 dport = (__u16)d[l4 + 2] << 8 | d[l4 + 3];
	__u64 t = l4 + 8; // tunnel header
	if (dport == 4789 || dport == 8472) // VXLAN: 8 bytes, then Ethernet
		return inner_eth(d, t + 8, len, proto);
	if (dport == 6081) { // GENEVE: 8 bytes + options
		__u16 pt = (__u16)d[t + 2] << 8 | d[t + 3];
		__u64 inner = t + 8 + (d[t] & 0x3f) * 4;
		if (pt == ETH_P_TEB)
			return inner_eth(d, inner, len, proto);
		if (pt == ETH_P_IP || pt == ETH_P_IPV6) {
			*proto = pt;
			return inner;
		}
	}
	return 0;
}

static __always_inline __u32 netns_of(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (dev)
		return dev->nd_net.net->ns.inum;
	struct sock *sk = skb->sk;
	if (sk)
		return sk->__sk_common.skc_net.net->ns.inum;
	return 0;
}

SEC("tp_btf/kfree_skb")
int kdrop_kfree_skb(__u64 *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx[0];
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;

	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u16 mh = skb->mac_header;
	// network_header is 0 until set (for instance a frame dropped before
	// the stack parsed it): fall back to the MAC header + Ethernet.
	if (nh == 0) {
		if (mh == 0xffff)
			return 0;
		nh = mh + 14;
	}
	__u32 tail = skb->tail;
	if (!head || tail <= nh)
		return 0;
	__u64 n = tail - nh;
	if (n > KDROP_CAP)
		n = KDROP_CAP;
	if (bpf_probe_read_kernel(e->data, n, head + nh) < 0)
		return 0;

	__u16 proto = bpf_ntohs(skb->protocol);
	if (proto != ETH_P_IP && proto != ETH_P_IPV6 && proto != ETH_P_ARP) {
		// Not set (yet) on some locally built packets: ask the version.
		__u8 v = e->data[0] >> 4;
		proto = v == 4 ? ETH_P_IP : v == 6 ? ETH_P_IPV6 : 0;
		if (!proto)
			return 0;
	}

	__u16 inner_off = 0;
	if (!match_l3(e->data, 0, n, proto)) {
		__u8 p = 0;
		__u64 l4 = 0;
		if (proto == ETH_P_IP)
			match_ip4(e->data, 0, n, &p, &l4);
		else if (proto == ETH_P_IPV6)
			match_ip6(e->data, 0, n, &p, &l4);
		else
			return 0;
		__u16 iproto = 0;
		__u64 inner = tunnel_inner(e->data, l4, n, p, &iproto);
		if (!inner || !match_l3(e->data, inner, n, iproto))
			return 0;
		inner_off = inner;
	}

	e->time_ns = cfg_use_tai ? bpf_ktime_get_tai_ns() : bpf_ktime_get_ns();
	e->location = ctx[1];
	e->reason = (__u32)ctx[2];
	e->skb = (__u64)skb;
	e->netns = netns_of(skb);
	struct net_device *dev = skb->dev;
	e->ifindex = dev ? dev->ifindex : 0;
	e->skb_len = skb->len;
	e->protocol = proto;
	e->cap_len = n;
	e->inner_off = inner_off;
	e->pad = 0;
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0) < 0) {
		__u64 *l = bpf_map_lookup_elem(&lost, &zero);
		if (l)
			__sync_fetch_and_add(l, 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
