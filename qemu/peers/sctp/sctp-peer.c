/*
 * sctp-peer: an independent SCTP peer for Bulkhead's tests and bench, on Debian's libusrsctp.
 *
 * One usrsctp instance per process; run one process per network namespace (as root, usrsctp
 * opens raw SCTP sockets, which see every SCTP packet of the namespace).
 *
 *   sctp-peer [-u LOCAL:REMOTE] [-b ADDR] [-t MIN:MAX:PATHRTX:HB] [-m MTU] [-w] MODE ARGS...
 *     -u LOCAL:REMOTE  UDP encapsulation (RFC 6951): our encapsulation port and the peer's
 *     -b ADDR          bind to ADDR (default: any)
 *     -m MTU           pin the path MTU of every association to MTU bytes (the IP packet,
 *                      headers included, UDP's too with -u; 576..65535) with path MTU discovery
 *                      off: SCTP_PEER_ADDR_PARAMS with SPP_PMTUD_DISABLE on each socket before
 *                      it binds or connects, so it is the endpoint's default for every path; no
 *                      packet of ours is larger (usrsctp fragments messages to fit)
 *     -w               echo and seq: after the "ok" line, keep the association open until a
 *                      line (or the end) on stdin, so its state can be read from the other end
 *     -t MIN:MAX:PATHRTX:HB  RTO.Min and RTO.Max in ms (RTO.Initial = RTO.Min),
 *                      Path.Max.Retrans, HB.interval in ms (default: usrsctp's, RFC 9260's)
 *
 *   echo ADDR PORT STREAMS SIZE...   one association; each message (stream i % STREAMS, PPID i,
 *                                    ordered, a pattern of SIZE bytes) must come back intact,
 *                                    on its stream with its PPID; prints "ok N messages B bytes"
 *   close ADDR PORT                  one echo, then a graceful close; prints "ok shutdown"
 *   abort ADDR PORT                  one echo, then SO_LINGER 0 and close (ABORT); "ok abort"
 *   seq ADDR PORT STREAMS COUNT SIZE COUNT messages on STREAMS streams, each message carrying its
 *                                    per-stream sequence number; echoes must come back once, in
 *                                    order per stream; prints "ok N messages in S s"
 *   rtt ADDR PORT COUNT SIZE         COUNT echo round trips; prints "ok N round trips in S s"
 *   blast ADDR PORT COUNT SIZE       COUNT messages one way, then a graceful close once all are
 *                                    acknowledged; prints "ok N messages in S s"
 *   flood ADDR PORT ASSOCS SIZE QUIET_MS [MAX_MS]
 *                                    ASSOCS associations, SIZE-byte messages round robin,
 *                                    non-blocking, until every sender was refused for QUIET_MS;
 *                                    prints "blocked N" (messages accepted), or "stopped N"
 *                                    after MAX_MS of sending, then waits for a line on stdin,
 *                                    closes gracefully and prints "done N"
 *   serve PORT KIND                  a server: KIND echo, discard, or paused (accepts and never
 *                                    reads); prints "listening", runs until killed
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <usrsctp.h>

static uint16_t remote_udp;
static const char *bind_addr;
static unsigned pinned_mtu;
static int hold_open;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("error: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sockaddr_in addr_of(const char *host, int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	if (host && inet_pton(AF_INET, host, &a.sin_addr) != 1)
		die("bad address %s", host);
	return a;
}

/*
 * -m: the endpoint's default path MTU (no address: the future associations) with PMTUD off.
 * usrsctp keeps this default without the headers and adds them to each path it creates (IPv4
 * and the SCTP common header, 32 bytes, and the UDP header with encapsulation): measured with
 * tshark, spp_pathmtu 1200 gave raw IPv4 packets of 1232 bytes. So MTU less those headers.
 */
static void pin_mtu(struct socket *s)
{
	const unsigned headers = 20 + 12 + (remote_udp ? 8 : 0);
	struct sctp_paddrparams p;
	memset(&p, 0, sizeof p);
	p.spp_assoc_id = SCTP_FUTURE_ASSOC;
	p.spp_pathmtu = pinned_mtu - headers;
	p.spp_flags = SPP_PMTUD_DISABLE;
	if (usrsctp_setsockopt(s, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &p, sizeof p) < 0)
		die("SCTP_PEER_ADDR_PARAMS pathmtu %u: %s", pinned_mtu, strerror(errno));
	memset(&p, 0, sizeof p);
	socklen_t len = sizeof p;
	p.spp_assoc_id = SCTP_FUTURE_ASSOC;
	if (usrsctp_getsockopt(s, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &p, &len) < 0)
		die("SCTP_PEER_ADDR_PARAMS (read back): %s", strerror(errno));
	if (!(p.spp_flags & SPP_PMTUD_DISABLE) || p.spp_pathmtu != pinned_mtu - headers)
		die("path MTU %u not pinned: flags %#x, pathmtu %u", pinned_mtu, p.spp_flags, p.spp_pathmtu);
}

static struct socket *new_socket(int streams)
{
	struct socket *s = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
	if (!s)
		die("usrsctp_socket: %s", strerror(errno));
	struct sctp_initmsg init;
	memset(&init, 0, sizeof init);
	init.sinit_num_ostreams = streams;
	init.sinit_max_instreams = streams;
	usrsctp_setsockopt(s, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init);
	const int on = 1;
	usrsctp_setsockopt(s, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof on);
	usrsctp_setsockopt(s, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on);
	if (pinned_mtu)
		pin_mtu(s);
	if (bind_addr) {
		struct sockaddr_in b = addr_of(bind_addr, 0);
		if (usrsctp_bind(s, (struct sockaddr *)&b, sizeof b) < 0)
			die("bind %s: %s", bind_addr, strerror(errno));
	}
	return s;
}

static void set_encaps(struct socket *s, const struct sockaddr_in *peer)
{
	if (!remote_udp)
		return;
	struct sctp_udpencaps e;
	memset(&e, 0, sizeof e);
	memcpy(&e.sue_address, peer, sizeof *peer);
	e.sue_port = htons(remote_udp);
	if (usrsctp_setsockopt(s, IPPROTO_SCTP, SCTP_REMOTE_UDP_ENCAPS_PORT, &e, sizeof e) < 0)
		die("SCTP_REMOTE_UDP_ENCAPS_PORT: %s", strerror(errno));
}

static struct socket *connect_to(const char *host, int port, int streams)
{
	struct socket *s = new_socket(streams);
	struct sockaddr_in peer = addr_of(host, port);
	set_encaps(s, &peer);
	if (usrsctp_connect(s, (struct sockaddr *)&peer, sizeof peer) < 0)
		die("connect %s:%d: %s", host, port, strerror(errno));
	return s;
}

static int send_msg(struct socket *s, const void *data, size_t len, uint16_t sid, uint32_t ppid)
{
	struct sctp_sndinfo info;
	memset(&info, 0, sizeof info);
	info.snd_sid = sid;
	info.snd_ppid = htonl(ppid);
	return (int)usrsctp_sendv(s, data, len, NULL, 0, &info, sizeof info, SCTP_SENDV_SNDINFO, 0);
}

/* One whole message (notifications skipped); its length, or -1 at the end. */
static ssize_t recv_msg(struct socket *s, uint8_t *buf, size_t cap, uint16_t *sid, uint32_t *ppid)
{
	size_t got = 0;
	for (;;) {
		struct sctp_rcvinfo info;
		socklen_t infolen = sizeof info, fromlen = 0;
		unsigned int infotype = 0;
		int flags = 0;
		ssize_t n = usrsctp_recvv(s, buf + got, cap - got, NULL, &fromlen, &info, &infolen, &infotype,
					  &flags);
		if (n <= 0)
			return -1;
		if (flags & MSG_NOTIFICATION)
			continue;
		got += n;
		if (infotype == SCTP_RECVV_RCVINFO) {
			*sid = info.rcv_sid;
			*ppid = ntohl(info.rcv_ppid);
		}
		if (flags & MSG_EOR)
			return got;
		if (got == cap)
			die("message larger than %zu bytes", cap);
	}
}

/* -w: the association stays up until a line (or the end) on stdin. */
static void hold(void)
{
	if (!hold_open)
		return;
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		line[0] = 0;
}

static void pattern(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed * 7 + 1);
}

static uint8_t buf_out[1 << 20], buf_in[1 << 20];

static void round_trip(struct socket *s, size_t size, uint16_t sid, uint32_t ppid)
{
	pattern(buf_out, size, ppid);
	if (send_msg(s, buf_out, size, sid, ppid) < 0)
		die("send %zu bytes: %s", size, strerror(errno));
	uint16_t rsid = 0;
	uint32_t rppid = 0;
	ssize_t n = recv_msg(s, buf_in, sizeof buf_in, &rsid, &rppid);
	if (n != (ssize_t)size)
		die("echo of %zu bytes came back as %zd", size, n);
	if (memcmp(buf_in, buf_out, size) != 0)
		die("echo of %zu bytes differs", size);
	if (rsid != sid || rppid != ppid)
		die("echo on stream %u ppid %u, sent on %u ppid %u", rsid, rppid, sid, ppid);
}

static int mode_echo(int argc, char **argv)
{
	if (argc < 4)
		die("echo ADDR PORT STREAMS SIZE...");
	int streams = atoi(argv[2]);
	struct socket *s = connect_to(argv[0], atoi(argv[1]), streams);
	/* A message must fit the send buffer whole. */
	size_t largest = 0;
	for (int i = 3; i < argc; i++)
		if (strtoul(argv[i], NULL, 10) > largest)
			largest = strtoul(argv[i], NULL, 10);
	int sndbuf = (int)(2 * largest);
	if (sndbuf > 256 * 1024 && usrsctp_setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0)
		die("SO_SNDBUF: %s", strerror(errno));
	size_t total = 0;
	for (int i = 3; i < argc; i++) {
		size_t size = strtoul(argv[i], NULL, 10);
		if (size == 0 || size > sizeof buf_in)
			die("size %s", argv[i]);
		round_trip(s, size, (uint16_t)((i - 3) % streams), (uint32_t)(i - 3));
		total += size;
	}
	printf("ok %d messages %zu bytes\n", argc - 3, total);
	hold();
	usrsctp_close(s);
	return 0;
}

static int mode_close(int argc, char **argv, int abort_it)
{
	if (argc < 2)
		die("close|abort ADDR PORT");
	struct socket *s = connect_to(argv[0], atoi(argv[1]), 4);
	round_trip(s, 100, 1, 7);
	if (abort_it) {
		struct linger l = {1, 0};
		usrsctp_setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
		usrsctp_close(s);
		printf("ok abort\n");
	} else {
		if (usrsctp_shutdown(s, SHUT_WR) < 0)
			die("shutdown: %s", strerror(errno));
		uint16_t sid;
		uint32_t ppid;
		/* The peer's SHUTDOWN ACK ends the association: the read returns 0. */
		if (recv_msg(s, buf_in, sizeof buf_in, &sid, &ppid) >= 0)
			die("data after shutdown");
		usrsctp_close(s);
		printf("ok shutdown\n");
	}
	return 0;
}

static int mode_seq(int argc, char **argv)
{
	if (argc < 5)
		die("seq ADDR PORT STREAMS COUNT SIZE");
	int streams = atoi(argv[2]);
	long count = atol(argv[3]);
	size_t size = strtoul(argv[4], NULL, 10);
	if (size < 4 || size > sizeof buf_in)
		die("size %zu: 4.. bytes", size);
	struct socket *s = connect_to(argv[0], atoi(argv[1]), streams);
	uint32_t *next_out = calloc(streams, 4), *next_in = calloc(streams, 4);
	long sent = 0, got = 0;
	/* A window of messages in flight: send a few ahead, then one per echo. */
	const long window = 32;
	double t0 = now_s();
	while (got < count) {
		while (sent < count && sent - got < window) {
			uint16_t sid = sent % streams;
			uint32_t seq = next_out[sid]++;
			memset(buf_out, (int)(seq & 0xff), size);
			memcpy(buf_out, &seq, 4);
			if (send_msg(s, buf_out, size, sid, sid) < 0)
				die("send: %s", strerror(errno));
			sent++;
		}
		uint16_t sid = 0;
		uint32_t ppid = 0;
		ssize_t n = recv_msg(s, buf_in, sizeof buf_in, &sid, &ppid);
		if (n != (ssize_t)size)
			die("echo %ld: %zd bytes", got, n);
		uint32_t seq;
		memcpy(&seq, buf_in, 4);
		if (sid >= streams || ppid != sid || seq != next_in[sid])
			die("stream %u: message %u arrived, %u expected", sid, seq, sid < streams ? next_in[sid] : 0);
		next_in[sid]++;
		got++;
	}
	printf("ok %ld messages in %.3f s\n", got, now_s() - t0);
	hold();
	usrsctp_close(s);
	return 0;
}

static int mode_rtt(int argc, char **argv)
{
	if (argc < 4)
		die("rtt ADDR PORT COUNT SIZE");
	long count = atol(argv[2]);
	size_t size = strtoul(argv[3], NULL, 10);
	struct socket *s = connect_to(argv[0], atoi(argv[1]), 1);
	double t0 = now_s();
	for (long i = 0; i < count; i++)
		round_trip(s, size, 0, (uint32_t)i);
	printf("ok %ld round trips in %.3f s\n", count, now_s() - t0);
	usrsctp_close(s);
	return 0;
}

static void wait_drained(struct socket *s)
{
	for (;;) {
		struct sctp_status st;
		socklen_t len = sizeof st;
		memset(&st, 0, sizeof st);
		if (usrsctp_getsockopt(s, IPPROTO_SCTP, SCTP_STATUS, &st, &len) < 0)
			return;
		if (st.sstat_unackdata == 0 && st.sstat_penddata == 0)
			return;
		usleep(200);
	}
}

static int mode_blast(int argc, char **argv)
{
	if (argc < 4)
		die("blast ADDR PORT COUNT SIZE");
	long count = atol(argv[2]);
	size_t size = strtoul(argv[3], NULL, 10);
	if (size == 0 || size > sizeof buf_out)
		die("blast: SIZE from 1 to %zu", sizeof buf_out);
	struct socket *s = connect_to(argv[0], atoi(argv[1]), 1);
	/* A message must fit the send buffer whole. */
	int sndbuf = (int)(2 * size);
	if (sndbuf > 256 * 1024 && usrsctp_setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0)
		die("SO_SNDBUF: %s", strerror(errno));
	memset(buf_out, 0x42, size);
	double t0 = now_s();
	for (long i = 0; i < count; i++)
		if (send_msg(s, buf_out, size, 0, 0) < 0)
			die("send %ld: %s", i, strerror(errno));
	wait_drained(s);
	printf("ok %ld messages in %.3f s\n", count, now_s() - t0);
	usrsctp_close(s);
	return 0;
}

static int mode_flood(int argc, char **argv)
{
	if (argc < 5)
		die("flood ADDR PORT ASSOCS SIZE QUIET_MS");
	int n = atoi(argv[2]);
	size_t size = strtoul(argv[3], NULL, 10);
	double quiet = atoi(argv[4]) / 1000.0;
	double max = argc > 5 ? atoi(argv[5]) / 1000.0 : 1e9;
	struct socket *s[64];
	if (n < 1 || n > 64)
		die("1..64 associations");
	for (int i = 0; i < n; i++) {
		s[i] = connect_to(argv[0], atoi(argv[1]), 4);
		usrsctp_set_non_blocking(s[i], 1);
	}
	long sent = 0;
	double last_ok = now_s(), t0 = now_s();
	int stopped = 0;
	memset(buf_out, 'x', size);
	while (now_s() - last_ok < quiet) {
		if (now_s() - t0 > max) {
			stopped = 1;
			break;
		}
		int any = 0;
		for (int i = 0; i < n; i++) {
			if (send_msg(s[i], buf_out, size, sent % 4, (uint32_t)sent) >= 0) {
				sent++;
				any = 1;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				die("send on association %d: %s", i, strerror(errno));
			}
		}
		if (any)
			last_ok = now_s();
		else
			usleep(1000);
	}
	printf("%s %ld\n", stopped ? "stopped" : "blocked", sent);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		line[0] = 0;
	for (int i = 0; i < n; i++) {
		usrsctp_set_non_blocking(s[i], 0);
		wait_drained(s[i]);
	}
	for (int i = 0; i < n; i++)
		usrsctp_close(s[i]);
	printf("done %ld\n", sent);
	return 0;
}

static int mode_serve(int argc, char **argv)
{
	if (argc < 2)
		die("serve PORT echo|discard|paused");
	const char *kind = argv[1];
	const char *at = bind_addr ? bind_addr : "0.0.0.0";
	bind_addr = NULL;
	struct socket *l = new_socket(16);
	struct sockaddr_in a = addr_of(at, atoi(argv[0]));
	if (usrsctp_bind(l, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind: %s", strerror(errno));
	if (usrsctp_listen(l, 16) < 0)
		die("listen: %s", strerror(errno));
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		struct socket *c = usrsctp_accept(l, NULL, NULL);
		if (!c)
			continue;
		if (strcmp(kind, "paused") == 0)
			continue; /* never read: the receiver is suspended */
		for (;;) {
			uint16_t sid = 0;
			uint32_t ppid = 0;
			ssize_t n = recv_msg(c, buf_in, sizeof buf_in, &sid, &ppid);
			if (n < 0)
				break;
			if (strcmp(kind, "echo") == 0 && send_msg(c, buf_in, n, sid, ppid) < 0)
				break;
		}
		usrsctp_close(c);
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint16_t local_udp = 0;
	unsigned rto_min = 0, rto_max = 0, path_rtx = 0, hb = 0;
	int timers = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
			unsigned lu, ru;
			if (sscanf(argv[++i], "%u:%u", &lu, &ru) != 2)
				die("-u LOCAL:REMOTE");
			local_udp = lu;
			remote_udp = ru;
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			if (sscanf(argv[++i], "%u:%u:%u:%u", &rto_min, &rto_max, &path_rtx, &hb) != 4 ||
			    rto_min == 0 || rto_max < rto_min || hb == 0)
				die("-t MIN:MAX:PATHRTX:HB");
			timers = 1;
		} else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
			if (sscanf(argv[++i], "%u", &pinned_mtu) != 1 || pinned_mtu < 576 || pinned_mtu > 65535)
				die("-m MTU: 576..65535");
		} else if (strcmp(argv[i], "-w") == 0) {
			hold_open = 1;
		} else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
			bind_addr = argv[++i];
		} else {
			die("unknown option %s", argv[i]);
		}
	}
	if (i >= argc)
		die("no mode (see the header of sctp-peer.c)");
	setvbuf(stdout, NULL, _IOLBF, 0);
	usrsctp_init(local_udp, NULL, NULL);
	usrsctp_sysctl_set_sctp_blackhole(2);
	usrsctp_sysctl_set_sctp_ecn_enable(0);
	if (timers) {
		usrsctp_sysctl_set_sctp_rto_min_default(rto_min);
		usrsctp_sysctl_set_sctp_rto_max_default(rto_max);
		usrsctp_sysctl_set_sctp_rto_initial_default(rto_min);
		usrsctp_sysctl_set_sctp_path_rtx_max_default(path_rtx);
		usrsctp_sysctl_set_sctp_heartbeat_interval_default(hb);
	}
	const char *mode = argv[i];
	int rest = argc - i - 1;
	char **args = argv + i + 1;
	int rc;
	if (strcmp(mode, "echo") == 0)
		rc = mode_echo(rest, args);
	else if (strcmp(mode, "close") == 0)
		rc = mode_close(rest, args, 0);
	else if (strcmp(mode, "abort") == 0)
		rc = mode_close(rest, args, 1);
	else if (strcmp(mode, "seq") == 0)
		rc = mode_seq(rest, args);
	else if (strcmp(mode, "rtt") == 0)
		rc = mode_rtt(rest, args);
	else if (strcmp(mode, "blast") == 0)
		rc = mode_blast(rest, args);
	else if (strcmp(mode, "flood") == 0)
		rc = mode_flood(rest, args);
	else if (strcmp(mode, "serve") == 0)
		rc = mode_serve(rest, args);
	else
		die("unknown mode %s", mode);
	/* Let the graceful closes finish (usrsctp_finish fails while associations remain). */
	for (int tries = 0; tries < 300 && usrsctp_finish() != 0; tries++)
		usleep(10000);
	return rc;
}
