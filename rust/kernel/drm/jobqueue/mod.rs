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
//! A job that is ready when it is submitted is handed to the ring at once, from
//! [`PreparedJob::submit`] (the direct run). Otherwise the queue does its work in two work items,
//! inside fence signalling critical sections, on workqueues the driver shares between its queues
//! ([`JobQueueWorkqueues`], two [`FenceWorkqueue`]s): the submit work item waits for dependencies,
//! starts jobs ([`JobQueueDriver::run`]) and stops the ring at teardown ([`JobQueueDriver::stop`]);
//! the timeout work item handles timeouts ([`JobQueueDriver::timed_out`]). The driver's methods are
//! only called with the queue's driver lock held, so they never overlap. A queue creates no
//! workqueue and no thread. Jobs start in submission order, once their dependencies have signalled
//! and the ring has enough free credits. The driver reports completion with [`JobQueue::complete`],
//! for example from its interrupt handler (see its context rule); done fences signal strictly in
//! submission (seqno) order, and only for jobs handed to `run()`.
//!
//! A done fence never signals before the job's dependencies did, nor while the ring may still
//! touch the job: teardown ([`JobQueue::kill`], or dropping the queue) first has the driver
//! stop the ring, then cancels the jobs it was running, and cancels each waiting job once its
//! dependencies have signalled. Done fences outlive the queue and the driver module.
//!
//! # Examples
//!
//! ```
//! use kernel::dma_buf::Fence;
//! use kernel::drm::jobqueue::{JobQueue, JobQueueDriver, JobQueueWorkqueues, TimeoutAction};
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
//!
//!     fn stop(&self) {}
//! }
//!
//! // Shared by all the queues of the device (or of one reset domain).
//! let wqs = JobQueueWorkqueues::new(c"example")?;
//! let queue = JobQueue::new(Ring, c"example", c"ring0", 8, Delta::from_millis(500), &wqs)?;
//! let mut job = queue.prepare(7, 1)?;
//! job.add_dependency(Fence::stub())?; // Already signalled: dropped.
//! let done = job.submit();
//! // The interrupt handler reports the ring's progress:
//! while queue.stats().in_flight == 0 {
//!     kernel::time::delay::fsleep(Delta::from_millis(1));
//! }
//! queue.complete(done.seqno(), Ok(()));
//! done.wait(false)?;
//! assert_eq!(done.status(), Some(Ok(())));
//! # Ok::<(), Error>(())
//! ```

use crate::{
    dma_buf::{
        Fence,
        FenceCtx,
        FenceDeadline,
        FenceWorkqueue,
        SignallingSection,
        SignallingWorkItem, //
    },
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
        Completion,
        Mutex,
        SpinLockIrq, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::{
        impl_has_delayed_work,
        impl_has_work,
        DelayedWork,
        Work, //
    },
};
use core::mem::ManuallyDrop;

mod deps;
mod job;
mod run;
mod signal;
mod stats;
mod timeout;
mod trace;

pub use job::PreparedJob;
pub use stats::{
    JobQueueStats,
    JobTimes, //
};

use job::{
    InFlight,
    JobData,
    NodeBox,
    Pending, //
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
        driver => c"JobQueue::driver_lock",
        work => c"JobQueue::work",
        timeout_work => c"JobQueue::timeout_work",
        timeout_timer => c"JobQueue::timeout_work_timer",
        deadline => c"JobQueue::deadline",
    }
}

/// What the driver decided about a job that exceeded the queue's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    /// The job is still making progress: give it another full timeout.
    Progressing,
    /// The driver reset the ring, which no longer touches any job it was given: the timed-out
    /// job's fence gets `-ETIMEDOUT`, the other jobs on the ring get `-ECANCELED`, and the
    /// queue goes on with the jobs not yet run.
    RingReset,
    /// The driver reset the ring and will run again, on its own, every job it was given except
    /// `guilty`, which gets `-ETIMEDOUT` (in seqno order, once the jobs before it signalled).
    ///
    /// The other jobs stay in flight: their done fences have not signalled, so nothing is
    /// re-initialised (unlike the deprecated `drm_sched_resubmit_jobs()`), and they signal
    /// when the driver reports them with [`JobQueue::complete`] after the replay, as usual.
    /// The job data stays with the driver, which still has it from [`JobQueueDriver::run`].
    /// The oldest job left gets a full timeout from now. `guilty` must be a job given to
    /// the ring that has not signalled; otherwise the queue warns and handles this as
    /// [`TimeoutAction::RingReset`]. The driver may replay the jobs from `timed_out()`
    /// itself: completion reports that arrive while it executes take effect when it
    /// returns, after `guilty` was marked, so a replayed job reported done never signals
    /// the guilty one.
    ResetAndReplay {
        /// The seqno of the job that caused the hang.
        guilty: u64,
    },
    /// The ring is unusable: the queue dies as if killed ([`JobQueue::kill`]), except that the
    /// timed-out job's fence gets `-ETIMEDOUT`. Later submissions fail with `-ENODEV`.
    Dead,
}

/// The driver side of a [`JobQueue`]: puts jobs on the ring, handles timeouts, stops the ring.
///
/// # Context rules
///
/// All three methods are called from the queue's work items (`run()` and `stop()` from the submit
/// work item, `timed_out()` from the timeout work item) or, for `run()`, from
/// [`PreparedJob::submit`] in the submitter's context (the direct run, with whatever locks the
/// submitter holds), in process context, one at a time (with the queue's driver lock held: never
/// concurrently with each other, for one queue), inside a dma-fence signalling critical section
/// ([`SignallingSection`]): the fences of the queue's jobs wait
/// for them. On an ordered timeout workqueue shared by several queues, the `timed_out()`
/// calls of all those queues are serialised too. They may sleep, but must not
///
/// - allocate memory with reclaim (`GFP_KERNEL`), take a lock that is held anywhere while
///   allocating with reclaim, or wait for a dma-fence (lockdep reports each of these);
/// - take a lock that is held around [`JobQueue::complete`] (the queue signals fences from
///   these methods too);
/// - call [`JobQueue::flush`].
///
/// They may call [`JobQueue::complete`], [`JobQueue::stats`] and [`JobQueue::kill`] (which
/// then does not wait: the teardown follows when the method returns), and may drop the last
/// reference to the queue (its teardown is deferred).
pub trait JobQueueDriver: Send + Sync + 'static {
    /// The driver's job: what [`run`](Self::run) needs to put the work on the ring.
    ///
    /// A job the queue drops without running it (its dependency failed, or the queue was
    /// torn down) is dropped in process context, outside the queue's locks and outside any
    /// signalling section.
    type Job: Send + 'static;

    /// Puts `job` on the ring.
    ///
    /// Called once per job, in submission order, when the job's dependencies have signalled
    /// without error and the ring has room for its credits. When the ring has executed it, the
    /// driver calls [`JobQueue::complete`] with `seqno`; a report that arrives while `run()`
    /// is still executing takes effect when it returns. `done` is the job's done fence, not
    /// signalled yet.
    fn run(&self, job: Self::Job, seqno: u64, done: &Fence);

    /// The oldest running job, `seqno`, has been running for longer than the queue's timeout.
    ///
    /// The driver inspects the ring, resets it if needed, and says how to go on. For
    /// [`TimeoutAction::RingReset`] the ring must no longer touch any job it was given when
    /// this returns.
    fn timed_out(&self, seqno: u64) -> TimeoutAction;

    /// Stops the ring for good: when this returns, the ring no longer reads or writes the
    /// memory of any job it was given.
    ///
    /// Called exactly once, when the queue dies ([`JobQueue::kill`], dropping the queue, or
    /// [`TimeoutAction::Dead`]), and never followed by [`run`](Self::run) or
    /// [`timed_out`](Self::timed_out). Only once it has returned does the queue signal the
    /// fences of the jobs the ring was given (with `-ECANCELED`, unless they complete first):
    /// a signalled done fence tells every other driver that the job's memory is free. It must
    /// finish in bounded time, like every step on a fence's signalling path.
    fn stop(&self);

    /// A job that ran has signalled; `times` says when it was on the ring (for per-client
    /// usage statistics, for example). Called once per job that was given to
    /// [`run`](Self::run), after its done fence signalled, whatever its result; not in seqno
    /// order when completion reports race, and possibly while another method executes.
    /// The default does nothing.
    ///
    /// # Context
    ///
    /// Called on the signalling paths: from [`JobQueue::complete`] (so possibly in hard
    /// interrupt context) and from the queue's work items, inside a signalling section, with
    /// no queue lock held. It must not sleep, allocate, or call [`JobQueue::complete`].
    fn job_done(&self, times: &JobTimes) {
        let _ = times;
    }

    /// A waiter asked that the done fence of `seqno` signal by `deadline`
    /// (`dma_fence_set_deadline()`, for example a display driver's next vblank): the jobs up
    /// to `seqno` that the ring was given should finish by then. A hint, for clock boosting;
    /// the default ignores it. A deadline in the past means "as soon as possible".
    ///
    /// The queue forwards the deadline itself to the unsignalled dependency each waiting job
    /// up to `seqno` waits for, as drm_sched does. It calls this when the hint arrives while
    /// such jobs are on the ring, and after [`run`](Self::run) for each such job handed to
    /// the ring later; never after [`stop`](Self::stop).
    ///
    /// # Context
    ///
    /// The same as [`run`](Self::run): the submit work item or, right after a direct `run()`,
    /// the submitter; with the driver lock held, inside a signalling section.
    fn set_deadline(&self, seqno: u64, deadline: Instant<Monotonic>) {
        let _ = (seqno, deadline);
    }
}

/// Per-job metadata in the done fence ([`JobData`]).
struct JobMeta {
    /// Credits the job occupies while it runs.
    credits: u32,
    /// When the job got the ring (monotonic ns); restarted by `Progressing`, by progress of
    /// the ring and by `unpark()`: the start of its timeout. 0 while it is behind a job that
    /// was on the ring when it was handed (it starts when it reaches the front).
    started: Atomic<i64>,
    /// When the job was handed to an idle ring (monotonic ns), for the ring time; 0 if the
    /// ring held an earlier job then (the job gets the ring when that one leaves).
    ran_at: Atomic<i64>,
    /// Nonzero if the job will not run: the (negative) error its fence signals with.
    skipped: Atomic<i32>,
}

/// Where the queue is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Jobs run.
    Live,
    /// The queue was killed, dropped or declared dead, and its work item has not stopped the
    /// ring yet. No job is handed to `run()` any more.
    Dying,
    /// The ring was stopped ([`JobQueueDriver::stop`] returned).
    Stopped,
}

/// The first pending job, once the run path took it out of [`State::pending`] (to wait, or
/// when it handed the job before it to the ring): held by `Inner::driver_lock`.
type Head<D> = Option<NodeBox<D>>;

/// Mutable queue state, protected by `Inner::state`.
///
/// # Invariants
///
/// - `oldest <= handed <= next_to_run <= next_seqno`.
/// - The jobs `[oldest, next_to_run)` are in flight: their unsignalled done fences are in
///   `inflight`, in seqno order. [`JobQueue::complete`] and the other signalling paths only
///   signal the jobs `[oldest, handed)`.
/// - `[handed, next_to_run)` is empty, or is the one job whose `run()` is executing, and then
///   `running == Some(handed)`. `cold.late` is `None` unless `running` is `Some`.
/// - The jobs `[next_to_run, next_seqno)` are pending: the first one is in `pending` or held by
///   `Inner::driver_lock`, the others in `pending`, in seqno order.
/// - Once `phase` is not [`Phase::Live`], no job is handed to `run()` again, and jobs with a
///   seqno at or after `cold.dead_from` were submitted after the queue died.
/// - While `parked_since` is `Some`, no job is handed to `run()` and `timed_out()` is not
///   called.
/// - `cold.hold_from` is `Some` only while `timed_out()` executes; `cold.held` is `None` when
///   it is not.
/// - `credits_in_use` is the sum of the credits of the jobs in flight that were run, and
///   `stats.in_flight`/`stats.pending` count the jobs of the two ranges above.
struct State<D: JobQueueDriver> {
    phase: Phase,
    /// Since when the queue is parked ([`JobQueue::park`]), in monotonic ns: no job is handed
    /// to `run()` and no timeout is handled while this is `Some`.
    parked_since: Option<i64>,
    oldest: u64,
    handed: u64,
    running: Option<u64>,
    next_to_run: u64,
    next_seqno: u64,
    credits_in_use: u32,
    /// When the last job left the in-flight list (monotonic ns; it signalled, whether it ran
    /// or not): when the job behind it got the ring, for the ring time.
    last_finish: i64,
    stats: JobQueueStats,
    /// The pending jobs (all but the first, if `Inner::driver_lock` holds it).
    pending: Pending<D>,
    /// The done fences of the jobs in flight.
    inflight: InFlight<D>,
    /// What the per-job paths rarely touch, out of line: a queue of a device with thousands of
    /// them then fits a 512-byte slab object.
    cold: KBox<Cold>,
}

/// The rarely used part of [`State`], protected by `Inner::state` too.
struct Cold {
    dead_from: u64,
    /// The job that timed out when the driver declared the ring dead.
    timed_out: Option<u64>,
    /// A completion report for the `running` job that arrived during its `run()`.
    late: Option<Result>,
    /// The job `timed_out()` is executing for: reports are not applied to it or to later jobs
    /// until the driver's answer is (it may name any of them guilty), but held in `held`.
    hold_from: Option<u64>,
    /// The latest completion report held back while `hold_from` is `Some`.
    held: Option<(u64, Result)>,
    /// An error reported for a job before the one of a later report: applied when a report
    /// reaches that job.
    held_err: Option<(u64, Error)>,
    /// The last job that ran and signalled ([`JobQueue::last_job`]).
    last_job: Option<JobTimes>,
}

/// The queue, shared by its handle, prepared jobs, queued work items and an armed dependency
/// callback.
///
/// # Locking
///
/// Lock order, outermost first: `driver_lock` (a mutex, taken by the work items, by
/// [`JobQueue::park`], [`JobQueue::flush`] and [`JobQueue::shutdown`] and, with `try_lock`,
/// by the direct run of [`PreparedJob::submit`]),
/// `signal_lock`, `state` (which also guards the lists of pending and in-flight jobs). Only
/// `driver_lock` is held while calling the driver or
/// a dependency fence. `deadline_hook`'s lock is taken by whoever sets a deadline on a done
/// fence (it queues the work item under it), by the run path with `driver_lock` held, and by
/// the teardown, possibly under `signal_lock` (a done-fence callback dropping the queue); no
/// queue lock is ever taken inside it. Only
/// `signal_lock` is held while a done fence signals, so
/// callbacks on done fences (which run under the fence's lock) may take `state` (for
/// [`JobQueue::stats`] or dropping the queue) but never `signal_lock`
/// ([`JobQueue::complete`]).
#[pin_data]
struct Inner<D: JobQueueDriver> {
    /// Only called with `driver_lock` held.
    driver: D,
    /// Serialises the calls of the driver's methods, and holds the first pending job once the
    /// run path took it out of `pending` ([`Head`]). Never held while allocating.
    #[pin]
    driver_lock: Mutex<Head<D>>,
    ctx: Arc<FenceCtx>,
    capacity: u32,
    timeout: Delta,
    #[pin]
    state: SpinLockIrq<State<D>>,
    /// Serialises signalling, so that done fences signal in seqno order even when completion,
    /// timeout and teardown race. Held for a batch of at most eight fences at a time.
    #[pin]
    signal_lock: SpinLockIrq<()>,
    /// Completed once the ring was stopped, its jobs signalled, and the waiting jobs that
    /// could be cancelled were; [`JobQueue::kill`] waits for it.
    #[pin]
    stopped: Completion,
    /// Whether a completion report beyond the jobs handed to the ring was seen already.
    clamp_warned: Atomic<u32>,
    /// Set when `State::phase` leaves [`Phase::Live`], so that [`JobQueue::prepare`] checks it
    /// without a round trip of the state lock.
    dead: Atomic<u32>,
    /// The client id of the trace events ([`JobQueue::set_client_id`]).
    client_id: Atomic<u64>,
    /// Set by [`JobQueue::shutdown`]: the owner drops the last handle in process context, and
    /// the queue is freed right there.
    shut_down: Atomic<u32>,
    /// The submit work item: runs jobs, waits for dependencies, and tears down.
    #[pin]
    work: Work<Inner<D>, 0>,
    /// The timeout work item: fires when the oldest running job may have timed out.
    #[pin]
    timeout_work: DelayedWork<Inner<D>, 1>,
    /// Runs `work`.
    submit_wq: Arc<FenceWorkqueue>,
    /// Runs `timeout_work`.
    timeout_wq: Arc<FenceWorkqueue>,
    /// Receives the deadline hints of the done fences.
    deadline_hook: Arc<DeadlineHook>,
    /// The deadline hint being applied: the jobs up to `deadline_last` (0: none) should signal
    /// by `deadline_ns` (monotonic). Written only with `driver_lock` held, and read there
    /// (the zero check of `deadline_last` excepted).
    deadline_last: Atomic<u64>,
    deadline_ns: Atomic<i64>,
    /// The task in a direct run of [`PreparedJob::submit`] (which holds `driver_lock`), or 0.
    direct_owner: Atomic<usize>,
    /// Set by the deadline hook before it queues the work item: a hint is waiting.
    deadline_hinted: Atomic<u32>,
}

/// The deadline hook of a queue's fence timeline ([`JobQueueDriver::set_deadline`]).
///
/// It holds a reference to the queue until the queue's teardown begins: the timeline holds
/// the hook and the queue holds the timeline, and the teardown breaks that cycle. It is not
/// generic, and is made by the non-generic [`deadline_timeline`]: the timeline frees it from an
/// RCU callback, possibly after the driver module is gone, so its drop must be code of the
/// kernel crate (and by then it holds no queue).
#[pin_data]
struct DeadlineHook {
    #[pin]
    state: SpinLockIrq<HookState>,
}

/// Protected by `DeadlineHook::state`.
struct HookState {
    /// The queue, until its teardown begins.
    queue: Option<Arc<dyn DeadlineTarget>>,
    /// The hints received since the work item last took them: the highest seqno and the
    /// soonest deadline (monotonic ns).
    hint: Option<(u64, i64)>,
}

/// The queue as its deadline hook sees it.
trait DeadlineTarget: Send + Sync {
    /// A hint arrived: queue the submit work item to apply it.
    fn hinted(self: Arc<Self>);
}

impl<D: JobQueueDriver> DeadlineTarget for Inner<D> {
    fn hinted(self: Arc<Self>) {
        self.deadline_hinted.store(1, Relaxed);
        self.as_arc_borrow().kick();
        // Never the last reference: the hook holds one.
        drop(self);
    }
}

impl FenceDeadline for DeadlineHook {
    fn set_deadline(&self, seqno: u64, deadline: Instant<Monotonic>) {
        let ns = deadline.as_nanos();
        let mut st = self.state.lock();
        st.hint = Some(match st.hint {
            Some((s, d)) => (s.max(seqno), d.min(ns)),
            None => (seqno, ns),
        });
        if let Some(q) = &st.queue {
            q.clone().hinted();
        }
    }
}

/// Makes a queue's fence timeline with its deadline hook (no queue yet).
#[inline(never)]
fn deadline_timeline(
    driver_name: &CStr,
    name: &CStr,
) -> Result<(Arc<FenceCtx>, Arc<DeadlineHook>)> {
    let (hook_name, hook_key) = classes::deadline();
    let hook = Arc::pin_init(
        pin_init!(DeadlineHook {
            state <- SpinLockIrq::new(
                HookState {
                    queue: None,
                    hint: None,
                },
                hook_name,
                hook_key,
            ),
        }),
        GFP_KERNEL,
    )?;
    let ctx = FenceCtx::new_with_deadline(driver_name, name, hook.clone())?;
    Ok((ctx, hook))
}

/// The workqueues a driver's job queues share: one for submission, one for timeouts.
///
/// Both are [`FenceWorkqueue`]s. The timeout workqueue is ordered when made by
/// [`JobQueueWorkqueues::new`]: the timeout handlers of all the queues that share it run one
/// at a time, which is how a driver serialises ring resets within a reset domain (give each
/// domain its own, and share the submit workqueue across the device).
#[derive(Clone)]
pub struct JobQueueWorkqueues {
    /// Runs the queues' submit work items (dependencies, `run()`, teardown).
    pub submit: Arc<FenceWorkqueue>,
    /// Runs the queues' timeout work items (`timed_out()`).
    pub timeout: Arc<FenceWorkqueue>,
}

impl JobQueueWorkqueues {
    /// Allocates an unordered submit workqueue and an ordered timeout workqueue, named after
    /// `name`. May sleep.
    pub fn new(name: &CStr) -> Result<Self> {
        let submit = CString::try_from_fmt(fmt!("{}-submit", name.to_str().unwrap_or("jq")))?;
        let timeout = CString::try_from_fmt(fmt!("{}-timeout", name.to_str().unwrap_or("jq")))?;
        Ok(Self {
            submit: FenceWorkqueue::new(&submit)?,
            timeout: FenceWorkqueue::new_ordered(&timeout)?,
        })
    }
}

impl_has_work! {
    impl{D: JobQueueDriver} HasWork<Inner<D>, 0> for Inner<D> { self.work }
}

impl_has_delayed_work! {
    impl{D: JobQueueDriver} HasDelayedWork<Inner<D>, 1> for Inner<D> { self.timeout_work }
}

impl<D: JobQueueDriver> SignallingWorkItem<0> for Inner<D> {
    type Pointer = Arc<Inner<D>>;

    fn run(this: Arc<Inner<D>>, mut section: SignallingSection) {
        this.process(&mut section);
        // Outside the section: this may be the last reference, and the driver's drop is not on
        // any signalling path.
        drop(section);
        drop(this);
    }
}

impl<D: JobQueueDriver> SignallingWorkItem<1> for Inner<D> {
    type Pointer = Arc<Inner<D>>;

    fn run(this: Arc<Inner<D>>, section: SignallingSection) {
        this.handle_timeout();
        drop(section);
        drop(this);
    }
}

impl<D: JobQueueDriver> Inner<D> {
    /// Queues the work item. Callable from any context where a `spinlock_t` may be taken.
    fn kick(self: ArcBorrow<'_, Self>) {
        // If it is already queued, the clone is dropped again (not the last reference: `self`
        // is borrowed from another one).
        let _ = self.submit_wq.enqueue::<Self, 0>(self.into());
    }

    /// Starts the teardown: no job is handed to `run()` any more, and the work item stops the
    /// ring. Returns whether the queue was live. Callable wherever `kick` is.
    fn begin_teardown(self: ArcBorrow<'_, Self>, timed_out: Option<u64>) -> bool {
        let was_live = {
            let mut st = self.state.lock();
            let live = st.phase == Phase::Live;
            if live {
                // INVARIANT: From now on `run()` is not called again (the work item checks the
                // phase under this lock before each call); later submissions get `-ENODEV`.
                st.phase = Phase::Dying;
                self.dead.store(1, Relaxed);
                st.cold.dead_from = st.next_seqno;
                st.cold.timed_out = timed_out;
            }
            live
        };
        if was_live {
            // The queue no longer needs deadline hints: break the reference cycle through the
            // fence timeline. Dropped outside the hook's lock; never the last reference:
            // `self` is borrowed from another.
            let q = self.deadline_hook.state.lock().queue.take();
            drop(q);
            self.kick();
        }
        was_live
    }

    /// The done fence of the last job submitted, unless every job has signalled: the last
    /// pending job's, else the head job's (the driver lock holds it), else the last job's in
    /// flight. Jobs are on these lists in seqno order, so none is kept for this on the submit
    /// path. Takes the driver lock, so sleeps while a `run()`, `timed_out()` or `stop()`
    /// executes; and `signal_lock`, which a completion holds from taking jobs off the
    /// in-flight list until their fences have signalled.
    fn last_fence(&self) -> Option<ARef<Fence>> {
        let head = self.driver_lock.lock();
        let _signal = self.signal_lock.lock();
        let st = self.state.lock();
        st.pending
            .last_fence()
            .or_else(|| {
                head.as_ref()
                    .and_then(|n| n.fence.as_ref())
                    .map(|f| f.fence())
            })
            .or_else(|| st.inflight.back().map(|f| f.as_fence().into()))
    }

    /// Drops a reference to the queue from any context. The last one is handed to the submit
    /// work item, which drops it in process context.
    fn release(this: Arc<Self>) {
        let Some(unique) = Arc::into_unique_or_drop(this) else {
            return;
        };
        let this: Arc<Self> = unique.into();
        let wq = this.submit_wq.raw_queue();
        // SAFETY: `wq` is the C workqueue, which `this` keeps alive through `submit_wq` until
        // the work item queued here has run (a `FenceWorkqueue` is destroyed only after
        // draining it), and enqueueing does not touch it after queueing.
        let wq = unsafe { &*wq };
        // We hold the only reference, so the work item is not queued: this queues it.
        if let Err(this) = wq.enqueue::<Arc<Self>, 0>(this) {
            // Unreachable: a queued work item holds a reference of its own.
            crate::warn_on!(true);
            drop(this);
        }
    }

    /// Whether the current thread is one of this queue's work items (running a driver
    /// method).
    fn in_own_work(&self) -> bool {
        // SAFETY: `current_work()` only reads the current task's worker state.
        let cur = unsafe { crate::bindings::current_work() };
        // SAFETY: `self.work` is a valid `Work`; this only computes the `work_struct` address.
        let submit = unsafe { Work::raw_get(&self.work) };
        // SAFETY: `self.timeout_work` is a valid `DelayedWork`; this only computes an address.
        let timeout = unsafe { DelayedWork::raw_as_work(&self.timeout_work) };
        // SAFETY: `timeout` points to the valid `Work` inside `self.timeout_work`.
        let timeout = unsafe { Work::raw_get(timeout) };
        cur == submit || cur == timeout
    }
}

/// A job queue for one ring. See the [module documentation](self).
///
/// Dropping it never sleeps and never waits, so it may happen anywhere: in a driver callback,
/// in a fence callback, in atomic or interrupt context. It starts the same teardown as
/// [`JobQueue::kill`], which then runs from the queue's work item; the queue's memory is freed
/// once that teardown is over. A driver module must not unload before its queues are gone:
/// call [`JobQueue::shutdown`] for each from the module's exit path, then drop them and call
/// [`rcu_barrier`](crate::sync::rcu::rcu_barrier) (the queue's deadline hook, code of the
/// driver module, is freed from an RCU callback).
pub struct JobQueue<D: JobQueueDriver> {
    inner: ManuallyDrop<Arc<Inner<D>>>,
}

impl<D: JobQueueDriver> JobQueue<D> {
    /// Creates a queue for a ring with `capacity` credits; a running job that has not finished
    /// `timeout` after it started, or after the job before it finished, whichever is later, is
    /// reported to [`JobQueueDriver::timed_out`].
    ///
    /// `driver_name` and `name` name the queue's fence timeline. The queue's work items run on
    /// `wqs`, which the driver shares between its queues.
    pub fn new(
        driver: D,
        driver_name: &CStr,
        name: &CStr,
        capacity: u32,
        timeout: Delta,
        wqs: &JobQueueWorkqueues,
    ) -> Result<Self> {
        if capacity == 0 || timeout <= Delta::ZERO {
            return Err(EINVAL);
        }
        let (ctx, hook) = deadline_timeline(driver_name, name)?;
        let (state_name, state_key) = classes::state();
        let (signal_name, signal_key) = classes::signal();
        let (dlock_name, dlock_key) = classes::driver();
        let (work_name, work_key) = classes::work();
        let (timeout_name, timeout_key) = classes::timeout_work();
        let (timer_name, timer_key) = classes::timeout_timer();
        let state = State {
            phase: Phase::Live,
            parked_since: None,
            oldest: 1,
            handed: 1,
            running: None,
            next_to_run: 1,
            next_seqno: 1,
            credits_in_use: 0,
            last_finish: 0,
            stats: JobQueueStats::default(),
            pending: Pending::new(),
            inflight: InFlight::new(),
            cold: KBox::new(
                Cold {
                    dead_from: u64::MAX,
                    timed_out: None,
                    late: None,
                    hold_from: None,
                    held: None,
                    held_err: None,
                    last_job: None,
                },
                GFP_KERNEL,
            )?,
        };
        let inner = Arc::pin_init(
            pin_init!(Inner {
                driver,
                driver_lock <- Mutex::new(None, dlock_name, dlock_key),
                ctx,
                capacity,
                timeout,
                state <- SpinLockIrq::new(state, state_name, state_key),
                signal_lock <- SpinLockIrq::new((), signal_name, signal_key),
                stopped <- Completion::new(),
                clamp_warned: Atomic::new(0),
                dead: Atomic::new(0),
                client_id: Atomic::new(0),
                shut_down: Atomic::new(0),
                work <- Work::new(work_name, work_key),
                timeout_work <- DelayedWork::new(timeout_name, timeout_key, timer_name, timer_key),
                submit_wq: wqs.submit.clone(),
                timeout_wq: wqs.timeout.clone(),
                deadline_hook: hook,
                deadline_last: Atomic::new(0),
                deadline_ns: Atomic::new(0),
                deadline_hinted: Atomic::new(0),
                direct_owner: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        let target: Arc<dyn DeadlineTarget> = inner.clone();
        inner.deadline_hook.state.lock().queue = Some(target);
        Ok(Self {
            inner: ManuallyDrop::new(inner),
        })
    }

    /// Kills the queue and waits until the ring is stopped.
    ///
    /// Later submissions fail with `ENODEV` (or get a fence signalled with `-ENODEV`, if
    /// prepared before). When this returns, [`JobQueueDriver::stop`] has returned,
    /// [`JobQueueDriver::run`] and [`JobQueueDriver::timed_out`] will not be called again, and
    /// every job the ring was given has signalled (`-ECANCELED` unless it completed). Jobs not
    /// run yet signal `-ECANCELED` in seqno order, each once its dependencies have signalled:
    /// this waits for those whose dependencies had signalled, not for the others.
    ///
    /// # Context
    ///
    /// Process context; may sleep (for a `run()` in progress and for `stop()`). Called from a
    /// [`JobQueueDriver`] method, it does not wait: the teardown follows when the method
    /// returns.
    pub fn kill(&self) {
        self.inner.as_arc_borrow().begin_teardown(None);
        if !self.inner.in_own_work() && !self.inner.in_direct_run() {
            self.inner.stopped.wait_for_completion();
        }
    }

    /// Kills the queue, then waits until every job of it has signalled and its work items are
    /// finished, so that no code of the driver runs for the queue any more.
    ///
    /// This is what a driver module calls for each of its queues before it unloads (the work
    /// items run the driver's code). Dropping the last handle afterwards frees the queue right
    /// there, so it must then happen in process context. Jobs waiting for a dependency are
    /// waited for until it signals; a [`PreparedJob`] that is still around keeps the queue
    /// alive, and its submission would run the work item again.
    ///
    /// # Context
    ///
    /// Process context; may sleep. Not from a [`JobQueueDriver`] method.
    pub fn shutdown(&self) {
        self.inner.shut_down.store(1, Relaxed);
        self.kill();
        if let Some(f) = self.inner.last_fence() {
            // Fences signal in order: once the last one has, every job has.
            let _ = f.wait(false);
        }
        // The timeout work queues the submit work item, so it goes first. Neither is queued
        // again: the queue is dead and idle.
        DelayedWork::<Inner<D>, 1>::cancel_sync(&self.inner);
        Work::<Inner<D>, 0>::cancel_sync(&self.inner);
    }

    /// Sets the client id of the queue's trace events (`client_id:` of
    /// `include/trace/events/drm_jobqueue.h`): the owning DRM file's fdinfo `drm-client-id`,
    /// as drm_sched reports it. 0 until set.
    pub fn set_client_id(&self, id: u64) {
        self.inner.client_id.store(id, Relaxed);
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
        // SAFETY: Taken once, here; `self.inner` is not used afterwards.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        // Never waits: the work item tears down, and frees the queue if this was the last
        // reference.
        inner.as_arc_borrow().begin_teardown(None);
        if inner.shut_down.load(Relaxed) != 0 {
            // `shutdown()` waited for everything; its caller drops in process context.
            drop(inner);
        } else {
            Inner::release(inner);
        }
    }
}
