/* Loads the appliance's TC-BPF data path (appliance_bpf.c) onto its link and serves the
 * appliance process the way the compiled data path (appliance_fastpath.c) does: same
 * control socket, same stats file, so testbed.gwlb.appliance.FastPath drives either.
 *
 It loads the object, fills the config map (the appliance's address, the link's MTU, the
 * devices), attaches from_gwlb to the clsact ingress hook and to_gwlb to egress, says
 * "ready" on the control socket, then answers commands and forgets idle flows. On its way
 * out it detaches both programs and removes the clsact qdisc; a SIGKILL leaves them, which
 * is why the appliance removes the qdisc again.
 *
 * Packets pass through here only where the programs cannot do the work (the slow path, the
 * compiled data path's per-packet work for these few):
 *   - a GENEVE datagram that arrived fragmented: reassembled by the stack after the ingress
 *     hook, it reaches the GENEVE socket; here it is taken apart, its flow recorded in the
 *     map and the inner packet written into tun-in (nftables marks what comes from tun-in
 *     as the programs mark theirs, so the same routing and rules apply);
 *   - an inner packet too large for the link in GENEVE: to_gwlb redirects it to tun-out;
 *     here it gets its flow's header and leaves through the socket, whose datagrams the
 *     kernel fragments (IP_PMTUDISC_DONT, set by the appliance), as the other paths do.
 *
 * The control socket (SOCK_SEQPACKET): first one message from here, "ready" or
 * "error: REASON" (then exit status 1). Then one byte per command, each answered with it:
 *   'S' write the counters and flows to the stats file (written aside, then renamed)
 *   'H' hang: the programs drop every tunnelled packet (still counted), 'R' resume
 * End of file on it, SIGTERM or the parent's death (PR_SET_PDEATHSIG) end the program.
 *
 *   appliance-bpf-loader SOCK_FD TUN_IN_FD TUN_OUT_FD CONTROL_FD STATS_PATH PARENT_PID \
 *       OBJECT IFNAME ADDRESS MTU TUN_OUT_NAME
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "appliance_bpf.h"

#define IDLE_S 400 /* as appliance.py: longer than the GWLB's own timeouts */
#define SWEEP_S 10
#define MAX_FLOWS_SHOWN 2000 /* newest flow directions written to the stats file */
#define TC_HANDLE 1
#define TC_PRIORITY 1
#define SLOW_BATCH 64     /* slow-path packets taken from one descriptor at a time */
#define BUF_SIZE 65536    /* a reassembled datagram may be as large as UDP allows */
#define PROTO_IPV4 0x0800
#define PROTO_ETHERNET 0x6558

static const char *counter_names[C_COUNT] = {
	[C_GENEVE_IN] = "geneve_in", [C_GENEVE_OUT] = "geneve_out",
	[C_BYTES_IN] = "bytes_in",   [C_BYTES_OUT] = "bytes_out",
	[C_BAD] = "bad",             [C_ORPHANS] = "orphans",
	[C_HUNG] = "hung",           [C_TUN_ERRORS] = "tun_errors",
};

static volatile sig_atomic_t stopping;
static int ctl = -1;
static int flows_fd, config_fd, counters_fd;
static struct config cfg;
static uint64_t slow[C_COUNT]; /* the slow path's counts, added to the programs' */

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Tell the parent why starting failed (it falls back to another data path) and end. */
static void fail(const char *fmt, ...)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "error: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "appliance-bpf-loader: %s\n", msg + n);
	if (ctl >= 0 && send(ctl, msg, strlen(msg), 0) < 0)
		perror("appliance-bpf-loader: control");
	exit(1);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns() counts on this clock */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* libbpf's messages (the verifier's log among them) go to the appliance's log. */
static int print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- stats ----------------------------------------------------------------------------- */
struct shown {
	struct flow_key key;
	struct flow flow;
};

static int newest_first(const void *a, const void *b)
{
	uint64_t x = ((const struct shown *)a)->flow.seq, y = ((const struct shown *)b)->flow.seq;
	return x < y ? 1 : x > y ? -1 : 0;
}

static void hex(FILE *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x", p[i]);
}

/* Each flow direction in the map (at most `cap`), copied into `rows`; their number. */
static size_t read_flows(struct shown *rows, size_t cap)
{
	struct flow_key key, next;
	size_t n = 0;
	void *prev = NULL;
	while (n < cap && bpf_map_get_next_key(flows_fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(flows_fd, &next, &rows[n].flow) == 0) {
			rows[n].key = next;
			n++;
		}
		key = next;
		prev = &key;
	}
	return n;
}

static int write_stats(const char *path)
{
	static struct shown rows[MAX_FLOWS];
	int ncpu = libbpf_num_possible_cpus();
	uint64_t per_cpu[ncpu > 0 ? ncpu : 1];
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *out = fopen(tmp, "w");
	if (!out)
		return -1;
	fprintf(out, "appliance-bpf-loader %d\n", (int)getpid());
	for (uint32_t c = 0; c < C_COUNT; c++) {
		uint64_t total = slow[c];
		if (bpf_map_lookup_elem(counters_fd, &c, per_cpu) == 0)
			for (int i = 0; i < ncpu; i++)
				total += per_cpu[i];
		fprintf(out, "%s %llu\n", counter_names[c], (unsigned long long)total);
	}
	size_t n = read_flows(rows, MAX_FLOWS);
	fprintf(out, "flow_count %zu\n", n);
	qsort(rows, n, sizeof rows[0], newest_first);
	uint64_t now = monotonic_ns();
	for (size_t i = 0; i < n && i < MAX_FLOWS_SHOWN; i++) {
		const struct flow_key *k = &rows[i].key;
		const struct flow *f = &rows[i].flow;
		uint8_t key[13];
		key[0] = k->proto;
		memcpy(key + 1, &k->src, 4);
		memcpy(key + 5, &k->dst, 4);
		memcpy(key + 9, &k->sport, 2);
		memcpy(key + 11, &k->dport, 2);
		char peer[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &f->peer, peer, sizeof peer);
		uint64_t idle = now > f->last_ns ? (now - f->last_ns) / 1000000000ull : 0;
		fprintf(out, "flow %llu ", (unsigned long long)f->seq);
		hex(out, key, k->has_ports ? 13 : 9);
		fprintf(out, " %s %llu %llu %llu ", peer, (unsigned long long)f->packets,
			(unsigned long long)f->bytes, (unsigned long long)idle);
		hex(out, f->hdr, f->geneve_len <= MAX_HDR ? f->geneve_len : 0);
		fputc('\n', out);
	}
	if (fclose(out) != 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
}

/* Forget flow directions idle for longer than IDLE_S (keys first: deleting while walking
 * the hash would restart the walk). */
static void forget_idle(void)
{
	static struct flow_key idle[MAX_FLOWS];
	struct flow_key key, next;
	struct flow f;
	size_t n = 0;
	void *prev = NULL;
	uint64_t now = monotonic_ns();
	while (n < MAX_FLOWS && bpf_map_get_next_key(flows_fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(flows_fd, &next, &f) == 0 && now > f.last_ns &&
		    now - f.last_ns > IDLE_S * 1000000000ull)
			idle[n++] = next;
		key = next;
		prev = &key;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(flows_fd, &idle[i]);
}

/* ---- the slow path ----------------------------------------------------------------------- */
static uint8_t buf[BUF_SIZE];

/* The key of the IPv4 packet p (len bytes), as the programs make it; 0 if it is not one. */
static int packet_key(const uint8_t *p, size_t len, struct flow_key *k)
{
	if (len < 20 || p[0] >> 4 != 4 || (p[0] & 0x0F) < 5)
		return 0;
	size_t ihl = (size_t)(p[0] & 0x0F) * 4;
	memset(k, 0, sizeof *k);
	k->proto = p[9];
	memcpy(&k->src, p + 12, 4);
	memcpy(&k->dst, p + 16, 4);
	int fragment = (p[6] & 0x3F) || p[7];
	if ((k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP || k->proto == IPPROTO_SCTP) &&
	    !fragment && len >= ihl + 4) {
		k->has_ports = 1;
		memcpy(&k->sport, p + ihl, 2);
		memcpy(&k->dport, p + ihl + 2, 2);
	}
	return 1;
}

/* A reassembled GENEVE datagram (n bytes from `from`): its flow into the map, its inner
 * packet into tun-in. */
static void from_gwlb(size_t n, const struct sockaddr_in *from, int tun_in)
{
	const uint8_t *d = buf;
	if (n < GENEVE_FIXED || d[0] >> 6) {
		slow[C_BAD]++;
		return;
	}
	size_t geneve_len = GENEVE_FIXED + (size_t)(d[0] & 0x3F) * 4, hdr_len = geneve_len;
	unsigned protocol = (unsigned)d[2] << 8 | d[3];
	uint8_t eth = 0;
	if (protocol == PROTO_ETHERNET && n >= hdr_len + ETH_LEN && d[hdr_len + 12] == 0x08 &&
	    d[hdr_len + 13] == 0x00) {
		hdr_len += ETH_LEN;
		eth = 1;
	} else if (protocol != PROTO_IPV4) {
		slow[C_BAD]++;
		return;
	}
	struct flow_key k;
	if (hdr_len > MAX_HDR || n < hdr_len + 20 || !packet_key(d + hdr_len, n - hdr_len, &k)) {
		slow[C_BAD]++;
		return;
	}
	struct flow f;
	uint64_t now = monotonic_ns();
	if (bpf_map_lookup_elem(flows_fd, &k, &f) != 0) {
		memset(&f, 0, sizeof f);
		f.seq = now;
	}
	memcpy(f.hdr, d, hdr_len);
	f.hdr_len = (uint16_t)hdr_len;
	f.geneve_len = (uint16_t)geneve_len;
	f.eth = eth;
	f.peer = from->sin_addr.s_addr;
	f.df = 0; /* it came fragmented */
	/* The MAC stays as the programs last saw it; zero (unknown) makes to_gwlb ask the
	 * neighbour table. */
	f.last_ns = now;
	f.packets++;
	f.bytes += n - hdr_len;
	if (bpf_map_update_elem(flows_fd, &k, &f, BPF_ANY) != 0) {
		slow[C_TUN_ERRORS]++;
		return;
	}
	slow[C_GENEVE_IN]++;
	slow[C_BYTES_IN] += n;
	if (cfg.hang) {
		slow[C_HUNG]++;
		return;
	}
	if (write(tun_in, d + hdr_len, n - hdr_len) < 0)
		slow[C_TUN_ERRORS]++;
}

static void from_socket(int sock, int tun_in)
{
	for (int i = 0; i < SLOW_BATCH; i++) {
		struct sockaddr_in from;
		socklen_t len = sizeof from;
		ssize_t n = recvfrom(sock, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&from, &len);
		if (n < 0)
			return; /* EAGAIN: drained */
		if ((size_t)n > sizeof buf) {
			slow[C_BAD]++;
			continue;
		}
		from_gwlb((size_t)n, &from, tun_in);
	}
}

/* Packets to_gwlb could not send whole: the flow's header in front, out of the socket. */
static void from_tun(int tun_out, int sock)
{
	for (int i = 0; i < SLOW_BATCH; i++) {
		ssize_t len = read(tun_out, buf, sizeof buf);
		if (len < 0)
			return; /* EAGAIN: drained */
		struct flow_key k;
		struct flow f;
		if (!packet_key(buf, (size_t)len, &k) || bpf_map_lookup_elem(flows_fd, &k, &f) != 0 ||
		    f.hdr_len > MAX_HDR) {
			slow[C_ORPHANS]++;
			continue;
		}
		struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(GENEVE_PORT)};
		to.sin_addr.s_addr = f.peer;
		struct iovec iov[2] = {{f.hdr, f.hdr_len}, {buf, (size_t)len}};
		struct msghdr msg = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = iov,
				     .msg_iovlen = 2};
		if (sendmsg(sock, &msg, 0) < 0) {
			slow[C_TUN_ERRORS]++;
			continue;
		}
		slow[C_GENEVE_OUT]++;
		slow[C_BYTES_OUT] += f.hdr_len + (size_t)len;
	}
}

static int set_hang(int on)
{
	uint32_t zero = 0;
	cfg.hang = (uint32_t)on;
	return bpf_map_update_elem(config_fd, &zero, &cfg, BPF_ANY);
}

/* One command from the parent; -1 when the parent has gone. */
static int control(const char *stats_path)
{
	char cmd;
	ssize_t r = recv(ctl, &cmd, 1, MSG_DONTWAIT);
	if (r == 0)
		return -1;
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if ((cmd == 'S' && write_stats(stats_path) != 0) || (cmd == 'H' && set_hang(1) != 0) ||
	    (cmd == 'R' && set_hang(0) != 0))
		cmd = 'E';
	return send(ctl, &cmd, 1, 0) == 1 ? 0 : -1;
}

static long number(const char *s, long max)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > max) {
		fprintf(stderr, "appliance-bpf-loader: bad number %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 12) {
		fprintf(stderr, "usage: %s SOCK_FD TUN_IN_FD TUN_OUT_FD CONTROL_FD STATS_PATH "
				"PARENT_PID OBJECT IFNAME ADDRESS MTU TUN_OUT_NAME\n", argv[0]);
		return 2;
	}
	int sock = (int)number(argv[1], 1 << 20), tun_in = (int)number(argv[2], 1 << 20);
	int tun_out = (int)number(argv[3], 1 << 20);
	ctl = (int)number(argv[4], 1 << 20);
	const char *stats_path = argv[5], *object = argv[7], *ifname = argv[8];
	const char *address = argv[9], *slow_name = argv[11];
	/* End with the parent, even if it is killed; it may have died before this line. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != (pid_t)number(argv[6], 1 << 30))
		return 1;
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll() returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	libbpf_set_print(print);

	struct in_addr addr;
	if (inet_pton(AF_INET, address, &addr) != 1)
		fail("bad address %s", address);
	cfg.addr = addr.s_addr;
	cfg.mtu = (uint32_t)number(argv[10], 65535);
	int ifindex = (int)if_nametoindex(ifname);
	if (!ifindex)
		fail("no interface %s", ifname);
	cfg.ifindex = (uint32_t)ifindex;
	cfg.slow_ifindex = if_nametoindex(slow_name);
	if (!cfg.slow_ifindex)
		fail("no interface %s", slow_name);

	struct bpf_object *obj = bpf_object__open_file(object, NULL);
	if (!obj)
		fail("cannot open %s: %s", object, strerror(errno));
	int err = bpf_object__load(obj);
	if (err)
		fail("the kernel refused %s: %s (the verifier's log is above)", object,
		     strerror(-err));
	struct bpf_program *in = bpf_object__find_program_by_name(obj, "from_gwlb");
	struct bpf_program *out = bpf_object__find_program_by_name(obj, "to_gwlb");
	flows_fd = bpf_object__find_map_fd_by_name(obj, "flows");
	config_fd = bpf_object__find_map_fd_by_name(obj, "config");
	counters_fd = bpf_object__find_map_fd_by_name(obj, "counters");
	if (!in || !out || flows_fd < 0 || config_fd < 0 || counters_fd < 0)
		fail("%s lacks a program or map this loader needs", object);
	if (set_hang(0) != 0)
		fail("cannot write the config map: %s", strerror(errno));

	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) /* EEXIST: left by a loader that was killed */
		fail("clsact on %s: %s", ifname, strerror(-err));
	/* REPLACE: a killed loader's filters are still there with this handle and priority. */
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, in_opts, .handle = TC_HANDLE, .priority = TC_PRIORITY,
			    .flags = BPF_TC_F_REPLACE, .prog_fd = bpf_program__fd(in));
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, out_opts, .handle = TC_HANDLE, .priority = TC_PRIORITY,
			    .flags = BPF_TC_F_REPLACE, .prog_fd = bpf_program__fd(out));
	/* Egress first: from the moment ingress marks packets, egress must encapsulate them. */
	hook.attach_point = BPF_TC_EGRESS;
	err = bpf_tc_attach(&hook, &out_opts);
	if (!err) {
		hook.attach_point = BPF_TC_INGRESS;
		err = bpf_tc_attach(&hook, &in_opts);
	}
	if (err) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
		fail("attaching to %s: %s", ifname, strerror(-err));
	}
	if (send(ctl, "ready", 5, 0) != 5)
		stopping = 1;

	uint64_t next_sweep = monotonic_ns() + SWEEP_S * 1000000000ull;
	struct pollfd fds[3] = {{ctl, POLLIN, 0}, {sock, POLLIN, 0}, {tun_out, POLLIN, 0}};
	while (!stopping) {
		int r = poll(fds, 3, 1000);
		if (r < 0 && errno != EINTR) {
			perror("appliance-bpf-loader: poll");
			break;
		}
		if (r > 0 && (fds[1].revents & POLLIN))
			from_socket(sock, tun_in);
		if (r > 0 && (fds[2].revents & POLLIN))
			from_tun(tun_out, sock);
		if (r > 0 && fds[0].revents && control(stats_path) < 0)
			break; /* the parent closed the control socket: it is ending */
		if (monotonic_ns() >= next_sweep) {
			forget_idle();
			next_sweep = monotonic_ns() + SWEEP_S * 1000000000ull;
		}
	}
	/* Ingress first: nothing new is marked while egress still encapsulates. */
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, detach, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	hook.attach_point = BPF_TC_INGRESS;
	bpf_tc_detach(&hook, &detach);
	hook.attach_point = BPF_TC_EGRESS;
	bpf_tc_detach(&hook, &detach);
	hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
	bpf_tc_hook_destroy(&hook);
	bpf_object__close(obj);
	return 0;
}
