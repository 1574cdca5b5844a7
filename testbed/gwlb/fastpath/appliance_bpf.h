/* What the appliance's TC-BPF programs (appliance_bpf.c) and their loader
 * (appliance_bpf_loader.c) share: the layout of the maps' keys and values. Both sides are
 * compiled from this one header so a change cannot leave them disagreeing. */
#ifndef APPLIANCE_BPF_H
#define APPLIANCE_BPF_H

#include <linux/types.h>

#define GENEVE_PORT 6081
#define FORWARD_MARK 0x6081 /* skb->mark of decapsulated packets: policy routing, nftables */
#define GENEVE_FIXED 8
#define ETH_LEN 14
/* Bytes of GENEVE header (+ inner Ethernet header) kept per flow direction. AWS's GWLB
 * options take 32 bytes (40 with the fixed header), Open vSwitch sends the same options and
 * the inner Ethernet header (54): 128 leaves room for more options while keeping a flow
 * entry small. A header longer than this is counted as bad (the C path takes up to 266). */
#define MAX_HDR 128
#define MAX_FLOWS (1 << 17) /* flow directions; LRU: the least recently used go first */

/* Direction-specific key of an inner IPv4 packet, as appliance.packet_key(): protocol,
 * source, destination and, for TCP/UDP/SCTP packets that are not fragments, the ports. */
struct flow_key {
	__u8 proto, has_ports, pad[2];
	__u32 src, dst;     /* network order */
	__u16 sport, dport; /* network order */
};

struct flow {
	__u64 seq;     /* creation time (ns): the stats file's order, newest first */
	__u64 packets; /* inner packets from the GWLB in this direction */
	__u64 bytes;   /* their inner bytes */
	__u64 last_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) of the latest */
	__u32 peer;    /* the GWLB node's address (outer source), network order */
	__u8 mac[6];   /* the outer Ethernet source: where the answer goes (zero: unknown,
			* the flow was seen by the loader's socket: ask the kernel's tables) */
	__u8 df;       /* the outer header had DF: send it back the same way */
	__u8 eth;      /* 0x6558 (Open vSwitch): hdr ends with the inner Ethernet header */
	__u16 hdr_len, geneve_len; /* bytes in hdr; the GENEVE part of them */
	__u8 hdr[MAX_HDR];
};

/* Counters, one slot each in a per-CPU array (the loader adds the CPUs up). The names the
 * loader writes are the C data path's, so appliance.parse_stats() reads both. */
enum counter {
	C_GENEVE_IN,
	C_GENEVE_OUT,
	C_BYTES_IN,
	C_BYTES_OUT,
	C_BAD,
	C_ORPHANS,
	C_HUNG,
	C_TUN_ERRORS, /* a helper refused (room, store) or the result does not fit the link */
	C_COUNT,
};

/* The one entry of the "config" array: set by the loader before it attaches. */
struct config {
	__u32 addr; /* the appliance's address (GENEVE arrives there), network order */
	__u32 hang; /* the hang fault: drop every tunnelled packet, counted */
	__u32 mtu;  /* the link's MTU: a re-encapsulated packet larger than it... */
	__u32 slow_ifindex; /* ...goes to this device (tun-out): the loader sends it, fragmented */
	__u32 ifindex;      /* the link's (eth0) */
	__u32 pad;
};

#endif
