/* The GWLB appliance's data path in C: GENEVE in, the inner IPv4 packet through the
 * kernel's nftables forward chain (tun-in -> tun-out), GENEVE back.
 *
 * testbed.gwlb.appliance runs this as its child when it was built (python -m
 * testbed.gwlb.build_fastpath); the Python process keeps everything else: it opens the
 * TUN pair, the policy routing, the nftables table and the UDP socket, and hands the
 * descriptors over here. Same behaviour as the Python data path (appliance.py), per packet:
 *
 *   UDP 6081 -> validate GENEVE (version 0, options inside the datagram, protocol 0x0800 =
 *   IPv4, or 0x6558 = Ethernet carrying IPv4, which is what Open vSwitch sends) -> remember
 *   the whole GENEVE header (and the inner Ethernet header) and the sender per direction of
 *   the inner packet's flow -> write the inner IPv4 packet into tun-in.
 *   tun-out -> look the packet's key up -> the stored header in front -> back to the sender's
 *   UDP 6081 (the GWLB node: OVS sends from any source port, it listens on 6081).
 *
 * Batches: recvmmsg on the socket and sendmmsg back (TUN devices take one packet per
 * read/write). Flows idle for IDLE_S are forgotten.
 *
 * The control socket (SOCK_SEQPACKET, one byte per command, each answered with that byte):
 *   'S' write the counters and flows to the stats file (written aside, then renamed)
 *   'H' hang: drop every tunnelled packet (still counted), 'R' resume
 * End of file on it, SIGTERM or the parent's death (PR_SET_PDEATHSIG) end the program.
 *
 *   appliance-fastpath SOCK_FD TUN_IN_FD TUN_OUT_FD CONTROL_FD STATS_PATH PARENT_PID
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64                   /* datagrams per recvmmsg / sendmmsg */
#define BUF_SIZE 16384             /* room for a 9001-byte link's datagrams */
#define GENEVE_PORT 6081
#define GENEVE_FIXED 8
#define ETH_LEN 14
#define MAX_HDR (GENEVE_FIXED + 63 * 4 + ETH_LEN) /* options are at most 63 words */
#define PROTO_IPV4 0x0800
#define PROTO_ETHERNET 0x6558
#define IDLE_S 400                 /* as appliance.py: longer than the GWLB's own timeouts */
#define SWEEP_S 10
#define BUCKETS (1u << 18)         /* hash chains; a power of two */
#define MAX_FLOWS_SHOWN 2000       /* newest flow directions written to the stats file */

/* Direction-specific key of an inner IPv4 packet: protocol, source, destination and, for
 * TCP/UDP/SCTP packets that are not fragments, the ports (appliance.packet_key()). */
struct key {
    uint8_t proto, has_ports, pad[2];
    uint32_t src, dst;   /* network order */
    uint16_t sport, dport; /* network order */
};

struct flow {
    struct key key;
    struct flow *chain;        /* next in the hash bucket */
    struct flow *older, *newer; /* creation order, for the stats file */
    uint64_t seq, packets, bytes;
    time_t last;               /* CLOCK_MONOTONIC seconds */
    struct sockaddr_in peer;   /* the GWLB node, port 6081 */
    uint16_t hdr_len, geneve_len; /* stored bytes; the GENEVE part of them */
    uint8_t hdr[MAX_HDR];      /* GENEVE header [+ inner Ethernet header] */
};

static struct flow *buckets[BUCKETS];
static struct flow *oldest, *newest;
static uint64_t flow_seq, flow_count;
static uint64_t geneve_in, geneve_out, bytes_in, bytes_out, bad, orphans, hung, tun_errors;
static int hang;
static time_t now;

static time_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}

/* The key of the IPv4 packet p (len bytes); 0 if it is not one. */
static int packet_key(const uint8_t *p, size_t len, struct key *k)
{
    if (len < 20 || p[0] >> 4 != 4)
        return 0;
    size_t ihl = (size_t)(p[0] & 0x0F) * 4;
    memset(k, 0, sizeof *k);
    k->proto = p[9];
    memcpy(&k->src, p + 12, 4);
    memcpy(&k->dst, p + 16, 4);
    int fragment = (p[6] & 0x3F) || p[7]; /* offset or more-fragments: no ports (or not all) */
    if ((k->proto == 6 || k->proto == 17 || k->proto == 132) && !fragment && len >= ihl + 4) {
        k->has_ports = 1;
        memcpy(&k->sport, p + ihl, 2);
        memcpy(&k->dport, p + ihl + 2, 2);
    }
    return 1;
}

static uint32_t key_hash(const struct key *k)
{
    uint64_t h = ((uint64_t)k->src << 32 | k->dst) * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)k->proto << 32 | (uint32_t)k->sport << 16 | k->dport) * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h ^ h >> 29) & (BUCKETS - 1);
}

static struct flow *lookup(const struct key *k)
{
    for (struct flow *f = buckets[key_hash(k)]; f; f = f->chain)
        if (!memcmp(&f->key, k, sizeof *k))
            return f;
    return NULL;
}

/* Remember (or refresh) the header and sender of a direction; NULL if out of memory. */
static struct flow *remember(const struct key *k, const uint8_t *hdr, size_t hdr_len,
                             size_t geneve_len, const struct sockaddr_in *from)
{
    struct flow *f = lookup(k);
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            return NULL;
        f->key = *k;
        uint32_t b = key_hash(k);
        f->chain = buckets[b];
        buckets[b] = f;
        f->older = newest;
        if (newest)
            newest->newer = f;
        else
            oldest = f;
        newest = f;
        f->seq = ++flow_seq;
        flow_count++;
    }
    /* Always the latest: a GWLB that forgot a flow re-creates it with a new cookie. */
    memcpy(f->hdr, hdr, hdr_len);
    f->hdr_len = (uint16_t)hdr_len;
    f->geneve_len = (uint16_t)geneve_len;
    f->peer = *from;
    f->peer.sin_port = htons(GENEVE_PORT);
    f->last = now;
    return f;
}

static void forget_idle(void)
{
    for (uint32_t b = 0; b < BUCKETS; b++) {
        struct flow **at = &buckets[b];
        while (*at) {
            struct flow *f = *at;
            if (now - f->last <= IDLE_S) {
                at = &f->chain;
                continue;
            }
            *at = f->chain;
            if (f->older) f->older->newer = f->newer; else oldest = f->newer;
            if (f->newer) f->newer->older = f->older; else newest = f->older;
            flow_count--;
            free(f);
        }
    }
}

/* ---- from the GWLB: socket -> tun-in ---------------------------------------------------- */
static uint8_t rx_buf[BATCH][BUF_SIZE];
static struct sockaddr_in rx_from[BATCH];
static struct iovec rx_iov[BATCH];
static struct mmsghdr rx_msg[BATCH];

/* The inner IPv4 packet of datagram d (n bytes): its offset, and the stored header's length
 * (GENEVE + inner Ethernet) in *hdr_len and the GENEVE part in *geneve_len; -1 if bad. */
static long geneve_inner(const uint8_t *d, size_t n, size_t *hdr_len, size_t *geneve_len)
{
    if (n < GENEVE_FIXED || d[0] >> 6 != 0)
        return -1; /* not GENEVE version 0 */
    size_t hl = GENEVE_FIXED + (size_t)(d[0] & 0x3F) * 4;
    unsigned protocol = (unsigned)d[2] << 8 | d[3];
    size_t at = hl;
    if (protocol == PROTO_ETHERNET) {
        if (n < hl + ETH_LEN || d[hl + 12] != 0x08 || d[hl + 13] != 0x00)
            return -1; /* only IPv4 inside the Ethernet frame */
        at += ETH_LEN;
    } else if (protocol != PROTO_IPV4) {
        return -1;
    }
    if (n < at + 20)
        return -1;
    *hdr_len = at;
    *geneve_len = hl;
    return (long)at;
}

static void from_gwlb(int sock, int tun_in)
{
    for (int i = 0; i < BATCH; i++) {
        rx_iov[i].iov_base = rx_buf[i];
        rx_iov[i].iov_len = BUF_SIZE;
        memset(&rx_msg[i].msg_hdr, 0, sizeof rx_msg[i].msg_hdr);
        rx_msg[i].msg_hdr.msg_iov = &rx_iov[i];
        rx_msg[i].msg_hdr.msg_iovlen = 1;
        rx_msg[i].msg_hdr.msg_name = &rx_from[i];
        rx_msg[i].msg_hdr.msg_namelen = sizeof rx_from[i];
    }
    int got = recvmmsg(sock, rx_msg, BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < got; i++) {
        const uint8_t *d = rx_buf[i];
        size_t n = rx_msg[i].msg_len, hdr_len, geneve_len;
        struct key k;
        long at = (rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC)
                      ? -1 : geneve_inner(d, n, &hdr_len, &geneve_len);
        if (at < 0 || !packet_key(d + at, n - (size_t)at, &k)) {
            bad++;
            continue;
        }
        struct flow *f = remember(&k, d, hdr_len, geneve_len, &rx_from[i]);
        if (!f) {
            tun_errors++;
            continue;
        }
        f->packets++;
        f->bytes += n - (size_t)at;
        geneve_in++;
        bytes_in += n;
        if (hang) {
            hung++;
            continue;
        }
        if (write(tun_in, d + at, n - (size_t)at) < 0)
            tun_errors++;
    }
}

/* ---- back to the GWLB: tun-out -> socket ------------------------------------------------ */
static uint8_t tx_buf[BATCH][BUF_SIZE];
static struct iovec tx_iov[BATCH][2];
static struct mmsghdr tx_msg[BATCH];

static void send_all(int sock, int n)
{
    for (int i = 0; i < n;) {
        int sent = sendmmsg(sock, tx_msg + i, (unsigned)(n - i), 0);
        if (sent < 0) { /* this datagram failed (e.g. no route): skip it */
            if (errno == EINTR)
                continue;
            tun_errors++;
            i++;
            continue;
        }
        for (int j = i; j < i + sent; j++) {
            geneve_out++;
            bytes_out += tx_iov[j][0].iov_len + tx_iov[j][1].iov_len;
        }
        i += sent;
    }
}

static void from_tun(int tun_out, int sock)
{
    int n = 0;
    while (n < BATCH) {
        ssize_t len = read(tun_out, tx_buf[n], BUF_SIZE);
        if (len < 0)
            break; /* EAGAIN: drained */
        struct key k;
        struct flow *f = packet_key(tx_buf[n], (size_t)len, &k) ? lookup(&k) : NULL;
        if (!f) {
            orphans++; /* not from the tunnel: nothing to send it back with */
            continue;
        }
        tx_iov[n][0] = (struct iovec){f->hdr, f->hdr_len};
        tx_iov[n][1] = (struct iovec){tx_buf[n], (size_t)len};
        memset(&tx_msg[n].msg_hdr, 0, sizeof tx_msg[n].msg_hdr);
        tx_msg[n].msg_hdr.msg_iov = tx_iov[n];
        tx_msg[n].msg_hdr.msg_iovlen = 2;
        tx_msg[n].msg_hdr.msg_name = &f->peer;
        tx_msg[n].msg_hdr.msg_namelen = sizeof f->peer;
        n++;
    }
    send_all(sock, n);
}

/* ---- control --------------------------------------------------------------------------- */
static void hex(FILE *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", p[i]);
}

/* Counters, then the newest flow directions:
 * "flow SEQ KEY GWLB PACKETS BYTES IDLE_S GENEVE_HEADER" (KEY as appliance.packet_key()). */
static int write_stats(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out)
        return -1;
    fprintf(out, "appliance-fastpath %d\n", (int)getpid());
    fprintf(out, "geneve_in %llu\ngeneve_out %llu\nbytes_in %llu\nbytes_out %llu\n"
                 "bad %llu\norphans %llu\nhung %llu\ntun_errors %llu\nflow_count %llu\n",
            (unsigned long long)geneve_in, (unsigned long long)geneve_out,
            (unsigned long long)bytes_in, (unsigned long long)bytes_out,
            (unsigned long long)bad, (unsigned long long)orphans, (unsigned long long)hung,
            (unsigned long long)tun_errors, (unsigned long long)flow_count);
    int shown = 0;
    for (struct flow *f = newest; f && shown < MAX_FLOWS_SHOWN; f = f->older, shown++) {
        uint8_t key[13];
        key[0] = f->key.proto;
        memcpy(key + 1, &f->key.src, 4);
        memcpy(key + 5, &f->key.dst, 4);
        memcpy(key + 9, &f->key.sport, 2);
        memcpy(key + 11, &f->key.dport, 2);
        char peer[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &f->peer.sin_addr, peer, sizeof peer);
        fprintf(out, "flow %llu ", (unsigned long long)f->seq);
        hex(out, key, f->key.has_ports ? 13 : 9);
        fprintf(out, " %s %llu %llu %lld ", peer, (unsigned long long)f->packets,
                (unsigned long long)f->bytes, (long long)(now - f->last));
        hex(out, f->hdr, f->geneve_len);
        fputc('\n', out);
    }
    if (fclose(out) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

/* One command from the parent; -1 when the parent has gone. */
static int control(int ctl, const char *stats_path)
{
    char cmd;
    ssize_t r = recv(ctl, &cmd, 1, MSG_DONTWAIT);
    if (r == 0)
        return -1;
    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (cmd == 'S' && write_stats(stats_path) != 0)
        cmd = 'E';
    else if (cmd == 'H')
        hang = 1;
    else if (cmd == 'R')
        hang = 0;
    return send(ctl, &cmd, 1, 0) == 1 ? 0 : -1;
}

static int fd_arg(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1 << 20) {
        fprintf(stderr, "appliance-fastpath: bad number %s\n", s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s SOCK_FD TUN_IN_FD TUN_OUT_FD CONTROL_FD STATS_PATH "
                        "PARENT_PID\n", argv[0]);
        return 2;
    }
    int sock = fd_arg(argv[1]), tun_in = fd_arg(argv[2]), tun_out = fd_arg(argv[3]);
    int ctl = fd_arg(argv[4]);
    const char *stats_path = argv[5];
    /* End with the parent, even if it is killed; it may have died before this line. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != (pid_t)fd_arg(argv[6]))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    now = monotonic_s();
    time_t next_sweep = now + SWEEP_S;
    struct pollfd fds[3] = {{sock, POLLIN, 0}, {tun_out, POLLIN, 0}, {ctl, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 3, 1000) < 0 && errno != EINTR) {
            perror("appliance-fastpath: poll");
            return 1;
        }
        now = monotonic_s();
        if (fds[0].revents & POLLIN)
            from_gwlb(sock, tun_in);
        if (fds[1].revents & POLLIN)
            from_tun(tun_out, sock);
        if (fds[2].revents && control(ctl, stats_path) < 0)
            return 0; /* the parent closed the control socket: it is ending */
        if (now >= next_sweep) {
            forget_idle();
            next_sweep = now + SWEEP_S;
        }
    }
}
