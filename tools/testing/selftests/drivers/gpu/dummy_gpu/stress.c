// SPDX-License-Identifier: GPL-2.0
/*
 * dummy_gpu_client stress: random DAGs from several processes, with
 * sw_sync fences, faults, hangs, random closes and process kills.
 */
#include "dummy_gpu_client.h"

/* Counters shared by the stress workers (an anonymous shared mapping). */
struct stress_shared {
	long submitted, ok, eio, etimedout, ecanceled, other, unsignalled, bad_status,
		submit_errors, closes, kills, faults, hangs, sw_fences, deps, worker_failures;
};

static struct stress_shared *sh;

static void sh_add(long *counter, long n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static long sh_get(long *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

struct sjob {
	int fd;
	uint32_t flags;
	uint32_t sw_need;
};

#define STRESS_WINDOW 128
#define STRESS_BOS 8

/* Waits for one of the worker's out-fences and classifies its status. */
static void stress_retire(struct sjob *j, int tl, uint32_t *sw_done)
{
	int st;

	/* Its sw_sync dependencies (direct or through older jobs) must be signalled. */
	if (j->sw_need > *sw_done) {
		sw_inc(tl, j->sw_need - *sw_done);
		*sw_done = j->sw_need;
	}
	st = fence_info(j->fd, NULL, NULL, NULL);
	if (st == 0 && !wait_fence(j->fd, 4 * dev_timeout_ms + 20000)) {
		sh_add(&sh->unsignalled, 1);
		fprintf(stderr, "stress: out-fence did not signal (flags %#x)\n", j->flags);
		close(j->fd);
		return;
	}
	if (st == 0)
		st = fence_info(j->fd, NULL, NULL, NULL);
	switch (st) {
	case 1:
		sh_add(&sh->ok, 1);
		if (j->flags & (DUMMY_GPU_SUBMIT_HANG | DUMMY_GPU_SUBMIT_FAULT))
			sh_add(&sh->bad_status, 1);
		break;
	case -EIO:
		sh_add(&sh->eio, 1);
		break;
	case -ETIMEDOUT:
		sh_add(&sh->etimedout, 1);
		break;
	case -ECANCELED:
		sh_add(&sh->ecanceled, 1);
		break;
	default:
		sh_add(&sh->other, 1);
		sh_add(&sh->bad_status, 1);
		fprintf(stderr, "stress: unexpected fence status %d\n", st);
	}
	close(j->fd);
}

static int stress_open(uint32_t *bos)
{
	int fd = open_device(), i;

	if (fd < 0)
		die("stress: cannot open the device\n");
	for (i = 0; i < STRESS_BOS; i++)
		if (bo_create(fd, 4096, &bos[i]))
			die("stress: BO_CREATE failed\n");
	return fd;
}

static struct drm_dummy_gpu_cmd stress_cmd(const uint32_t *bos)
{
	struct drm_dummy_gpu_cmd c = { 0 };
	uint64_t size = 4 * (1 + rnd() % 64);

	c.op = 1 + rnd() % 3;
	c.dst_handle = bos[rnd() % STRESS_BOS];
	c.size = size;
	c.dst_offset = 4 * (rnd() % ((4096 - size) / 4 + 1));
	if (c.op == DUMMY_GPU_OP_COPY) {
		c.src_handle = bos[rnd() % STRESS_BOS];
		c.src_offset = 4 * (rnd() % ((4096 - size) / 4 + 1));
	} else {
		c.value = rnd();
	}
	return c;
}

static int stress_worker(int id, long target)
{
	uint64_t close_every = opt.closes_per_m ? 1000000 / opt.closes_per_m : 0;
	struct drm_dummy_gpu_cmd cmds[3];
	struct sjob win[STRESS_WINDOW];
	uint32_t bos[STRESS_BOS], sw_next = 0, sw_done = 0;
	int32_t in[8];
	int head = 0, n = 0, fd, tl, i;

	rnd_state = 0x9e3779b97f4a7c15ull ^ opt.seed ^ ((uint64_t)id << 32) ^ getpid();
	fd = stress_open(bos);
	tl = sw_timeline();
	if (tl < 0)
		die("stress: no sw_sync\n");
	while (sh_get(&sh->submitted) < target) {
		struct submit s = { .cmds = cmds, .in = in };
		uint32_t r = rnd() % 10000, sw_need = 0, sw_fd = -1;
		int nd, out;

		s.ncmds = 1 + rnd() % 3;
		for (i = 0; i < (int)s.ncmds; i++)
			cmds[i] = stress_cmd(bos);
		nd = n && rnd() % 100 < 70 ? rnd() % 5 : 0;
		for (i = 0; i < nd; i++) {
			struct sjob *d = &win[(head + rnd() % n) % STRESS_WINDOW];

			in[i] = d->fd;
			if (d->sw_need > sw_need)
				sw_need = d->sw_need;
		}
		if (rnd() % 100 < 3) {
			sw_fd = sw_fence(tl, ++sw_next);
			in[nd++] = sw_fd;
			sw_need = sw_next;
			sh_add(&sh->sw_fences, 1);
		}
		s.nin = nd;
		s.flags = r < 5 ? DUMMY_GPU_SUBMIT_HANG : r < 105 ? DUMMY_GPU_SUBMIT_FAULT : 0;
		s.busy_us = rnd() % 20;
		s.ring = rnd() % dev_rings;
		s.credits = 1 + rnd() % 4;
		out = submit(fd, &s);
		if (sw_fd >= 0)
			close(sw_fd);
		if (out < 0) {
			sh_add(&sh->submit_errors, 1);
			fprintf(stderr, "stress: SUBMIT failed: %s\n", strerror(-out));
			continue;
		}
		sh_add(&sh->submitted, 1);
		sh_add(&sh->deps, nd);
		if (s.flags & DUMMY_GPU_SUBMIT_HANG)
			sh_add(&sh->hangs, 1);
		if (s.flags & DUMMY_GPU_SUBMIT_FAULT)
			sh_add(&sh->faults, 1);
		if (n == STRESS_WINDOW) {
			stress_retire(&win[head], tl, &sw_done);
			head = (head + 1) % STRESS_WINDOW;
			n--;
		}
		win[(head + n) % STRESS_WINDOW] = (struct sjob){ out, s.flags, sw_need };
		n++;
		if (close_every && rnd() % close_every == 0) {
			/* Close the file with jobs in flight: they are cancelled. */
			close(fd);
			sh_add(&sh->closes, 1);
			for (; n; n--, head = (head + 1) % STRESS_WINDOW)
				stress_retire(&win[head], tl, &sw_done);
			fd = stress_open(bos);
		}
	}
	for (; n; n--, head = (head + 1) % STRESS_WINDOW)
		stress_retire(&win[head], tl, &sw_done);
	close(fd);
	close(tl);
	return 0;
}

static pid_t stress_spawn(int id, long target)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(drm_fd);
		_exit(stress_worker(id, target));
	}
	if (pid < 0)
		die("fork: %s\n", strerror(errno));
	return pid;
}

int stress_mode(void)
{
	long target = opt.jobs, kill_every = opt.kills ? opt.jobs / (opt.kills + 1) : 0;
	long next_kill = kill_every ? kill_every : -1, last = 0;
	uint64_t t0 = now_ns(), tlast = t0;
	int live, i, next_id = 0, failures = 0;
	pid_t *pids = calloc(opt.procs, sizeof(*pids));
	struct totals t = { 0 };
	int have, balance;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || !pids)
		die("stress: no memory\n");
	memset(sh, 0, sizeof(*sh));
	printf("stress: %ld jobs, %d processes x %u rings, %d kills, %ld closes per 1M jobs\n",
	       target, opt.procs, dev_rings, opt.kills, opt.closes_per_m);
	for (i = 0; i < opt.procs; i++)
		pids[i] = stress_spawn(next_id++, target);
	live = opt.procs;
	while (live) {
		long done = sh_get(&sh->submitted);
		int status;
		pid_t p;

		usleep(50000);
		while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
			for (i = 0; i < opt.procs; i++)
				if (pids[i] == p)
					pids[i] = 0, live--;
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				fprintf(stderr, "stress: worker %d failed (status %#x)\n", p,
					status);
				failures++;
			}
		}
		if (next_kill > 0 && done >= next_kill && done < target && live) {
			/* SIGKILL a random worker mid-flight and start a new one. */
			int victim = rnd() % opt.procs;

			while (!pids[victim])
				victim = (victim + 1) % opt.procs;
			kill(pids[victim], SIGKILL);
			waitpid(pids[victim], &status, 0);
			sh_add(&sh->kills, 1);
			pids[victim] = stress_spawn(next_id++, target);
			next_kill += kill_every;
		}
		if (now_ns() - tlast > 10000000000ull) {
			printf("stress: %ld jobs, %.0f jobs/s\n", done,
			       (done - last) / ((now_ns() - tlast) / 1e9));
			last = done;
			tlast = now_ns();
		}
	}
	sh_add(&sh->worker_failures, failures);
	have = read_totals(&t);
	balance = have && t.submitted == t.completed + t.errored + t.timed_out + t.cancelled &&
		  t.pending == 0 && t.in_flight == 0 && t.credits == 0;
	printf("stress: %ld jobs in %.1f s (%.0f jobs/s)\n", sh_get(&sh->submitted),
	       (now_ns() - t0) / 1e9, sh_get(&sh->submitted) / ((now_ns() - t0) / 1e9));
	printf("stress: client saw ok %ld, -EIO %ld, -ETIMEDOUT %ld, -ECANCELED %ld, other %ld\n",
	       sh->ok, sh->eio, sh->etimedout, sh->ecanceled, sh->other);
	print_debugfs("stress: ");
	stat_line("stress.jobs", sh->submitted);
	stat_line("stress.kernel_submitted", t.submitted);
	stat_line("stress.deps", sh->deps);
	stat_line("stress.sw_fences", sh->sw_fences);
	stat_line("stress.faults", sh->faults);
	stat_line("stress.hangs", sh->hangs);
	stat_line("stress.closes", sh->closes);
	stat_line("stress.kills", sh->kills);
	stat_line("stress.status_ok", sh->ok);
	stat_line("stress.status_eio", sh->eio);
	stat_line("stress.status_etimedout", sh->etimedout);
	stat_line("stress.status_ecanceled", sh->ecanceled);
	stat_line("stress.unsignalled", sh->unsignalled);
	stat_line("stress.bad_status", sh->bad_status);
	stat_line("stress.submit_errors", sh->submit_errors);
	stat_line("stress.worker_failures", sh->worker_failures);
	stat_line("stress.counter_imbalance", !balance);
	return sh->unsignalled || sh->bad_status || sh->submit_errors || failures || !balance ||
	       sh->submitted < target;
}
