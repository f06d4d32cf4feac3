// SPDX-License-Identifier: GPL-2.0

//! JobQueue: job submission to one firmware or hardware ring.
//!
//! A [`JobQueue`] serves one ring of a GPU whose firmware (or hardware) schedules work itself,
//! as Nova and Tyr do: it is the "entity and scheduler in one". Jobs are submitted in two
//! phases, following the dma_fence rules (`Documentation/driver-api/dma-buf.rst`):
//!
//! 1. [`JobQueue::prepare`] (fallible, may allocate, may sleep): allocates the job's storage and
//!    its done fence, reserves the job's slots in the queue, and collects its dependencies
//!    ([`PreparedJob::add_dependency`]).
//! 2. [`PreparedJob::submit`] (infallible, the point of no return): publishes the done fence.
//!    From here until that fence signals, nothing on the job's path allocates memory.
//!
//! A submitted job waits for its dependencies with a single callback, armed on one unsignalled
//! dependency at a time. Jobs then start in submission order, when the ring has enough free
//! credits, from the queue's own workqueue (`WQ_MEM_RECLAIM`), inside a fence signalling
//! critical section: [`JobQueueDriver::run`] puts each job on the ring. The driver reports
//! completion with [`JobQueue::complete`], which may be called from an interrupt handler (see
//! its context rule); done fences signal strictly in submission (seqno) order. A per-queue timeout asks the
//! driver what to do about the oldest running job ([`JobQueueDriver::timed_out`]).
//!
//! Dropping the queue (or [`JobQueue::kill`]) never waits for the hardware: it signals every
//! unsignalled done fence with `-ECANCELED`, in seqno order. Done fences outlive the queue and
//! the driver module.
//!
//! # Examples
//!
//! ```
//! use kernel::dma_buf::Fence;
//! use kernel::drm::jobqueue::{JobQueue, JobQueueDriver, TimeoutAction};
//! use kernel::time::Delta;
//!
//! /// A ring whose "hardware" finishes every job at once.
//! struct Ring;
//!
//! impl JobQueueDriver for Ring {
//!     type Job = u32;
//!
//!     fn run(&self, job: u32, seqno: u64, _done: &Fence) {
//!         pr_info!("job {job} (seqno {seqno}) is on the ring\n");
//!     }
//!
//!     fn timed_out(&self, _seqno: u64) -> TimeoutAction {
//!         TimeoutAction::RingReset
//!     }
//! }
//!
//! let queue = JobQueue::new(Ring, c"example", c"ring0", 8, Delta::from_millis(500))?;
//! let mut job = queue.prepare(7, 1)?;
//! job.add_dependency(Fence::stub())?; // Already signalled: dropped.
//! let done = job.submit();
//! // The interrupt handler reports the ring's progress:
//! while queue.stats().in_flight == 0 {
//!     kernel::time::delay::fsleep(Delta::from_millis(1));
//! }
//! queue.complete(done.seqno(), Ok(()));
//! assert_eq!(done.status(), Some(Ok(())));
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    dma_buf::{
        DriverFence,
        DriverFenceAllocation,
        DriverFenceAllowedData,
        Fence,
        FenceCtx,
        SignallingSection, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
        Mutex,
        SpinLockIrq, //
    },
    time::{
        msecs_to_jiffies,
        Delta,
        Instant,
        Monotonic, //
    },
    types::Opaque,
    workqueue::{
        self,
        impl_has_delayed_work,
        impl_has_work,
        DelayedWork,
        OwnedQueue,
        Work,
        WorkItem, //
    },
    xarray::{
        AllocKind,
        XArray, //
    },
};
use core::{
    mem::ManuallyDrop,
    pin::Pin,
    ptr, //
};

#[cfg(CONFIG_DRM_JOBQUEUE_KUNIT_TEST)]
mod tests;

#[cfg(CONFIG_DRM_JOBQUEUE_BENCH)]
mod bench;

/// Lockdep classes of the queue's locks and work items.
///
/// Defined in non-generic, non-inlined functions with the names in `static`s, so that all
/// `JobQueue<D>` instantiations share one key *and one name pointer* per lock: a
/// `new_spinlock!`-style literal may be emitted once per instantiation or codegen unit (KASAN
/// builds do not merge constants), and lockdep warns when one class key comes with two
/// different name pointers.
mod classes {
    use crate::{
        str::CStr,
        sync::LockClassKey, //
    };
    use core::pin::Pin;

    type Class = (&'static CStr, Pin<&'static LockClassKey>);

    /// Defines `fn $f() -> Class` with its own key and a name in a `static`.
    macro_rules! class {
        ($($f:ident => $name:literal),* $(,)?) => {$(
            #[inline(never)]
            pub(super) fn $f() -> Class {
                static NAME: &CStr = $name;
                (NAME, crate::static_lock_class!())
            }
        )*};
    }

    class! {
        state => c"JobQueue::state",
        signal => c"JobQueue::signal_lock",
        reservations => c"JobQueue::reservations",
        work_open => c"JobQueue::work_open",
        run_work => c"JobQueue::run_work",
        timeout_work => c"JobQueue::timeout_work",
        timeout_timer => c"JobQueue::timeout_work_timer",
    }
}

/// What the driver decided about a job that exceeded the queue's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    /// The job is still making progress: give it another full timeout.
    Progressing,
    /// The driver reset the ring: the timed-out job's fence gets `-ETIMEDOUT`, the other jobs
    /// on the ring get `-ECANCELED`, and the queue goes on with the jobs not yet run.
    RingReset,
    /// The ring is unusable: every unsignalled fence gets an error (`-ETIMEDOUT` for the
    /// timed-out job, `-ECANCELED` for the others), and later submissions fail with `-ENODEV`.
    Dead,
}

/// The driver side of a [`JobQueue`]: puts jobs on the ring and handles timeouts.
///
/// # Context rules
///
/// Both methods run in process context, on the queue's own workqueue, inside a dma-fence
/// signalling critical section ([`SignallingSection`]): the fences of the queue's jobs wait for
/// them. They must therefore not allocate memory with reclaim (`GFP_KERNEL`), not take a lock
/// that is held anywhere while allocating with reclaim, and not wait for a dma-fence (lockdep
/// reports each of these). They must not drop the [`JobQueue`] or call
/// [`PreparedJob::submit`] on it, and they must not take a lock that is held around
/// [`JobQueue::complete`] or [`JobQueue::kill`].
pub trait JobQueueDriver: Send + Sync + 'static {
    /// The driver's job: what [`run`](Self::run) needs to put the work on the ring.
    type Job: Send + 'static;

    /// Puts `job` on the ring.
    ///
    /// Called once per job, in submission order, when the job's dependencies have signalled
    /// without error and the ring has room for its credits. When the ring has executed it, the
    /// driver calls [`JobQueue::complete`] with `seqno`. `done` is the job's done fence.
    fn run(&self, job: Self::Job, seqno: u64, done: &Fence);

    /// The oldest running job, `seqno`, has been running for longer than the queue's timeout.
    ///
    /// The driver inspects the ring, resets it if needed, and says how to go on.
    fn timed_out(&self, seqno: u64) -> TimeoutAction;
}

/// Per-job data in the done fence.
struct JobMeta {
    /// Credits the job occupies while it runs.
    credits: u32,
    /// When the job was handed to the ring (monotonic ns); restarted by `Progressing`.
    started: Atomic<i64>,
    /// Nonzero if the job will not run: the (negative) error its fence signals with.
    skipped: Atomic<i32>,
}

// SAFETY: `JobMeta` has no drop glue: dropping it does nothing, in any context.
unsafe impl DriverFenceAllowedData for JobMeta {}

/// The part of a [`JobNode`] that the dependency callback uses.
#[repr(C)]
struct DepWait<D: JobQueueDriver> {
    /// First, so that the callback finds the rest from the `dma_fence_cb` pointer.
    cb: bindings::dma_fence_cb,
    /// The queue; valid while `cb` may be registered (teardown removes it first).
    queue: *const Inner<D>,
}

impl<D: JobQueueDriver> JobNode<D> {
    /// Returns the `dma_fence_cb` to register.
    fn cb(&self) -> *mut bindings::dma_fence_cb {
        // SAFETY: `wait` is a valid `DepWait`; this only computes a field address.
        unsafe { &raw mut (*self.wait.get()).cb }
    }
}

/// A job from prepare until it leaves the pending set.
#[pin_data]
struct JobNode<D: JobQueueDriver> {
    /// The dependency callback; registered on at most one dependency at a time. Inside an
    /// [`Opaque`]: the C fence code and the callback use it while the queue holds `&mut` to
    /// the node.
    #[pin]
    wait: Opaque<DepWait<D>>,
    /// The driver's job, until it runs.
    job: Option<D::Job>,
    /// Memory for the done fence, until submit.
    alloc: Option<DriverFenceAllocation<JobMeta>>,
    /// The done fence, from submit until the job leaves the pending set.
    fence: Option<DriverFence<JobMeta>>,
    /// Dependencies: one per fence context, the latest of each.
    deps: KVec<ARef<Fence>>,
    /// Index in `deps` of the first dependency not known to have signalled.
    next_dep: usize,
    /// Whether `cb` is registered on `deps[next_dep]`.
    cb_armed: bool,
    /// The first dependency error seen.
    dep_error: Option<Error>,
    credits: u32,
}

// SAFETY: A `JobNode` is only accessed under the queue's locks; the raw `queue` pointer refers
// to a `Sync` queue and the driver job is `Send`.
unsafe impl<D: JobQueueDriver> Send for JobNode<D> {}

/// Mutable queue state, protected by `Inner::state`.
///
/// The seqnos of the queue's jobs partition as follows:
/// `[oldest, next_to_run)` are in flight (in `inflight`), `[next_to_run, next_seqno)` are
/// pending (in `pending`), and `[next_seqno, Reservations::end)` are reserved for prepared jobs.
struct State {
    dead: bool,
    oldest: u64,
    next_to_run: u64,
    next_seqno: u64,
    credits_in_use: u32,
    stats: JobQueueStats,
}

/// Counters of a [`JobQueue`].
///
/// `submitted == completed + errored + timed_out + cancelled + in_flight + pending` always
/// holds.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::Fence;
/// use kernel::drm::jobqueue::{JobQueue, JobQueueDriver, TimeoutAction};
/// use kernel::time::Delta;
///
/// struct Ring;
/// impl JobQueueDriver for Ring {
///     type Job = ();
///     fn run(&self, _job: (), _seqno: u64, _done: &Fence) {}
///     fn timed_out(&self, _seqno: u64) -> TimeoutAction {
///         TimeoutAction::Dead
///     }
/// }
///
/// let queue = JobQueue::new(Ring, c"example", c"ring2", 1, Delta::from_millis(500))?;
/// let first = queue.prepare((), 1)?.submit();
/// let second = queue.prepare((), 1)?.submit();
/// queue.kill();
/// assert_eq!(first.status(), Some(Err(ECANCELED)));
/// assert_eq!(second.status(), Some(Err(ECANCELED)));
/// let s = queue.stats();
/// assert_eq!((s.submitted, s.cancelled, s.in_flight, s.pending), (2, 2, 0, 0));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobQueueStats {
    /// Jobs submitted.
    pub submitted: u64,
    /// Jobs whose done fence signalled without error.
    pub completed: u64,
    /// Jobs whose done fence signalled with an error other than the two below (a dependency
    /// error, a hardware error reported by the driver, or a dead queue).
    pub errored: u64,
    /// Jobs whose done fence signalled with `-ETIMEDOUT`.
    pub timed_out: u64,
    /// Jobs whose done fence signalled with `-ECANCELED` (teardown, or lost in a ring reset).
    pub cancelled: u64,
    /// Jobs taken from the pending set whose fence has not signalled yet.
    pub in_flight: u64,
    /// Submitted jobs not started yet.
    pub pending: u64,
    /// Credits held by running jobs.
    pub credits_in_use: u32,
}

/// Sums counters, for example of several queues or of a queue's successive instances.
impl core::ops::AddAssign for JobQueueStats {
    fn add_assign(&mut self, o: Self) {
        self.submitted += o.submitted;
        self.completed += o.completed;
        self.errored += o.errored;
        self.timed_out += o.timed_out;
        self.cancelled += o.cancelled;
        self.in_flight += o.in_flight;
        self.pending += o.pending;
        self.credits_in_use += o.credits_in_use;
    }
}

impl JobQueueStats {
    fn count(&mut self, res: Result) {
        match res {
            Ok(()) => self.completed += 1,
            Err(e) if e == ETIMEDOUT => self.timed_out += 1,
            Err(e) if e == ECANCELED => self.cancelled += 1,
            Err(_) => self.errored += 1,
        }
    }
}

/// Reservation bookkeeping, protected by `Inner::reservations`.
struct Reservations {
    /// One past the highest reserved seqno.
    end: u64,
}

#[pin_data]
struct Inner<D: JobQueueDriver> {
    driver: D,
    ctx: Arc<FenceCtx>,
    capacity: u32,
    timeout: Delta,
    #[pin]
    state: SpinLockIrq<State>,
    /// Serialises signalling, so that done fences signal in seqno order even when completion,
    /// timeout and teardown race.
    #[pin]
    signal_lock: SpinLockIrq<()>,
    #[pin]
    reservations: Mutex<Reservations>,
    /// Whether work items may still be queued. Closed (under this lock) by [`JobQueue`]'s
    /// drop before it cancels them, so that no work item is queued afterwards and none can
    /// end up dropping the last reference to the queue (and its workqueue) from inside it.
    #[pin]
    work_open: SpinLockIrq<bool>,
    #[pin]
    pending: XArray<Pin<KBox<JobNode<D>>>>,
    #[pin]
    inflight: XArray<DriverFence<JobMeta>>,
    #[pin]
    run_work: Work<Inner<D>, 0>,
    #[pin]
    timeout_work: DelayedWork<Inner<D>, 1>,
    wq: OwnedQueue,
}

impl_has_work! {
    impl{D: JobQueueDriver} HasWork<Inner<D>, 0> for Inner<D> { self.run_work }
}

impl_has_delayed_work! {
    impl{D: JobQueueDriver} HasDelayedWork<Inner<D>, 1> for Inner<D> { self.timeout_work }
}

impl<D: JobQueueDriver> WorkItem<0> for Inner<D> {
    type Pointer = Arc<Inner<D>>;

    fn run(this: Arc<Inner<D>>) {
        this.run_ready();
    }
}

impl<D: JobQueueDriver> WorkItem<1> for Inner<D> {
    type Pointer = Arc<Inner<D>>;

    fn run(this: Arc<Inner<D>>) {
        this.handle_timeout();
    }
}

/// What to do with the in-flight job at the front when draining.
enum Drain {
    /// Signal it with this result and go on.
    Signal(Result),
    /// Leave it (and everything after it) in flight.
    Stop,
}

impl<D: JobQueueDriver> Inner<D> {
    /// Queues the run work. Callable from any context where a `spinlock_t` may be taken.
    fn kick(self: ArcBorrow<'_, Self>) {
        let open = self.work_open.lock();
        if *open {
            let arc: Arc<Self> = self.into();
            // If it is already queued, the clone is dropped again (not the last reference:
            // `self` is borrowed from another one).
            let _ = self.wq.enqueue::<Arc<Self>, 0>(arc);
        }
    }

    fn arm_timeout(self: ArcBorrow<'_, Self>, after: Delta) {
        let ms = after.as_millis_ceil().clamp(1, i64::from(u32::MAX)) as u32;
        let open = self.work_open.lock();
        if *open {
            let arc: Arc<Self> = self.into();
            let _ = self
                .wq
                .enqueue_delayed::<Arc<Self>, 1>(arc, msecs_to_jiffies(ms));
        }
    }

    /// Signals in-flight jobs from the front, in seqno order, as `decide` says.
    ///
    /// Callable from any context where a `spinlock_t` may be taken (see [`JobQueue::complete`]).
    /// Returns whether anything was signalled.
    fn drain(&self, mut decide: impl FnMut(u64, Option<Error>) -> Drain) -> bool {
        let _section = SignallingSection::begin();
        let _order = self.signal_lock.lock();
        let mut any = false;
        loop {
            let (fence, res) = {
                let mut st = self.state.lock();
                let idx = st.oldest;
                if idx >= st.next_to_run {
                    break;
                }
                let mut xa = self.inflight.lock();
                let Some(entry) = xa.get(idx as usize) else {
                    // A hole (a job whose fence was already signalled on an error path):
                    // nothing to signal.
                    st.oldest = idx + 1;
                    continue;
                };
                let skipped = entry.skipped.load(Relaxed);
                let skipped = (skipped != 0).then(|| Error::from_errno(skipped));
                let credits = entry.credits;
                let res = match decide(idx, skipped) {
                    Drain::Signal(res) => res,
                    Drain::Stop => break,
                };
                let Some(fence) = xa.remove(idx as usize) else {
                    break;
                };
                drop(xa);
                st.oldest = idx + 1;
                if skipped.is_none() {
                    st.credits_in_use -= credits;
                }
                st.stats.in_flight -= 1;
                if skipped.is_some() {
                    // Not run because a dependency failed, whatever the errno.
                    st.stats.errored += 1;
                } else {
                    st.stats.count(res);
                }
                (fence, res)
            };
            // Outside the state lock: callbacks on the fence may do anything that is allowed
            // in a fence callback, including looking at this queue's counters.
            let _ = fence.signal(res);
            any = true;
        }
        any
    }

    /// Checks the dependencies of the head job, arming the callback on the first unsignalled
    /// one. Returns `true` when all have signalled (or one failed).
    ///
    /// Called with the state lock held, in process context.
    fn poll_deps(&self, mut node: Pin<&mut JobNode<D>>) -> bool {
        // SAFETY: We do not move out of the pinned node; only `cb` is pinned, and it stays put.
        let node = unsafe { node.as_mut().get_unchecked_mut() };
        let cb = node.cb();
        while node.next_dep < node.deps.len() {
            let dep = &node.deps[node.next_dep];
            if node.cb_armed {
                if !dep.is_signaled() {
                    return false;
                }
                // The dependency signalled; its callback list is being (or has been) walked by
                // the signaller under the fence lock. Removing takes that lock, so afterwards
                // the signaller is done with `cb` and it may be registered elsewhere.
                // SAFETY: `cb` was registered on `dep` and both are valid.
                unsafe { bindings::dma_fence_remove_callback(dep.as_raw(), cb) };
                node.cb_armed = false;
            }
            match dep.status() {
                Some(Ok(())) => node.next_dep += 1,
                Some(Err(e)) => {
                    node.dep_error.get_or_insert(e);
                    node.next_dep = node.deps.len();
                }
                None => {
                    // SAFETY: `cb` lives in the pinned node, which stays in the pending set (and
                    // thus alive) until the callback is removed by `poll_deps` or teardown.
                    let ret = unsafe {
                        bindings::dma_fence_add_callback(
                            dep.as_raw(),
                            cb,
                            Some(Self::dependency_signalled),
                        )
                    };
                    if ret == 0 {
                        node.cb_armed = true;
                        return false;
                    }
                    // `-ENOENT`: it signalled meanwhile; look at its status again.
                }
            }
        }
        true
    }

    /// The dependency callback: queues the run work.
    ///
    /// # Safety
    ///
    /// `cb` must be the `cb` field of a live `DepWait<D>` whose `queue` is alive.
    unsafe extern "C" fn dependency_signalled(
        _fence: *mut bindings::dma_fence,
        cb: *mut bindings::dma_fence_cb,
    ) {
        // `cb` is the first field of the `repr(C)` `DepWait<D>`.
        let wait = cb.cast::<DepWait<D>>();
        // SAFETY: By the safety requirements the `DepWait` is alive; `queue` is written once,
        // at prepare, and only read afterwards.
        let queue = unsafe { (*wait).queue };
        // SAFETY: Teardown removes the callback before the queue can go away, so the `Arc` that
        // owns the queue is alive.
        let queue = unsafe { ArcBorrow::from_raw(queue) };
        queue.kick();
    }

    /// The run work: starts pending jobs in order while dependencies and credits allow.
    fn run_ready(self: Arc<Self>) {
        loop {
            // Per job, so that dropping a job that was not run (and its node) happens outside.
            let section = SignallingSection::begin();
            let mut st = self.state.lock();
            if st.dead {
                return;
            }
            let head = st.next_to_run;
            if head == st.next_seqno {
                return;
            }
            let mut pending = self.pending.lock();
            let Some(node) = pending.get_mut(head as usize) else {
                // A hole (see `PreparedJob::submit`): skip it.
                st.next_to_run = head + 1;
                if st.oldest == head {
                    st.oldest = head + 1;
                }
                continue;
            };
            if !self.poll_deps(node) {
                return;
            }
            let Some(node) = pending.get(head as usize) else {
                return;
            };
            let skip = node.dep_error;
            if skip.is_none() && node.credits > self.capacity - st.credits_in_use {
                // Wait for completions to return credits; they kick us.
                return;
            }
            let Some(mut node) = pending.remove(head as usize) else {
                return;
            };
            drop(pending);
            // SAFETY: The node left the pending set and its callback is not registered (all
            // dependencies signalled), so nothing else refers to it; we do not move `cb`.
            let n = unsafe { node.as_mut().get_unchecked_mut() };
            let Some(fence) = n.fence.take() else {
                return;
            };
            let done = fence.fence();
            match skip {
                Some(e) => fence.data().skipped.store(e.to_errno(), Relaxed),
                None => {
                    st.credits_in_use += n.credits;
                    let now = Instant::<Monotonic>::now().as_nanos();
                    fence.data().started.store(now, Relaxed);
                }
            }
            st.next_to_run = head + 1;
            st.stats.pending -= 1;
            st.stats.in_flight += 1;
            let stored = self.inflight.lock().store(head as usize, fence, GFP_NOWAIT);
            if let Err(e) = stored {
                // Cannot happen: the slot was reserved at prepare. Never lose a fence (this
                // leaves a hole, which the other paths skip).
                crate::warn_on!(true);
                if skip.is_none() {
                    st.credits_in_use -= n.credits;
                }
                st.stats.in_flight -= 1;
                st.stats.errored += 1;
                drop(st);
                let _ = e.value.signal(Err(ENOMEM));
                continue;
            }
            let job = n.job.take();
            drop(st);
            let not_run = match (skip, job) {
                (None, Some(job)) => {
                    self.driver.run(job, head, &done);
                    self.as_arc_borrow().arm_timeout(self.timeout);
                    None
                }
                (_, job) => {
                    // Not run: its fence signals with the dependency error, in order.
                    self.drain(|_, skipped| match skipped {
                        Some(e) => Drain::Signal(Err(e)),
                        None => Drain::Stop,
                    });
                    job
                }
            };
            drop(section);
            // Dropping the node puts its dependency references; dropping a job that did not
            // run may do whatever the driver's job does on drop.
            drop(not_run);
            drop(node);
        }
    }

    /// The timeout work.
    fn handle_timeout(self: Arc<Self>) {
        let section = SignallingSection::begin();
        let now = Instant::<Monotonic>::now().as_nanos();
        let (seqno, left) = {
            let st = self.state.lock();
            if st.dead {
                return;
            }
            let xa = self.inflight.lock();
            let mut found = None;
            for idx in st.oldest..st.next_to_run {
                if let Some(e) = xa.get(idx as usize) {
                    if e.skipped.load(Relaxed) == 0 {
                        found = Some((idx, e.started.load(Relaxed)));
                        break;
                    }
                }
            }
            let Some((seqno, started)) = found else {
                // Idle: the next job to run re-arms the timeout.
                return;
            };
            (seqno, self.timeout.as_nanos() - (now - started))
        };
        if left > 0 {
            self.as_arc_borrow().arm_timeout(Delta::from_nanos(left));
            return;
        }
        match self.driver.timed_out(seqno) {
            TimeoutAction::Progressing => {
                let now = Instant::<Monotonic>::now().as_nanos();
                let st = self.state.lock();
                let xa = self.inflight.lock();
                if let Some(e) = xa.get(seqno as usize) {
                    e.started.store(now, Relaxed);
                }
                // Inner lock first: the XArray lock was taken with interrupts already off.
                drop(xa);
                drop(st);
                self.as_arc_borrow().arm_timeout(self.timeout);
            }
            TimeoutAction::RingReset => {
                self.drain(|idx, skipped| {
                    Drain::Signal(Err(match skipped {
                        Some(e) => e,
                        None if idx == seqno => ETIMEDOUT,
                        None => ECANCELED,
                    }))
                });
                self.as_arc_borrow().kick();
            }
            TimeoutAction::Dead => {
                // `kill` has its own section, and drops the cancelled jobs outside of it.
                drop(section);
                self.kill(Some(seqno));
            }
        }
    }

    /// Marks the queue dead and signals every unsignalled done fence, in seqno order.
    ///
    /// Never waits for the hardware. Does not cancel the queue's work items (it may run in
    /// one); [`JobQueue`]'s drop does that.
    fn kill(&self, timed_out: Option<u64>) {
        // The pending jobs whose fences this call signals; their nodes are dropped at the
        // end, outside the locks and the signalling section (dropping a driver job may sleep).
        let (first_pending, end) = {
            let _section = SignallingSection::begin();
            // Hold the signalling order lock across both phases: in-flight fences first, then
            // the pending ones, all in seqno order, with no completion interleaving. Submits
            // take it too, so none signals a later fence (with `-ENODEV`) before we are done.
            let _order = self.signal_lock.lock();
            let (first_pending, end) = {
                let mut st = self.state.lock();
                st.dead = true;
                (st.next_to_run, st.next_seqno)
            };
            loop {
                let (fence, res) = {
                    let mut st = self.state.lock();
                    let idx = st.oldest;
                    if idx >= st.next_to_run {
                        break;
                    }
                    st.oldest = idx + 1;
                    let Some(fence) = self.inflight.lock().remove(idx as usize) else {
                        // A hole: nothing to signal.
                        continue;
                    };
                    let skipped = fence.data().skipped.load(Relaxed);
                    let res = if skipped != 0 {
                        st.stats.errored += 1;
                        Err(Error::from_errno(skipped))
                    } else {
                        st.credits_in_use -= fence.data().credits;
                        let res = if Some(idx) == timed_out {
                            Err(ETIMEDOUT)
                        } else {
                            Err(ECANCELED)
                        };
                        st.stats.count(res);
                        res
                    };
                    st.stats.in_flight -= 1;
                    (fence, res)
                };
                let _ = fence.signal(res);
            }
            loop {
                let mut st = self.state.lock();
                let idx = st.next_to_run;
                if idx >= st.next_seqno {
                    break;
                }
                st.next_to_run = idx + 1;
                st.oldest = idx + 1;
                let mut pending = self.pending.lock();
                let Some(mut node) = pending.get_mut(idx as usize) else {
                    // A hole: a job submitted after the queue died, already signalled.
                    continue;
                };
                // SAFETY: We do not move out of the pinned node.
                let n = unsafe { node.as_mut().get_unchecked_mut() };
                let fence = n.fence.take();
                let armed = n.cb_armed.then(|| (n.deps[n.next_dep].as_raw(), n.cb()));
                n.cb_armed = false;
                st.stats.pending -= 1;
                st.stats.count(Err(ECANCELED));
                drop(pending);
                drop(st);
                if let Some((dep, cb)) = armed {
                    // Synchronises with a concurrently running callback (it only kicks the
                    // work, which finds the queue dead).
                    // SAFETY: `cb` is registered on `dep`, which the node keeps alive; the
                    // node stays in the pending set (and in place) until after this call.
                    unsafe { bindings::dma_fence_remove_callback(dep, cb) };
                }
                if let Some(fence) = fence {
                    let _ = fence.signal(Err(ECANCELED));
                }
            }
            (first_pending, end)
        };
        // Outside the signalling section: drop the cancelled jobs.
        for idx in first_pending..end {
            let node = self.pending.lock().remove(idx as usize);
            drop(node);
        }
    }
}

/// A job queue for one ring. See the [module documentation](self).
///
/// Dropping it tears the queue down: see [`JobQueue::kill`]. It must not be dropped from
/// [`JobQueueDriver`] callbacks.
pub struct JobQueue<D: JobQueueDriver> {
    inner: Arc<Inner<D>>,
}

impl<D: JobQueueDriver> JobQueue<D> {
    /// Creates a queue for a ring with `capacity` credits; a running job that has not finished
    /// after `timeout` is reported to [`JobQueueDriver::timed_out`].
    ///
    /// `driver_name` and `name` name the queue's fence timeline and its workqueue.
    pub fn new(
        driver: D,
        driver_name: &CStr,
        name: &CStr,
        capacity: u32,
        timeout: Delta,
    ) -> Result<Self> {
        if capacity == 0 || timeout <= Delta::ZERO {
            return Err(EINVAL);
        }
        let ctx = FenceCtx::new(driver_name, name)?;
        let wq = OwnedQueue::new(
            name,
            workqueue::flags::MEM_RECLAIM | workqueue::flags::HIGHPRI | workqueue::flags::UNBOUND,
            1,
        )?;
        let (state_name, state_key) = classes::state();
        let (signal_name, signal_key) = classes::signal();
        let (resv_name, resv_key) = classes::reservations();
        let (open_name, open_key) = classes::work_open();
        let (run_name, run_key) = classes::run_work();
        let (timeout_name, timeout_key) = classes::timeout_work();
        let (timer_name, timer_key) = classes::timeout_timer();
        let state = State {
            dead: false,
            oldest: 1,
            next_to_run: 1,
            next_seqno: 1,
            credits_in_use: 0,
            stats: JobQueueStats::default(),
        };
        let inner = Arc::pin_init(
            pin_init!(Inner {
                driver,
                ctx,
                capacity,
                timeout,
                state <- SpinLockIrq::new(state, state_name, state_key),
                signal_lock <- SpinLockIrq::new((), signal_name, signal_key),
                reservations <- Mutex::new(Reservations { end: 1 }, resv_name, resv_key),
                work_open <- SpinLockIrq::new(true, open_name, open_key),
                pending <- XArray::new_irq_safe(AllocKind::Alloc),
                inflight <- XArray::new_irq_safe(AllocKind::Alloc),
                run_work <- Work::new(run_name, run_key),
                timeout_work <- DelayedWork::new(timeout_name, timeout_key, timer_name, timer_key),
                wq,
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { inner })
    }

    /// Prepares a job costing `credits` of the ring's capacity: the fallible phase.
    ///
    /// Allocates everything the job will need until its done fence signals. Fails with
    /// `EINVAL` if `credits` is zero or more than the capacity, `ENODEV` if the queue is dead,
    /// `ENOMEM` if out of memory. May sleep.
    pub fn prepare(&self, job: D::Job, credits: u32) -> Result<PreparedJob<D>> {
        if credits == 0 || credits > self.inner.capacity {
            return Err(EINVAL);
        }
        if self.inner.state.lock().dead {
            return Err(ENODEV);
        }
        let alloc = DriverFenceAllocation::new(
            JobMeta {
                credits,
                started: Atomic::new(0),
                skipped: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let node = KBox::pin_init(
            pin_init!(JobNode::<D> {
                wait: Opaque::new(DepWait {
                    // SAFETY: All-zero is a valid (unlinked, no function) `dma_fence_cb`;
                    // `dma_fence_add_callback()` initialises it before use.
                    cb: unsafe { core::mem::zeroed() },
                    queue: Arc::as_ptr(&self.inner),
                }),
                job: Some(job),
                alloc: Some(alloc),
                fence: None,
                deps: KVec::new(),
                next_dep: 0,
                cb_armed: false,
                dep_error: None,
                credits,
            }),
            GFP_KERNEL,
        )?;
        // Reserve the next seqno slot in both sets, so that submit and run never allocate.
        {
            let mut r = self.inner.reservations.lock();
            let idx = r.end as usize;
            self.inner.pending.reserve(idx, GFP_KERNEL)?;
            if let Err(e) = self.inner.inflight.reserve(idx, GFP_KERNEL) {
                self.inner.pending.lock().release(idx);
                return Err(e);
            }
            r.end += 1;
        }
        Ok(PreparedJob {
            node: ManuallyDrop::new(node),
            queue: self.inner.clone(),
        })
    }

    /// Reports that the ring finished the jobs up to and including `seqno`; `result` is the
    /// outcome of job `seqno` itself (the earlier ones succeeded).
    ///
    /// Signals their done fences in order, returns their credits and starts waiting jobs.
    /// Reports for jobs that were already signalled (after a reset, a timeout or teardown) are
    /// ignored.
    ///
    /// # Context
    ///
    /// Callable wherever a `spinlock_t` may be taken: process and softirq context, a threaded
    /// interrupt handler, an ordinary (`request_irq()`) interrupt handler, and the callback of an
    /// hrtimer in a non-hard mode (for example [`RelativeMode`]). It signals dma_fences, and
    /// `dma_fence` locks (like the queue's own) are `spinlock_t`, which sleep on `PREEMPT_RT`.
    /// So it must **not** be called
    ///
    /// - with a `raw_spinlock_t` held or from `IRQF_NO_THREAD`/NMI context,
    /// - from the callback of a hard-mode hrtimer ([`RelativeHardMode`] and the other `*HardMode`
    ///   types), which runs in hard interrupt context even on `PREEMPT_RT`,
    /// - from a dma-fence callback (it signals fences itself, and fence locks nest badly).
    ///
    /// On kernels without `PREEMPT_RT`, ordinary interrupt handlers and non-hard hrtimers run in
    /// hard interrupt context, so this is a hard-IRQ-safe path there. Lockdep's wait-context
    /// check (`CONFIG_PROVE_RAW_LOCK_NESTING`) reports a call from a forbidden context on any
    /// kernel.
    ///
    /// [`RelativeMode`]: crate::time::hrtimer::RelativeMode
    /// [`RelativeHardMode`]: crate::time::hrtimer::RelativeHardMode
    pub fn complete(&self, seqno: u64, result: Result) {
        let signalled = self.inner.drain(|idx, skipped| match skipped {
            Some(e) => Drain::Signal(Err(e)),
            None if idx < seqno => Drain::Signal(Ok(())),
            None if idx == seqno => Drain::Signal(result),
            None => Drain::Stop,
        });
        // Returned credits may let a waiting job run. With nothing waiting there is nothing
        // to start, and no reason to bounce through the workqueue.
        if signalled && self.inner.state.lock().stats.pending > 0 {
            self.inner.as_arc_borrow().kick();
        }
    }

    /// Kills the queue: later submissions fail with `ENODEV`, and every unsignalled done fence
    /// signals with `-ECANCELED`, in seqno order, now. Never waits for the hardware; late
    /// completions are ignored.
    pub fn kill(&self) {
        self.inner.kill(None);
    }

    /// Returns a snapshot of the queue's counters.
    pub fn stats(&self) -> JobQueueStats {
        let st = self.inner.state.lock();
        let mut s = st.stats;
        s.credits_in_use = st.credits_in_use;
        s
    }

    /// Returns the fence context of the queue's done fences.
    pub fn fence_context(&self) -> u64 {
        self.inner.ctx.context()
    }

    /// Returns the ring's capacity in credits.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }

    /// Returns the driver part of the queue.
    pub fn driver(&self) -> &D {
        &self.inner.driver
    }
}

impl<D: JobQueueDriver> Drop for JobQueue<D> {
    fn drop(&mut self) {
        self.inner.kill(None);
        // From now on nothing queues the work items (late completions, dependency callbacks
        // and submissions of prepared jobs included); then wait for the queued or running
        // ones.
        *self.inner.work_open.lock() = false;
        DelayedWork::<Inner<D>, 1>::cancel_sync(&self.inner);
        Work::<Inner<D>, 0>::cancel_sync(&self.inner);
    }
}

/// A prepared job: everything allocated, not yet visible to anyone.
///
/// Dropping it instead of submitting gives its reservations back (and may sleep).
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{DriverFenceAllocation, Fence, FenceCtx};
/// use kernel::drm::jobqueue::{JobQueue, JobQueueDriver, TimeoutAction};
/// use kernel::time::Delta;
///
/// struct Ring;
/// impl JobQueueDriver for Ring {
///     type Job = ();
///     fn run(&self, _job: (), _seqno: u64, _done: &Fence) {}
///     fn timed_out(&self, _seqno: u64) -> TimeoutAction {
///         TimeoutAction::Dead
///     }
/// }
///
/// let queue = JobQueue::new(Ring, c"example", c"ring1", 4, Delta::from_millis(500))?;
/// let other = FenceCtx::new(c"other-driver", c"other-ring")?;
/// let a = other.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let b = other.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
///
/// let mut job = queue.prepare((), 1)?;
/// job.add_dependency(a.fence())?;
/// job.add_dependency(b.fence())?; // Same timeline, later: replaces `a`.
/// job.add_dependency(Fence::stub())?; // Signalled: dropped.
/// assert_eq!(job.dependency_count(), 1);
///
/// // Changed our mind: nothing was published, nothing leaks.
/// drop(job);
/// assert_eq!(queue.stats().submitted, 0);
/// let _ = a.signal(Ok(()));
/// let _ = b.signal(Ok(()));
/// # Ok::<(), Error>(())
/// ```
pub struct PreparedJob<D: JobQueueDriver> {
    node: ManuallyDrop<Pin<KBox<JobNode<D>>>>,
    queue: Arc<Inner<D>>,
}

impl<D: JobQueueDriver> PreparedJob<D> {
    fn node_mut(&mut self) -> &mut JobNode<D> {
        // SAFETY: The node is not registered anywhere yet; we never move `cb`.
        unsafe { self.node.as_mut().get_unchecked_mut() }
    }

    /// Adds a dependency: the job runs only after `fence` signalled.
    ///
    /// Any fence counts, including foreign C fences. Fences of one context are deduplicated,
    /// keeping the latest. A fence that already signalled is dropped, unless it signalled with
    /// an error, which the job's done fence will then carry (the job is not run).
    ///
    /// Deduplication relies on a timeline signalling in order, which says nothing about
    /// errors: the error of an earlier fence of a timeline is only seen if that fence had
    /// signalled when it was added; otherwise only the latest fence's status counts (as with
    /// `drm_sched`, which keeps only the latest fence per context too).
    pub fn add_dependency(&mut self, fence: ARef<Fence>) -> Result {
        let node = self.node_mut();
        // The lock-free check first: `status()` takes the fence's lock.
        if fence.is_signaled() {
            if let Some(Err(e)) = fence.status() {
                node.dep_error.get_or_insert(e);
            }
            return Ok(());
        }
        let ctx = fence.context();
        if let Some(old) = node.deps.iter_mut().find(|d| d.context() == ctx) {
            if fence.is_later(old) {
                *old = fence;
            }
            return Ok(());
        }
        node.deps.push(fence, GFP_KERNEL)?;
        Ok(())
    }

    /// Returns how many dependencies the job waits for, after deduplication.
    pub fn dependency_count(&self) -> usize {
        self.node.deps.len()
    }

    /// Submits the job: the point of no return. Infallible; never allocates.
    ///
    /// Returns the job's done fence, which consumers can wait on but not signal. If the queue
    /// was killed since [`JobQueue::prepare`], the fence is already signalled with `-ENODEV`.
    pub fn submit(self) -> ARef<Fence> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; we take both fields out once.
        let mut node = ManuallyDrop::into_inner(unsafe { ptr::read(&this.node) });
        // SAFETY: As above.
        let queue = unsafe { ptr::read(&this.queue) };
        let _ = &mut this;
        // SAFETY: The node is not registered anywhere; we do not move `cb`.
        let n = unsafe { node.as_mut().get_unchecked_mut() };
        let Some(alloc) = n.alloc.take() else {
            // Cannot happen: `alloc` is only taken here.
            return Fence::stub();
        };

        // The signalling order lock first (as everywhere): if the queue died, `kill` has
        // signalled every older fence before we signal this one.
        let order = queue.signal_lock.lock();
        let mut st = queue.state.lock();
        // Creating the fence under the lock makes seqno order the submission order. It takes
        // the seqno `st.next_seqno`, whose slots were reserved at prepare.
        let fence = queue.ctx.new_fence(alloc);
        let seqno = fence.as_fence().seqno();
        let done = fence.fence();
        st.next_seqno = seqno + 1;
        st.stats.submitted += 1;
        if st.dead {
            // Leave `oldest`/`next_to_run` alone: `kill` may still be flushing older jobs.
            // This seqno stays a hole that `kill`, `run_ready` and `drain` skip.
            st.stats.count(Err(ENODEV));
            drop(st);
            let _ = fence.signal(Err(ENODEV));
            drop(order);
            return done;
        }
        n.fence = Some(fence);
        let ret = queue.pending.lock().store(seqno as usize, node, GFP_NOWAIT);
        match ret {
            Ok(_) => {
                st.stats.pending += 1;
                drop(st);
                drop(order);
                queue.as_arc_borrow().kick();
            }
            Err(mut e) => {
                // Cannot happen: the slot was reserved at prepare. Never lose a fence.
                crate::warn_on!(true);
                st.stats.count(Err(ENOMEM));
                drop(st);
                drop(order);
                // SAFETY: Not registered anywhere; we do not move `cb`.
                let n = unsafe { e.value.as_mut().get_unchecked_mut() };
                if let Some(f) = n.fence.take() {
                    let _ = f.signal(Err(ENOMEM));
                }
            }
        }
        done
    }
}

impl<D: JobQueueDriver> Drop for PreparedJob<D> {
    fn drop(&mut self) {
        // Give back one reservation: the highest, which no submission can be using (see
        // `State`). May sleep.
        {
            let mut r = self.queue.reservations.lock();
            r.end -= 1;
            let idx = r.end as usize;
            self.queue.pending.lock().release(idx);
            self.queue.inflight.lock().release(idx);
        }
        // SAFETY: Dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.node) };
    }
}
