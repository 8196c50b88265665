// sendbench measures what one small frame sent to each of many loopback TCP sockets costs the
// sending thread, by write(2) per socket (what streamux's shared WebSocket writers do when each
// connection has one frame to send) and by io_uring, one io_uring_enter for a batch of sends
// across sockets (issue 23's question: does batching the system calls across sockets pay here?).
//
// A second thread reads every receiving end through epoll and drops what it reads. The figures
// are CPU time from getrusage: the sender's own (RUSAGE_THREAD) and the process's, per frame.
// On loopback the sender's system call also runs the receiving side of TCP, so the sender's
// figure is most of the cost; io_uring's worker threads, if any, are counted in the process's.
//
// Build and run (Debian: apt-get install liburing-dev):
//
//	cc -O2 -o /tmp/sendbench bench/uring/sendbench.c -luring -lpthread
//	/tmp/sendbench [connections=1000] [rounds=200] [frame bytes=120] [batch=256]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int nconn;
static int *snd, *rcv;
static atomic_int stop;
static atomic_long received;

static void die(const char *what) {
	perror(what);
	exit(1);
}

static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

static double cpu(int who) {
	struct rusage ru;
	getrusage(who, &ru);
	return tv(ru.ru_utime) + tv(ru.ru_stime);
}

static void *reader(void *arg) {
	(void)arg;
	int ep = epoll_create1(0);
	for (int i = 0; i < nconn; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = rcv[i]};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, rcv[i], &ev) < 0) die("epoll_ctl");
	}
	struct epoll_event evs[256];
	char buf[65536];
	while (!atomic_load(&stop)) {
		int n = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			ssize_t r;
			while ((r = read(evs[i].data.fd, buf, sizeof buf)) > 0) atomic_fetch_add(&received, r);
		}
	}
	return NULL;
}

static void pairs(void) {
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4096) < 0) die("listen");
	getsockname(l, (struct sockaddr *)&a, &al);
	for (int i = 0; i < nconn; i++) {
		snd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(snd[i], (struct sockaddr *)&a, sizeof a) < 0) die("connect");
		rcv[i] = accept4(l, NULL, NULL, SOCK_NONBLOCK);
		if (rcv[i] < 0) die("accept");
		int one = 1;
		setsockopt(snd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	close(l);
}

// run sends rounds frames to every socket and returns the sender's and the process's CPU
// seconds. uring: through ring, batch sends per io_uring_enter; otherwise a write(2) each.
static void run(int rounds, const char *frame, int size, struct io_uring *ring, int batch, double *self, double *all) {
	double s0 = cpu(RUSAGE_THREAD), a0 = cpu(RUSAGE_SELF);
	for (int r = 0; r < rounds; r++) {
		if (!ring) {
			for (int i = 0; i < nconn; i++)
				if (write(snd[i], frame, size) != size) die("write");
			continue;
		}
		for (int i = 0; i < nconn; i += batch) {
			int n = nconn - i < batch ? nconn - i : batch;
			for (int k = 0; k < n; k++) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
				io_uring_prep_send(sqe, snd[i + k], frame, size, 0);
			}
			if (io_uring_submit_and_wait(ring, n) < 0) die("io_uring_submit_and_wait");
			struct io_uring_cqe *cqe;
			unsigned head, seen = 0;
			io_uring_for_each_cqe(ring, head, cqe) {
				if (cqe->res != size) {
					fprintf(stderr, "send: %d\n", cqe->res);
					exit(1);
				}
				seen++;
			}
			io_uring_cq_advance(ring, seen);
			if ((int)seen != n) {
				// the rest complete later: wait for them
				for (int k = seen; k < n; k++) {
					if (io_uring_wait_cqe(ring, &cqe) < 0) die("wait_cqe");
					if (cqe->res != size) die("send");
					io_uring_cqe_seen(ring, cqe);
				}
			}
		}
	}
	*self = cpu(RUSAGE_THREAD) - s0;
	*all = cpu(RUSAGE_SELF) - a0;
}

int main(int argc, char **argv) {
	nconn = argc > 1 ? atoi(argv[1]) : 1000;
	int rounds = argc > 2 ? atoi(argv[2]) : 200;
	int size = argc > 3 ? atoi(argv[3]) : 120;
	int batch = argc > 4 ? atoi(argv[4]) : 256;
	snd = calloc(nconn, sizeof(int));
	rcv = calloc(nconn, sizeof(int));
	char *frame = malloc(size);
	memset(frame, 'x', size);
	pairs();
	pthread_t rt;
	pthread_create(&rt, NULL, reader, NULL);
	struct io_uring ring;
	if (io_uring_queue_init(batch, &ring, 0) < 0) die("io_uring_queue_init");
	double n = (double)nconn * rounds;
	printf("%d connections, %d rounds, %d-byte frames, io_uring batches of %d\n", nconn, rounds, size, batch);
	printf("%-8s %14s %14s\n", "mode", "sender ns/send", "process ns/send");
	for (int rep = 0; rep < 3; rep++) {
		double s, a;
		run(rounds, frame, size, NULL, batch, &s, &a);
		printf("%-8s %14.0f %14.0f\n", "write", s / n * 1e9, a / n * 1e9);
		run(rounds, frame, size, &ring, batch, &s, &a);
		printf("%-8s %14.0f %14.0f\n", "io_uring", s / n * 1e9, a / n * 1e9);
	}
	long want = (long)nconn * rounds * 6 * size;
	for (int i = 0; i < 200 && atomic_load(&received) < want; i++) usleep(10000); // the reader catches up
	atomic_store(&stop, 1);
	pthread_join(rt, NULL);
	if (atomic_load(&received) != want) {
		fprintf(stderr, "received %ld of %ld bytes\n", atomic_load(&received), want);
		return 1;
	}
	return 0;
}
