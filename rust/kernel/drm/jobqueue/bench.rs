// SPDX-License-Identifier: GPL-2.0

//! JobQueue benchmarks, meant for a kernel without debug options.
//!
//! Each measurement is paired with `drm_sched`'s (or the C fence floor's) in the same scenario,
//! which `drivers/gpu/drm/scheduler/tests/sched_bench.c` makes with the same mock hardware:
//! the cases here call it through `jq_bench_c()`, alternately before and after their own. Both
//! print one line per measurement:
//!
//! `# bench: impl=<rust|c> bench=<name> inflight=<N> deps=<K> jobs=<n> submit_ns=<t>
//! complete_ns=<t> total_ns=<t> bytes=<b>`
//!
//! (KTAP diagnostic lines). Times are totals over `jobs` jobs (or fences); the reader divides
//! and aggregates.
//!
//! The mock hardware is the benchmark thread itself: `run` only records that a job reached the
//! ring, and once the whole round is on the ring the thread completes it as an interrupt handler
//! would, with interrupts off, through [`JobQueue::complete`] (one call for the round).
//!
//! The two-CPU benchmark (`smp`) splits the two: the submitter runs on CPU 0, and a completer
//! thread on CPU 1 polls the ring and completes what reached it, as an interrupt handler on
//! another CPU would.

use super::{
    JobQueue,
    JobQueueDriver,
    JobQueueWorkqueues,
    PreparedJob,
    TimeoutAction, //
};
use crate::{
    bindings,
    dma_buf::{
        DriverFenceAllocation,
        Fence,
        FenceCtx, //
    },
    new_condvar, new_spinlock, new_spinlock_irq,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Acquire,
            Atomic,
            Release, //
        },
        Arc,
        CondVar,
        SpinLock,
        SpinLockIrq, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};
use core::ptr::NonNull;

/// Repetitions of every many-queue measurement, with each scheduler (each creates up to 10,000
/// queues; the others ask `jq_bench_repeats()`). Even: each scheduler goes first as often.
const SCALE_REPEATS: u32 = 6;
/// Jobs per measurement (rounds of `inflight` jobs).
const JOBS: usize = 65536;
/// Jobs in flight at once, for the in-flight sweep (no dependencies).
const INFLIGHT: [usize; 4] = [1, 64, 4096, 65536];
/// Dependencies per job, for the dependency sweep.
const DEPS: [usize; 4] = [0, 1, 4, 16];
/// Jobs in flight in the dependency sweep.
const DEPS_INFLIGHT: usize = 4096;
/// Credits of the ring in the two-CPU benchmark.
const SMP_INFLIGHT: [usize; 3] = [1, 64, 4096];
/// Jobs per two-CPU measurement.
const SMP_JOBS: usize = 16384;

/// Progress of the ring, shared by `run` and the benchmark thread.
struct Ring {
    on_ring: u64,
    target: u64,
}

#[pin_data]
struct BenchHw {
    #[pin]
    ring: SpinLock<Ring>,
    #[pin]
    cv: CondVar,
    /// Stands for the interrupt controller: its guard disables interrupts.
    #[pin]
    irq: SpinLockIrq<()>,
    /// The seqno of the last job that reached the ring, for the two-CPU completer.
    published: Atomic<u64>,
}

struct BenchDriver {
    hw: Arc<BenchHw>,
}

impl BenchHw {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                ring <- new_spinlock!(Ring { on_ring: 0, target: 0 }),
                cv <- new_condvar!(),
                irq <- new_spinlock_irq!(()),
                published: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }
}

/// A queue named `name` in front of `hw`, with `credits` credits, on `wqs`; no timeout fires
/// during a measurement.
fn bench_queue(
    hw: &Arc<BenchHw>,
    name: &CStr,
    credits: usize,
    wqs: &JobQueueWorkqueues,
) -> Result<JobQueue<BenchDriver>> {
    JobQueue::new(
        BenchDriver { hw: hw.clone() },
        c"bench",
        name,
        credits as u32,
        Delta::from_secs(600),
        wqs,
    )
}

impl JobQueueDriver for BenchDriver {
    type Job = ();

    fn run(&self, _job: (), seqno: u64, _done: &Fence) {
        let mut r = self.hw.ring.lock();
        r.on_ring += 1;
        if r.on_ring == r.target {
            self.hw.cv.notify_all();
        }
        drop(r);
        self.hw.published.store(seqno, Release);
    }

    fn timed_out(&self, _seqno: u64) -> TimeoutAction {
        TimeoutAction::Progressing
    }

    fn stop(&self) {}
}

fn now() -> Instant<Monotonic> {
    Instant::now()
}

fn ns(d: Delta) -> i64 {
    d.as_nanos()
}

fn ksize(p: *const core::ffi::c_void) -> usize {
    // SAFETY: `p` is the start of a live slab or kmalloc allocation (callers' duty).
    unsafe { bindings::ksize(p) }
}

fn report(bench: &str, inflight: usize, deps: usize, jobs: usize, t: [i64; 3], bytes: usize) {
    crate::kunit::diagnostic(format_args!(
        "bench: impl=rust bench={bench} inflight={inflight} deps={deps} jobs={jobs} \
         submit_ns={} complete_ns={} total_ns={} bytes={bytes}",
        t[0], t[1], t[2]
    ));
}

/// A dependency fence, as the C suite makes them (a plain `dma_fence` of `sched_bench.c`): both
/// schedulers wait on the same kind of fence. Dropping it signals it, so that no path leaves a
/// job waiting for it.
struct DepFence(ARef<Fence>);

impl DepFence {
    /// A fence of the timeline `ctx` with `seqno`.
    fn new(ctx: u64, seqno: u64) -> Result<Self> {
        // SAFETY: FFI call without safety requirements (process context).
        let f = NonNull::new(unsafe { jq_bench_dep_new(ctx, seqno) }).ok_or(ENOMEM)?;
        // SAFETY: `f` is a live fence whose one reference `jq_bench_dep_new()` gave us.
        Ok(Self(unsafe { Fence::from_raw_owned(f) }))
    }
}

impl Drop for DepFence {
    fn drop(&mut self) {
        // SAFETY: `self.0` holds a reference, so the fence is live; a plain `dma_fence` may be
        // signalled from any context, and signalling a signalled one does nothing.
        unsafe { bindings::dma_fence_signal(self.0.as_raw()) };
    }
}

/// Waits until `target` jobs of the round reached the ring.
fn wait_on_ring(hw: &BenchHw, target: u64) {
    let mut r = hw.ring.lock();
    while r.on_ring < target {
        hw.cv.wait(&mut r);
    }
}

/// One measurement: `JOBS` jobs in rounds of `inflight`, each with `deps` dependencies on
/// foreign timelines that signal after the round was submitted. Returns (submit, complete,
/// total) nanoseconds, and the bytes one waiting job holds.
fn run_queue(inflight: usize, deps: usize) -> Result<([i64; 3], usize)> {
    let hw = BenchHw::new()?;
    let q = bench_queue(&hw, c"bench", inflight, &JobQueueWorkqueues::new(c"bench")?)?;
    let res = measure_queue(&q, &hw, inflight, deps);
    // The teardown happens here, not in a worker during the next (drm_sched's) measurement.
    q.shutdown();
    res
}

/// The rounds of [`run_queue`] on `q`.
fn measure_queue(
    q: &JobQueue<BenchDriver>,
    hw: &BenchHw,
    inflight: usize,
    deps: usize,
) -> Result<([i64; 3], usize)> {
    // SAFETY: FFI call without safety requirements.
    let dep_ctx = unsafe { bindings::dma_fence_context_alloc(deps.max(1) as u32) };
    let rounds = JOBS.div_ceil(inflight);
    let mut t = [0i64; 3];
    // Start without RCU callbacks (freed fences) of earlier measurements pending.
    crate::sync::rcu::rcu_barrier();
    let mut bytes = 0;
    let mut dep_fences: KVec<DepFence> = KVec::with_capacity(inflight * deps, GFP_KERNEL)?;
    let mut done: KVec<ARef<Fence>> = KVec::with_capacity(inflight, GFP_KERNEL)?;
    for round in 0..rounds {
        // Not timed: the dependencies' producers, and the driver's own allocations.
        for i in 0..inflight * deps {
            dep_fences.push(
                DepFence::new(
                    dep_ctx + (i % deps) as u64,
                    (round * inflight + i / deps + 1) as u64,
                )?,
                GFP_KERNEL,
            )?;
        }
        hw.ring.lock().target = ((round + 1) * inflight) as u64;

        // Submit: prepare, dependencies, submit, one job after the other (as drm_sched's
        // job_init, add_dependency, arm and push_job).
        let t0 = now();
        for i in 0..inflight {
            let mut job = q.prepare((), 1)?;
            for d in dep_fences[i * deps..(i + 1) * deps].iter() {
                job.add_dependency(d.0.clone())?;
            }
            if round == 0 && i == 0 {
                bytes = job_bytes(&job);
            }
            done.push(job.submit(), GFP_KERNEL)?;
        }
        let t1 = now();
        // The producers finish (dropping signals them); the queue runs the round.
        dep_fences.clear();
        wait_on_ring(hw, ((round + 1) * inflight) as u64);
        // The interrupt: the whole round finished.
        let t2 = now();
        {
            let _irq = hw.irq.lock();
            if let Some(last) = done.last() {
                q.complete(last.seqno(), Ok(()));
            }
        }
        let t3 = now();
        t[0] += ns(t1 - t0);
        t[1] += ns(t3 - t2);
        t[2] += ns(t3 - t0);
        for f in done.drain_all() {
            if f.status() != Some(Ok(())) {
                return Err(EIO);
            }
        }
    }
    if q.stats().completed != (rounds * inflight) as u64 {
        return Err(EIO);
    }
    Ok((t, bytes))
}

/// The memory a prepared (and, once submitted, waiting) job holds: its fence allocation (with
/// its node and its list links in it) and its dependency array.
fn job_bytes(job: &PreparedJob<BenchDriver>) -> usize {
    let mut b = ksize(job.alloc.allocation_ptr());
    if job.node.deps.capacity() > 0 {
        b += ksize(job.node.deps.as_ptr().cast());
    }
    b
}

/// The cost of the fence abstraction: `DriverFence` from a pre-made allocation, signal, drop.
fn fence_floor() -> Result<i64> {
    let ctx = FenceCtx::new(c"bench", c"floor")?;
    let mut allocs = KVec::with_capacity(JOBS, GFP_KERNEL)?;
    for _ in 0..JOBS {
        allocs.push(DriverFenceAllocation::new((), GFP_KERNEL)?, GFP_KERNEL)?;
    }
    // Start without RCU callbacks (freed fences) of earlier measurements pending.
    crate::sync::rcu::rcu_barrier();
    let t0 = now();
    for a in allocs.drain_all() {
        let f = ctx.new_fence(a);
        let _ = f.signal(Ok(()));
    }
    Ok(ns(now() - t0))
}

extern "C" {
    /// Bytes of slab memory in use (declared in `drivers/gpu/drm/scheduler/tests/sched_bench.h`).
    fn jq_bench_slab_bytes() -> u64;
    /// Threads in the system, kernel threads included (same file).
    fn jq_bench_threads() -> i32;
    /// `num_online_cpus()` (same file).
    fn jq_bench_online_cpus() -> u32;
    /// Marks the running KUnit case skipped, with `reason` (same file).
    fn jq_bench_skip(reason: *const crate::ffi::c_char);
    /// One round of a polling loop: `cond_resched()` and `cpu_relax()` (same file).
    fn jq_bench_relax();
    /// Binds the calling thread to `cpu`, or to any CPU if `cpu` is negative (same file).
    fn jq_bench_pin(cpu: i32) -> i32;
    /// Runs `f(arg)` on a kernel thread bound to `cpu`; null on failure (same file).
    fn jq_bench_spawn_on_cpu(
        cpu: u32,
        f: unsafe extern "C" fn(*mut core::ffi::c_void),
        arg: *mut core::ffi::c_void,
    ) -> *mut core::ffi::c_void;
    /// Waits until `f` of [`jq_bench_spawn_on_cpu`] returned, and frees the thread.
    fn jq_bench_join(thread: *mut core::ffi::c_void);
    /// A dependency fence of timeline `ctx` with `seqno` and one reference, null without
    /// memory (same file).
    fn jq_bench_dep_new(ctx: u64, seqno: u64) -> *mut bindings::dma_fence;
    /// Which schedulers the paired cases measure: bit 0 the JobQueue, bit 1 `drm_sched` (boot
    /// parameter `sched_bench.impls`, for profiles; same file).
    fn jq_bench_impls() -> u32;
    /// Repetitions of every paired measurement (same file).
    fn jq_bench_repeats() -> u32;
    /// One `drm_sched` measurement of `bench` (`fence_floor`, `inflight`, `deps`, `smp`, or
    /// `scale` with `inflight` queues), reported with `impl=c` (same file). Must be called
    /// from a KUnit case's thread; a failed KUnit assertion in it ends that thread without
    /// unwinding the caller's frames, whose values are then never dropped.
    fn jq_bench_c(bench: *const crate::ffi::c_char, inflight: u32, deps: u32);
}

/// Measures `bench` `jq_bench_repeats()` times with each scheduler, taking turns at going
/// first (JobQueue, `drm_sched`, `drm_sched`, JobQueue, ...; with `turn`, the next scenario
/// starts with the other one): the drift of the machine over a run then favours neither. `rust`
/// measures and reports the JobQueue once. Called from the KUnit case's thread, and owns
/// nothing that needs dropping (see `jq_bench_c()`).
fn paired(
    bench: &CStr,
    inflight: usize,
    deps: usize,
    turn: &mut u32,
    rust: &mut dyn FnMut() -> Result,
) -> Result {
    // SAFETY: FFI call without safety requirements.
    let repeats = unsafe { jq_bench_repeats() };
    paired_n(bench, inflight, deps, turn, repeats, rust)
}

/// [`paired`], `repeats` times each.
fn paired_n(
    bench: &CStr,
    inflight: usize,
    deps: usize,
    turn: &mut u32,
    repeats: u32,
    rust: &mut dyn FnMut() -> Result,
) -> Result {
    // SAFETY: FFI call without safety requirements.
    let impls = unsafe { jq_bench_impls() };
    for _ in 0..repeats {
        let c_first = *turn % 2 == 1;
        *turn += 1;
        for c_turn in [c_first, !c_first] {
            if !c_turn && impls & 1 != 0 {
                rust()?;
            } else if c_turn && impls & 2 != 0 {
                // SAFETY: Called from a KUnit case's thread, with a NUL-terminated name; no
                // frame up to the case owns anything to drop.
                unsafe { jq_bench_c(bench.as_char_ptr(), inflight as u32, deps as u32) };
            }
        }
    }
    // The next scenario starts with the other scheduler.
    *turn += 1;
    Ok(())
}

/// What the two-CPU completer shares with the submitter.
struct SmpShared<'a> {
    q: &'a JobQueue<BenchDriver>,
    hw: &'a BenchHw,
    /// The seqno of the last job, once submitted; 0 before.
    last: Atomic<u64>,
    /// Set by the submitter when it gave up: the completer returns.
    abort: Atomic<u32>,
}

/// The two-CPU completer: completes the jobs that reached the ring, with interrupts off, until
/// the last one.
///
/// # Safety
///
/// `arg` must point to an `SmpShared` that outlives the call.
unsafe extern "C" fn smp_completer(arg: *mut core::ffi::c_void) {
    // SAFETY: By the safety requirements `arg` points to a live `SmpShared`.
    let s = unsafe { &*arg.cast::<SmpShared<'_>>() };
    let mut done = 0;
    loop {
        let on_ring = s.hw.published.load(Acquire);
        if on_ring > done {
            let _irq = s.hw.irq.lock();
            s.q.complete(on_ring, Ok(()));
            done = on_ring;
        } else if (done != 0 && done == s.last.load(Acquire)) || s.abort.load(Acquire) != 0 {
            return;
        } else {
            // SAFETY: Callable from any sleepable context.
            unsafe { jq_bench_relax() };
        }
    }
}

/// Two CPUs: the submitter (this thread, on CPU 0) pushes `SMP_JOBS` jobs back to back, with at
/// most `inflight` credits on the ring, while the completer on CPU 1 completes what reached the
/// ring. Returns (submit, 0, total) nanoseconds; total runs until the last done fence signalled.
fn run_smp(inflight: usize) -> Result<[i64; 3]> {
    let hw = BenchHw::new()?;
    let q = bench_queue(
        &hw,
        c"bench-smp",
        inflight,
        &JobQueueWorkqueues::new(c"bench-smp")?,
    )?;
    let shared = SmpShared {
        q: &q,
        hw: &hw,
        last: Atomic::new(0),
        abort: Atomic::new(0),
    };
    crate::sync::rcu::rcu_barrier();
    // SAFETY: Callable from process context.
    if unsafe { jq_bench_pin(0) } != 0 {
        return Err(EINVAL);
    }
    // SAFETY: `shared` outlives the thread: it is joined below, before `shared` goes away, on
    // every path (an error sets `abort`, on which it returns). What it refers to is `Sync`
    // (`JobQueue` and `BenchHw` are).
    let completer = unsafe {
        jq_bench_spawn_on_cpu(
            1,
            smp_completer,
            core::ptr::from_ref(&shared).cast_mut().cast(),
        )
    };
    let res = (|| {
        if completer.is_null() {
            return Err(ENOMEM);
        }
        let t0 = now();
        let mut last = None;
        for _ in 0..SMP_JOBS {
            last = Some(q.prepare((), 1)?.submit());
        }
        let t1 = now();
        let last = last.ok_or(EINVAL)?;
        shared.last.store(last.seqno(), Release);
        last.wait(false)?;
        let t2 = now();
        if last.status() != Some(Ok(())) {
            return Err(EIO);
        }
        Ok([ns(t1 - t0), 0, ns(t2 - t0)])
    })();
    if res.is_err() {
        // Let the completer stop.
        shared.abort.store(1, Release);
    }
    if !completer.is_null() {
        // SAFETY: `completer` came from `jq_bench_spawn_on_cpu` and is joined once.
        unsafe { jq_bench_join(completer) };
    }
    // SAFETY: Callable from process context.
    unsafe { jq_bench_pin(-1) };
    // The teardown happens here, not in a worker during the next (drm_sched's) measurement.
    q.shutdown();
    let t = res?;
    if q.stats().completed != SMP_JOBS as u64 {
        return Err(EIO);
    }
    Ok(t)
}

fn slab_bytes() -> i64 {
    // SAFETY: Reads global counters; callable from any context.
    unsafe { jq_bench_slab_bytes() as i64 }
}

fn threads() -> i64 {
    // SAFETY: Reads a global counter; callable from any context.
    i64::from(unsafe { jq_bench_threads() })
}

/// Queue counts of the scale benchmark.
const SCALE_QUEUES: [usize; 4] = [1, 100, 1000, 10000];
/// Jobs per scale measurement, at least: rounds of one job on every queue.
const SCALE_JOBS: usize = 20000;
/// Rounds of the scale measurement, at least.
const SCALE_ROUNDS: usize = 4;

/// What one scale measurement found, as totals: (create, destroy, submit, complete, total)
/// nanoseconds, jobs, slab bytes and threads the queues added.
struct Scale {
    t: [i64; 5],
    jobs: usize,
    bytes: i64,
    threads: i64,
}

/// One scale measurement: `n` queues of one device, on one pair of shared workqueues, as a
/// driver with one queue per firmware ring makes them. Creates them, gives each one job per
/// round (all completing in one interrupt), and destroys them.
fn run_scale(n: usize) -> Result<Scale> {
    let hw = BenchHw::new()?;
    let wqs = JobQueueWorkqueues::new(c"bench-scale")?;
    let mut queues = KVec::with_capacity(n, GFP_KERNEL)?;
    let mut done: KVec<ARef<Fence>> = KVec::with_capacity(n, GFP_KERNEL)?;
    let rounds = SCALE_JOBS.div_ceil(n).max(SCALE_ROUNDS);
    let mut t = [0i64; 5];
    crate::sync::rcu::rcu_barrier();
    let (slab0, threads0) = (slab_bytes(), threads());
    let t0 = now();
    for _ in 0..n {
        queues.push(bench_queue(&hw, c"scale", 1, &wqs)?, GFP_KERNEL)?;
    }
    t[0] = ns(now() - t0);
    let (bytes, threads) = (slab_bytes() - slab0, threads() - threads0);
    for round in 0..rounds {
        let target = ((round + 1) * n) as u64;
        hw.ring.lock().target = target;
        let t0 = now();
        for q in queues.iter() {
            done.push(q.prepare((), 1)?.submit(), GFP_KERNEL)?;
        }
        let t1 = now();
        wait_on_ring(&hw, target);
        // The interrupt: every ring finished its job.
        let t2 = now();
        {
            let _irq = hw.irq.lock();
            for (q, f) in queues.iter().zip(done.iter()) {
                q.complete(f.seqno(), Ok(()));
            }
        }
        let t3 = now();
        t[2] += ns(t1 - t0);
        t[3] += ns(t3 - t2);
        t[4] += ns(t3 - t0);
        for f in done.drain_all() {
            if f.status() != Some(Ok(())) {
                return Err(EIO);
            }
        }
    }
    let t0 = now();
    for q in queues.drain_all() {
        q.shutdown();
        drop(q);
    }
    t[1] = ns(now() - t0);
    Ok(Scale {
        t,
        jobs: rounds * n,
        bytes,
        threads,
    })
}

fn report_scale(n: usize, s: &Scale) {
    crate::kunit::diagnostic(format_args!(
        "bench: impl=rust bench=scale queues={n} jobs={} create_ns={} destroy_ns={} \
         submit_ns={} complete_ns={} total_ns={} bytes={} threads={}",
        s.jobs, s.t[0], s.t[1], s.t[2], s.t[3], s.t[4], s.bytes, s.threads
    ));
}

#[kunit_tests(rust_jobqueue_bench)]
mod tests {
    use super::*;

    #[test]
    fn fence_floor() -> Result {
        paired(c"fence_floor", 0, 0, &mut 0, &mut || {
            report("fence_floor", 0, 0, JOBS, [0, 0, super::fence_floor()?], 0);
            Ok(())
        })
    }

    #[test]
    fn inflight() -> Result {
        let mut turn = 0;
        for n in INFLIGHT {
            paired(c"inflight", n, 0, &mut turn, &mut || {
                let (t, bytes) = run_queue(n, 0)?;
                report("inflight", n, 0, JOBS.div_ceil(n) * n, t, bytes);
                Ok(())
            })?;
        }
        Ok(())
    }

    #[test]
    fn scale() -> Result {
        let mut turn = 0;
        for n in SCALE_QUEUES {
            // `inflight` is the number of queues, one job in flight on each.
            paired_n(c"scale", n, 0, &mut turn, SCALE_REPEATS, &mut || {
                report_scale(n, &run_scale(n)?);
                Ok(())
            })?;
        }
        Ok(())
    }

    #[test]
    fn smp() -> Result {
        // SAFETY: Reads a global counter.
        if unsafe { jq_bench_online_cpus() } < 2 {
            // SAFETY: Called from a KUnit case, with a static string.
            unsafe { jq_bench_skip(c"needs two CPUs".as_char_ptr()) };
            return Ok(());
        }
        let mut turn = 0;
        for n in SMP_INFLIGHT {
            paired(c"smp", n, 0, &mut turn, &mut || {
                report("smp", n, 0, SMP_JOBS, run_smp(n)?, 0);
                Ok(())
            })?;
        }
        Ok(())
    }

    #[test]
    fn deps() -> Result {
        let mut turn = 0;
        for k in DEPS {
            paired(c"deps", DEPS_INFLIGHT, k, &mut turn, &mut || {
                let (t, bytes) = run_queue(DEPS_INFLIGHT, k)?;
                report("deps", DEPS_INFLIGHT, k, JOBS, t, bytes);
                Ok(())
            })?;
        }
        Ok(())
    }
}
