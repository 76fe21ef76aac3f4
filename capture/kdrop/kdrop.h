/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/* The few kernel types and UAPI constants kdrop.bpf.c needs, so it builds
 * with libbpf's headers alone (no generated vmlinux.h). */
#ifndef KDROP_H
#define KDROP_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* UAPI enum bpf_map_type values (include/uapi/linux/bpf.h). */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_RINGBUF 27

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#endif
