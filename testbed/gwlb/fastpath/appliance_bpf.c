/* The GWLB appliance's data path in the kernel: two TC-BPF programs on the appliance's
 * link (eth0), loaded and attached by appliance_bpf_loader.c.
 *
 * The compiled and Python data paths (appliance_fastpath.c, appliance.py) wake a process
 * twice per packet (GENEVE socket -> tun-in, tun-out -> socket). Here the work happens in the
 * softirq that receives the packet, on one device, without a redirect:
 *
 *   ingress (from_gwlb): UDP 6081 to the appliance's address, GENEVE version 0 carrying IPv4
 *   (protocol 0x0800, AWS) or Ethernet + IPv4 (0x6558, Open vSwitch) -> remember the GENEVE
 *   header (+ inner Ethernet header), the outer source address and MAC per direction of the
 *   inner flow -> cut outer IPv4 + UDP + GENEVE (+ inner Ethernet) out, keeping the outer
 *   Ethernet header (its destination is this link's MAC, so the stack takes the packet) ->
 *   mark it FORWARD_MARK. The kernel forwards the inner packet: the nftables forward chain
 *   (the template's rules) sees it, policy routing (fwmark -> table 6081) sends it back out
 *   of eth0 towards a next hop that exists only as a permanent neighbour entry, never ARPed.
 *   egress (to_gwlb): only packets with FORWARD_MARK: the same key finds the flow (none ->
 *   orphan, dropped: inner traffic never reaches the wire bare) -> grow room for the outer
 *   headers, write IPv4 (appliance -> GWLB node), UDP 6081 -> 6081 (checksum 0, as AWS and
 *   Open vSwitch send), the saved GENEVE bytes, and the GWLB node's MAC -> clear the mark.
 *
 * What these programs cannot do is left to the loader (its slow path): a GENEVE datagram
 * that arrived fragmented passes to the stack, which reassembles it for the GENEVE socket;
 * an inner packet too big for the link once encapsulated is redirected to tun-out, where
 * the loader sends it through the socket, which fragments it.
 *
 * Counters and the hang fault are shared with the loader through maps (appliance_bpf.h).
 * Packets are read with bpf_skb_load_bytes rather than direct access: GENEVE options have a
 * variable length, and the helper copes with non-linear packets without a pull.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "appliance_bpf.h"

#define PROTO_IPV4 0x0800
#define PROTO_ETHERNET 0x6558
#define IP_DF 0x4000
#define IP_FRAGMENT 0x3FFF /* more-fragments or an offset */
#define OUTER_TTL 64

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

/* Per CPU: no atomic operations on shared cache lines in the per-packet path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* A new flow entry is built here: struct flow is too large for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow);
} scratch SEC(".maps");

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += n;
}

/* The key of the IPv4 packet at off (appliance.packet_key()); -1 if it is not one. */
static __always_inline int packet_key(struct __sk_buff *skb, __u32 off, struct flow_key *k)
{
	struct iphdr ip;
	__u16 ports[2];

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof ip) || ip.version != 4 || ip.ihl < 5)
		return -1;
	__builtin_memset(k, 0, sizeof *k);
	k->proto = ip.protocol;
	k->src = ip.saddr;
	k->dst = ip.daddr;
	/* A fragment may lack the ports (or carry none): key it by addresses only, as the other
	 * data paths do, so all of its pieces find one flow. */
	if ((ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP ||
	     ip.protocol == IPPROTO_SCTP) &&
	    !(ip.frag_off & bpf_htons(IP_FRAGMENT)) &&
	    !bpf_skb_load_bytes(skb, off + ip.ihl * 4, ports, sizeof ports)) {
		k->has_ports = 1;
		k->sport = ports[0];
		k->dport = ports[1];
	}
	return 0;
}

static __always_inline int bad(void)
{
	count(C_BAD, 1);
	return TC_ACT_SHOT;
}

SEC("tc")
int from_gwlb(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct config *cfg;
	struct iphdr ip;
	struct udphdr udp;
	struct flow_key k;
	struct flow *f;
	__u8 g[4];
	__u16 inner_type;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || bpf_skb_load_bytes(skb, ETH_LEN, &ip, sizeof ip))
		return TC_ACT_OK;
	if (ip.protocol != IPPROTO_UDP || ip.daddr != cfg->addr || ip.version != 4 || ip.ihl < 5)
		return TC_ACT_OK; /* health checks, admin, ARP replies...: the stack's */
	__u32 udp_off = ETH_LEN + ip.ihl * 4;
	/* Only the first piece of a fragmented datagram has the UDP header, and reassembly
	 * happens after this hook: the stack reassembles it for the GENEVE socket, where the
	 * loader takes it (its slow path, as the compiled data path does every packet). */
	if (ip.frag_off & bpf_htons(IP_FRAGMENT))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, udp_off, &udp, sizeof udp))
		return TC_ACT_OK;
	if (udp.dest != bpf_htons(GENEVE_PORT))
		return TC_ACT_OK;

	__u32 g_off = udp_off + sizeof udp;
	if (bpf_skb_load_bytes(skb, g_off, g, sizeof g) || g[0] >> 6)
		return bad(); /* not GENEVE version 0 */
	__u32 geneve_len = GENEVE_FIXED + (g[0] & 0x3F) * 4;
	__u32 protocol = (__u32)g[2] << 8 | g[3];
	__u32 hdr_len = geneve_len;
	__u8 eth = 0;
	if (protocol == PROTO_ETHERNET) {
		if (bpf_skb_load_bytes(skb, g_off + geneve_len + 12, &inner_type, 2) ||
		    inner_type != bpf_htons(ETH_P_IP))
			return bad(); /* only IPv4 inside the Ethernet frame */
		hdr_len += ETH_LEN;
		eth = 1;
	} else if (protocol != PROTO_IPV4) {
		return bad();
	}
	if (hdr_len > MAX_HDR)
		return bad(); /* more options than a flow entry keeps */
	__u32 inner_off = g_off + hdr_len;
	if (packet_key(skb, inner_off, &k))
		return bad();
	/* The datagram's length as the C path counts it (UDP payload); a UDP length too short
	 * for the headers just read is a lie: bad (and no underflow below). */
	__u32 ulen = bpf_ntohs(udp.len);
	if (ulen < sizeof udp + hdr_len + 20)
		return bad();
	__u32 n = ulen - sizeof udp;

	__u64 now = bpf_ktime_get_ns();
	f = bpf_map_lookup_elem(&flows, &k);
	if (!f) {
		struct flow *fresh = bpf_map_lookup_elem(&scratch, &zero);
		if (!fresh)
			return TC_ACT_SHOT;
		__builtin_memset(fresh, 0, sizeof *fresh);
		fresh->seq = now;
		/* Another CPU may have created it meanwhile: keep theirs (NOEXIST), use it. */
		bpf_map_update_elem(&flows, &k, fresh, BPF_NOEXIST);
		f = bpf_map_lookup_elem(&flows, &k);
		if (!f) {
			count(C_TUN_ERRORS, 1);
			return TC_ACT_SHOT;
		}
	}
	/* Always the latest header and sender: a GWLB that forgot a flow re-creates it with a
	 * new cookie, and after a takeover another node sends it. */
	if (hdr_len < GENEVE_FIXED || bpf_skb_load_bytes(skb, g_off, f->hdr, hdr_len) ||
	    bpf_skb_load_bytes(skb, ETH_ALEN, f->mac, ETH_ALEN)) {
		count(C_TUN_ERRORS, 1);
		return TC_ACT_SHOT;
	}
	f->hdr_len = hdr_len;
	f->geneve_len = geneve_len;
	f->eth = eth;
	f->peer = ip.saddr;
	f->df = !!(ip.frag_off & bpf_htons(IP_DF));
	f->last_ns = now;
	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, n - hdr_len);
	count(C_GENEVE_IN, 1);
	count(C_BYTES_IN, n);
	if (cfg->hang) {
		count(C_HUNG, 1);
		return TC_ACT_SHOT;
	}
	/* FIXED_GSO: a GSO packet from Open vSwitch's tunnel carries the inner segment size
	 * already; without the flag the kernel would grow it by the bytes removed. */
	if (bpf_skb_adjust_room(skb, -(__s32)(inner_off - ETH_LEN), BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO)) {
		count(C_TUN_ERRORS, 1);
		return TC_ACT_SHOT;
	}
	skb->mark = FORWARD_MARK;
	return TC_ACT_OK;
}

struct outer {
	struct iphdr ip;
	struct udphdr udp;
};
_Static_assert(sizeof(struct outer) == 28, "outer IPv4 + UDP without padding");

SEC("tc")
int to_gwlb(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct config *cfg;
	struct flow_key k;
	struct flow *f;
	struct outer o;

	if (skb->mark != FORWARD_MARK || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK; /* the appliance's own traffic: health answers, ARP, ... */
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || packet_key(skb, ETH_LEN, &k))
		return TC_ACT_OK;
	if (k.src == cfg->addr)
		return TC_ACT_OK;
	f = bpf_map_lookup_elem(&flows, &k);
	if (!f) {
		count(C_ORPHANS, 1); /* nothing to send it back with */
		return TC_ACT_SHOT;
	}
	__u32 hdr_len = f->hdr_len;
	if (hdr_len < GENEVE_FIXED || hdr_len > MAX_HDR) {
		count(C_TUN_ERRORS, 1);
		return TC_ACT_SHOT;
	}
	__u32 inner_len = skb->len - ETH_LEN;
	__u32 outer_len = sizeof o + hdr_len;
	/* A packet that does not fit the link in GENEVE would be dropped by the device (no
	 * fragmenting after this hook): the loader reads it from tun-out and sends it through
	 * the GENEVE socket, whose datagrams the kernel fragments. GSO packets are cut into
	 * segments that fit later. */
	if (!skb->gso_size && inner_len + outer_len > cfg->mtu) {
		if (!cfg->slow_ifindex) {
			count(C_TUN_ERRORS, 1);
			return TC_ACT_SHOT;
		}
		return bpf_redirect(cfg->slow_ifindex, 0);
	}
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, f->mac, ETH_ALEN);
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5])) {
		/* Seen only by the loader's socket: the neighbour table knows the node's MAC (it
		 * sent us the datagram). */
		struct bpf_fib_lookup fib = {
			.family = 2 /* AF_INET */,
			.ifindex = cfg->ifindex,
			.ipv4_src = cfg->addr,
			.ipv4_dst = f->peer,
		};
		if (bpf_fib_lookup(skb, &fib, sizeof fib, BPF_FIB_LOOKUP_OUTPUT) !=
		    BPF_FIB_LKUP_RET_SUCCESS) {
			count(C_TUN_ERRORS, 1);
			return TC_ACT_SHOT;
		}
		__builtin_memcpy(mac, fib.dmac, ETH_ALEN);
	}
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
		      BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	if (f->eth)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L2(ETH_LEN) | BPF_F_ADJ_ROOM_ENCAP_L2_ETH;
	if (bpf_skb_adjust_room(skb, outer_len, BPF_ADJ_ROOM_MAC, flags)) {
		/* The kernel refuses to describe a second tunnel (-EALREADY) on a packet that
		 * still has skb->encapsulation from the tunnel from_gwlb took it out of (v6.18
		 * cannot clear it on decapsulation). That state describes the headers written
		 * below, at the same offsets: same header length, so add room without it. */
		if (bpf_skb_adjust_room(skb, outer_len, BPF_ADJ_ROOM_MAC,
					BPF_F_ADJ_ROOM_FIXED_GSO)) {
			count(C_TUN_ERRORS, 1);
			return TC_ACT_SHOT;
		}
	}
	__builtin_memset(&o, 0, sizeof o);
	o.ip.version = 4;
	o.ip.ihl = 5;
	o.ip.tot_len = bpf_htons(inner_len + outer_len);
	o.ip.id = f->df ? 0 : bpf_htons(bpf_get_prandom_u32());
	o.ip.frag_off = f->df ? bpf_htons(IP_DF) : 0;
	o.ip.ttl = OUTER_TTL;
	o.ip.protocol = IPPROTO_UDP;
	o.ip.saddr = cfg->addr;
	o.ip.daddr = f->peer;
	__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)&o.ip, sizeof o.ip, 0);
	if (sum < 0) {
		count(C_TUN_ERRORS, 1);
		return TC_ACT_SHOT;
	}
	__u32 c = (__u32)sum;
	c = (c & 0xFFFF) + (c >> 16);
	c = (c & 0xFFFF) + (c >> 16);
	o.ip.check = (__u16)~c;
	o.udp.source = bpf_htons(GENEVE_PORT);
	o.udp.dest = bpf_htons(GENEVE_PORT);
	o.udp.len = bpf_htons(inner_len + outer_len - sizeof o.ip);
	if (bpf_skb_store_bytes(skb, ETH_LEN, &o, sizeof o, 0) ||
	    bpf_skb_store_bytes(skb, ETH_LEN + sizeof o, f->hdr, hdr_len, 0) ||
	    bpf_skb_store_bytes(skb, 0, mac, ETH_ALEN, 0)) {
		count(C_TUN_ERRORS, 1);
		return TC_ACT_SHOT;
	}
	skb->mark = 0;
	count(C_GENEVE_OUT, 1);
	count(C_BYTES_OUT, inner_len + hdr_len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
