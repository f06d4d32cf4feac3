// SPDX-License-Identifier: GPL-2.0

//! The emulated GPU: one engine per ring.
//!
//! The engine executes the jobs that the [`JobQueue`] puts on its ring one after the other. Its
//! "shader core" is a work item on the device's execution workqueue (a [`FenceWorkqueue`]: it runs
//! inside a fence signalling section): it runs the commands of each job on the buffer objects, in
//! process context, for as long as they take (one job may write 1 GiB). A job takes at least its
//! busy time; once it has executed and is due, the engine's completion "interrupt" (an hrtimer in
//! the default, non-hard mode) reports it to the queue with [`JobQueue::complete`], which signals
//! the job's out-fence there. The interrupt does a bounded amount of work per job: it never touches
//! buffer contents.
//!
//! Stopping or resetting the ring (from the queue's [`JobQueueDriver::stop`] and
//! [`JobQueueDriver::timed_out`]) asks the shader core to abandon the job it is executing and
//! waits for it, so that afterwards nothing touches the ring's jobs or their buffers.
//!
//! The mode matters. Signalling a dma_fence takes `spinlock_t`s, which sleep on `PREEMPT_RT`. A
//! default-mode hrtimer runs in hard interrupt context without `PREEMPT_RT` (as a real device's
//! interrupt handler does) and in softirq context with it (as a threaded handler would); a
//! hard-mode one always runs in hard interrupt context and could not complete jobs on RT.
//!
//! Nothing on this path allocates: the ring is an intrusive list of the jobs, which were
//! allocated at submit time. Finished jobs still hold kernel mappings and references of their
//! buffer objects, whose release may sleep, so the interrupt moves them to a retire list that a
//! work item empties in process context.

use kernel::{
    dma_buf::{
        Fence,
        FenceWorkqueue,
        SignallingSection,
        SignallingWorkItem, //
    },
    drm::jobqueue::{
        JobQueue,
        JobQueueDriver,
        JobTimes,
        TimeoutAction, //
    },
    impl_has_hr_timer,
    io::Io,
    list::{
        impl_list_arc_safe,
        impl_list_item,
        List,
        ListArc,
        ListLinks, //
    },
    new_spinlock_irq, new_work,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
        SpinLockIrq, //
    },
    time::{
        hrtimer::{
            ArcHrTimerHandle,
            HrTimer,
            HrTimerCallback,
            HrTimerCallbackContext,
            HrTimerPointer,
            HrTimerRestart,
            RelativeMode, //
        },
        Delta,
        Instant,
        Monotonic, //
    },
    uapi,
    workqueue::{
        self,
        impl_has_work,
        Work,
        WorkItem, //
    },
};

use crate::gem::BoMap;

/// Shortest time between two engine interrupts.
const MIN_IRQ_DELAY_NS: i64 = 1000;

/// Bytes the shader core writes between two looks at its abort flag.
const EXEC_CHUNK: usize = 64 * 1024;

/// One validated command: offsets and lengths are in bytes, checked against the buffers.
pub(crate) struct Cmd {
    pub(crate) op: u32,
    /// Index of the destination in [`GpuJob::bos`].
    pub(crate) dst: usize,
    /// Index of the source in [`GpuJob::bos`] (COPY only).
    pub(crate) src: usize,
    pub(crate) dst_off: usize,
    pub(crate) src_off: usize,
    pub(crate) len: usize,
    pub(crate) value: u32,
}

/// A job as the hardware sees it.
#[pin_data]
pub(crate) struct GpuJob {
    /// Kernel mappings of the buffer objects the commands use.
    bos: KVec<Arc<BoMap>>,
    cmds: KVec<Cmd>,
    /// Minimum execution time, in nanoseconds.
    busy_ns: i64,
    /// Test hook: the job never finishes.
    hang: bool,
    /// Test hook: the job faults (its commands do not execute; it completes with `EIO`).
    fault: bool,
    /// The job's seqno on its queue, set when it is put on the ring.
    seqno: Atomic<u64>,
    /// When the job finishes (monotonic ns), set when it is put on the ring.
    due: Atomic<i64>,
    #[pin]
    links: ListLinks,
}

impl_list_arc_safe! {
    impl ListArcSafe<0> for GpuJob { untracked; }
}
impl_list_item! {
    impl ListItem<0> for GpuJob { using ListLinks { self.links }; }
}

impl GpuJob {
    /// Creates a job; `cmds` must have been validated against `bos`.
    pub(crate) fn new(
        bos: KVec<Arc<BoMap>>,
        cmds: KVec<Cmd>,
        busy: Delta,
        hang: bool,
        fault: bool,
    ) -> Result<ListArc<Self>> {
        ListArc::pin_init(
            try_pin_init!(Self {
                bos,
                cmds,
                busy_ns: busy.as_nanos(),
                hang,
                fault,
                seqno: Atomic::new(0),
                due: Atomic::new(0),
                links <- ListLinks::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// Executes the commands: what the GPU does. Runs on the shader core (process context);
    /// never fails (the ranges were checked at submit; a failed access is skipped). Returns
    /// `false` if `abort` was raised meanwhile, leaving the job partly executed.
    fn execute(&self, abort: &Atomic<u32>) -> bool {
        for c in self.cmds.iter() {
            let dst = &self.bos[c.dst];
            for off in (0..c.len).step_by(4) {
                if off % EXEC_CHUNK == 0 && off != 0 {
                    if abort.load(Relaxed) != 0 {
                        return false;
                    }
                    #[cfg(not(CONFIG_PREEMPTION))]
                    // SAFETY: Process context, no lock held.
                    unsafe {
                        kernel::bindings::__cond_resched()
                    };
                }
                let d = c.dst_off + off;
                let v = match c.op {
                    uapi::DUMMY_GPU_OP_FILL => Ok(c.value),
                    uapi::DUMMY_GPU_OP_ADD => dst.try_read32(d).map(|v| v.wrapping_add(c.value)),
                    uapi::DUMMY_GPU_OP_COPY => self.bos[c.src].try_read32(c.src_off + off),
                    _ => Err(EINVAL),
                };
                if let Ok(v) = v {
                    let _ = dst.try_write32(v, d);
                }
            }
        }
        true
    }
}

/// The state of the ring, shared with the interrupt.
///
/// A job goes from `jobs` to the shader core, then to `executed`, and from there (taken by the
/// interrupt once due, or by a stop or reset) to the engine's retire list.
struct Hw {
    /// Jobs on the ring not executed yet, oldest first. A hung job stays at the head.
    jobs: List<GpuJob>,
    /// Jobs the shader core finished, oldest first, waiting for the interrupt.
    executed: List<GpuJob>,
    /// Whether the interrupt timer is (or is about to be) armed.
    timer_armed: bool,
    /// When the last job on the ring finishes.
    last_due: i64,
    /// The armed timer. Only [`Engine::start_timer`] (on the shader core) and
    /// [`Engine::halt`] (after cancelling the shader core) replace it.
    timer: Option<ArcHrTimerHandle<Engine>>,
}

/// Counters of one engine.
#[derive(Clone, Copy, Default)]
pub(crate) struct EngineStats {
    /// Jobs the engine finished (executed, or faulted with the FAULT test hook).
    pub(crate) executed: u64,
    /// Completion interrupts.
    pub(crate) irqs: u64,
    /// Ring resets after a timeout.
    pub(crate) resets: u64,
}

/// One ring's emulated hardware.
#[pin_data]
pub(crate) struct Engine {
    #[pin]
    timer: HrTimer<Engine>,
    #[pin]
    hw: SpinLockIrq<Hw>,
    /// The queue of this ring. The interrupt only borrows it, under this lock;
    /// [`Engine::detach`] takes it away before the queue is torn down.
    #[pin]
    queue: SpinLockIrq<Option<Arc<JobQueue<Ring>>>>,
    /// Finished jobs whose resources are released by `retire_work`.
    #[pin]
    retired: SpinLockIrq<List<GpuJob>>,
    #[pin]
    retire_work: Work<Engine>,
    /// The shader core: executes the ring's jobs.
    #[pin]
    exec_work: Work<Engine, 1>,
    /// The device's execution workqueue, which runs `exec_work`.
    exec_wq: Arc<FenceWorkqueue>,
    /// Raised by [`Engine::halt`]: the shader core abandons the job it executes.
    abort: Atomic<u32>,
    /// Set while the device is suspended ([`Engine::pause`]): the shader core takes no job,
    /// and no interrupt fires.
    paused: Atomic<u32>,
    /// The engine's time origin: job due times are nanoseconds since then.
    epoch: Instant<Monotonic>,
    executed: Atomic<u64>,
    irqs: Atomic<u64>,
    resets: Atomic<u64>,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Engine {
        mode: RelativeMode<Monotonic>,
        field: self.timer
    }
}

impl_has_work! {
    impl HasWork<Self> for Engine { self.retire_work }
    impl HasWork<Self, 1> for Engine { self.exec_work }
}

impl Engine {
    /// Creates an engine whose shader core runs on `exec_wq`.
    pub(crate) fn new(exec_wq: Arc<FenceWorkqueue>) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                timer <- HrTimer::new(),
                hw <- new_spinlock_irq!(Hw {
                    jobs: List::new(),
                    executed: List::new(),
                    timer_armed: false,
                    last_due: 0,
                    timer: None,
                }),
                queue <- new_spinlock_irq!(None),
                retired <- new_spinlock_irq!(List::new()),
                retire_work <- new_work!("dummy_gpu::Engine::retire_work"),
                exec_work <- new_work!("dummy_gpu::Engine::exec_work"),
                exec_wq,
                abort: Atomic::new(0),
                paused: Atomic::new(0),
                epoch: Instant::now(),
                executed: Atomic::new(0),
                irqs: Atomic::new(0),
                resets: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Nanoseconds since the engine was made.
    fn now_ns(&self) -> i64 {
        self.epoch.elapsed().as_nanos()
    }

    /// Connects the engine's interrupt to its queue.
    pub(crate) fn attach(&self, queue: Arc<JobQueue<Ring>>) {
        *self.queue.lock() = Some(queue);
    }

    /// Disconnects the interrupt from the queue and hands the queue back, so that the caller
    /// can tear it down (in process context).
    pub(crate) fn detach(&self) -> Option<Arc<JobQueue<Ring>>> {
        self.queue.lock().take()
    }

    /// Releases everything the engine still holds. Called at teardown, once the queue was
    /// killed (so the ring is stopped and `run` is not called again); idempotent. May sleep.
    pub(crate) fn shutdown(self: &Arc<Self>) {
        self.halt();
        Work::<Self>::cancel_sync(self);
        self.retire();
    }

    /// Halts the ring: the shader core abandons its job and is waited for, the interrupt is
    /// cancelled (waiting for a running one), and every job on the ring goes to the retire
    /// list. Afterwards nothing touches those jobs, and the ring is empty and usable again.
    ///
    /// Called from the queue's work item, in its signalling section: it waits only for the
    /// shader core and the interrupt, which run in signalling sections themselves and never
    /// allocate.
    fn halt(self: &Arc<Self>) {
        self.abort.store(1, Relaxed);
        Work::<Self, 1>::cancel_sync(self);
        let timer = self.hw.lock().timer.take();
        drop(timer);
        self.move_ring_to_retired();
        self.abort.store(0, Relaxed);
        Self::kick_retire(self.as_arc_borrow());
    }

    /// Suspends the engine: the shader core finishes the job it is executing and takes no
    /// other, and the interrupt is cancelled, so nothing executes or completes until
    /// [`Self::resume`]. The caller parked the queue first, so `run()` is not called either.
    /// Process context; may sleep.
    pub(crate) fn pause(self: &Arc<Self>) {
        self.paused.store(1, Relaxed);
        Work::<Self, 1>::cancel_sync(self);
        let timer = self.hw.lock().timer.take();
        drop(timer);
        // INVARIANT: The timer is cancelled; the shader core re-arms it on resume.
        self.hw.lock().timer_armed = false;
    }

    /// Resumes a paused engine: the shader core goes on with the ring, and the interrupt
    /// reports the jobs that executed before the pause.
    pub(crate) fn resume(self: &Arc<Self>) {
        self.paused.store(0, Relaxed);
        let _ = self.exec_wq.enqueue::<Self, 1>(self.clone());
    }

    /// Stops the ring for good (the queue's [`JobQueueDriver::stop`]); see [`Self::halt`].
    fn stop(self: &Arc<Self>) {
        self.halt();
    }

    pub(crate) fn stats(&self) -> EngineStats {
        EngineStats {
            executed: self.executed.load(Relaxed),
            irqs: self.irqs.load(Relaxed),
            resets: self.resets.load(Relaxed),
        }
    }

    /// Puts `job` on the ring and wakes the shader core. Called by the queue, in its
    /// signalling section: no allocation.
    fn push(self: &Arc<Self>, job: ListArc<GpuJob>, seqno: u64) {
        let now = self.now_ns();
        job.seqno.store(seqno, Relaxed);
        {
            let mut hw = self.hw.lock();
            let due = if job.hang {
                i64::MAX
            } else {
                let due = hw.last_due.max(now).saturating_add(job.busy_ns);
                hw.last_due = due;
                due
            };
            job.due.store(due, Relaxed);
            hw.jobs.push_back(job);
        }
        // Already queued or running is fine: the shader core empties the ring.
        let _ = self.exec_wq.enqueue::<Self, 1>(self.clone());
    }

    /// The shader core: executes the jobs on the ring in order, hands them to the interrupt,
    /// and stops at a hung job or when halted. On the fence signalling path (`exec_work` is a
    /// [`SignallingWorkItem`]): lockdep checks that nothing here allocates or waits for anything
    /// that might.
    fn execute_ring(self: &Arc<Self>) {
        if self.paused.load(Relaxed) != 0 {
            return;
        }
        // After a pause: jobs that executed before it wait for the interrupt.
        let start = {
            let mut hw = self.hw.lock();
            hw.executed.iter().next().is_some() && !core::mem::replace(&mut hw.timer_armed, true)
        };
        if start {
            self.start_timer();
        }
        loop {
            let job = {
                let mut hw = self.hw.lock();
                let go = self.abort.load(Relaxed) == 0 && self.paused.load(Relaxed) == 0;
                match hw.jobs.iter().next() {
                    Some(j) if go && !j.hang => hw.jobs.pop_front(),
                    _ => None,
                }
            };
            let Some(job) = job else { break };
            let finished = job.fault || job.execute(&self.abort);
            let start = {
                let mut hw = self.hw.lock();
                if finished && self.abort.load(Relaxed) == 0 {
                    hw.executed.push_back(job);
                    !core::mem::replace(&mut hw.timer_armed, true)
                } else {
                    // Halted meanwhile: the job will not complete.
                    drop(hw);
                    self.retired.lock().push_back(job);
                    false
                }
            };
            if start {
                self.start_timer();
            }
        }
    }

    /// Arms the interrupt for the oldest executed job. Only called with `timer_armed` set by
    /// the caller, on the shader core (which [`Self::halt`] cancels before touching the timer).
    fn start_timer(self: &Arc<Self>) {
        // Dropping the old handle cancels the timer; the interrupt that cleared `timer_armed`
        // may still be finishing, and this waits for it.
        let old = self.hw.lock().timer.take();
        drop(old);
        let head_due = {
            let mut hw = self.hw.lock();
            let Some(due) = hw.executed.iter().next().map(|j| j.due.load(Relaxed)) else {
                // Nothing executed to wait for.
                hw.timer_armed = false;
                return;
            };
            due
        };
        let delay = (head_due - self.now_ns()).max(MIN_IRQ_DELAY_NS);
        let handle = self.clone().start(Delta::from_nanos(delay));
        self.hw.lock().timer = Some(handle);
    }

    /// Takes the oldest executed job if it is due.
    fn pop_due(&self, now: i64) -> Option<ListArc<GpuJob>> {
        let mut hw = self.hw.lock();
        match hw.executed.iter().next() {
            Some(j) if j.due.load(Relaxed) <= now => hw.executed.pop_front(),
            _ => None,
        }
    }

    /// Moves every job still on the ring to the retire list (they will not finish). The
    /// caller cancelled the shader core and the interrupt.
    fn move_ring_to_retired(&self) {
        let mut hw = self.hw.lock();
        hw.timer_armed = false;
        let mut retired = self.retired.lock();
        while let Some(j) = hw.executed.pop_front() {
            retired.push_back(j);
        }
        while let Some(j) = hw.jobs.pop_front() {
            retired.push_back(j);
        }
        hw.last_due = 0;
    }

    fn kick_retire(this: ArcBorrow<'_, Self>) {
        // Already queued is fine: the running work empties the whole list.
        let _ = workqueue::system_dfl().enqueue::<Arc<Self>, 0>(Arc::from(this));
    }

    /// Releases finished jobs. Process context.
    fn retire(&self) {
        loop {
            let job = self.retired.lock().pop_front();
            match job {
                Some(job) => drop(job),
                None => break,
            }
        }
    }

    /// The ring hung on job `seqno`: resets the ring without that job, and runs the jobs
    /// behind it again (the firmware's reset-and-resubmit). Returns false, doing nothing, if
    /// `seqno` is not a hung job at the head of the ring.
    ///
    /// The shader core stops in front of a hung job, so it is idle, the jobs before it have
    /// executed and the ones behind it have not started: dropping the hung job and waking
    /// the shader core replays them from the start. They may complete (the interrupt
    /// reports them) before the caller returns.
    fn reset_and_replay(self: &Arc<Self>, seqno: u64) -> bool {
        let guilty = {
            let mut hw = self.hw.lock();
            match hw.jobs.iter().next() {
                Some(j) if j.hang && j.seqno.load(Relaxed) == seqno => hw.jobs.pop_front(),
                _ => None,
            }
        };
        let Some(guilty) = guilty else {
            return false;
        };
        self.retired.lock().push_back(guilty);
        self.resets.fetch_add(1, Relaxed);
        Self::kick_retire(self.as_arc_borrow());
        let _ = self.exec_wq.enqueue::<Self, 1>(self.clone());
        true
    }
}

impl HrTimerCallback for Engine {
    type Pointer<'a> = Arc<Self>;

    /// The completion interrupt (hard IRQ without `PREEMPT_RT`, softirq with it): reports
    /// the executed jobs that are due, in constant time per job.
    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        this.irqs.fetch_add(1, Relaxed);
        let now = this.now_ns();
        let mut retired_any = false;
        while let Some(job) = this.pop_due(now) {
            let result = if job.fault { Err(EIO) } else { Ok(()) };
            let seqno = job.seqno.load(Relaxed);
            this.retired.lock().push_back(job);
            retired_any = true;
            this.executed.fetch_add(1, Relaxed);
            if let Some(q) = this.queue.lock().as_ref() {
                q.complete(seqno, result);
            }
        }
        if retired_any {
            Self::kick_retire(this);
        }
        let mut hw = this.hw.lock();
        match hw.executed.iter().next().map(|j| j.due.load(Relaxed)) {
            Some(due) => {
                drop(hw);
                ctx.forward_now(Delta::from_nanos((due - now).max(MIN_IRQ_DELAY_NS)));
                HrTimerRestart::Restart
            }
            _ => {
                hw.timer_armed = false;
                HrTimerRestart::NoRestart
            }
        }
    }
}

impl WorkItem for Engine {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        this.retire();
    }
}

impl SignallingWorkItem<1> for Engine {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>, section: SignallingSection) {
        this.execute_ring();
        // Outside the section: this may be the last reference to the engine.
        drop(section);
        drop(this);
    }
}

/// The driver side of one ring's [`JobQueue`].
pub(crate) struct Ring {
    pub(crate) engine: Arc<Engine>,
    /// Ring time of the jobs that ran (from [`JobQueueDriver::job_done`]), for fdinfo.
    pub(crate) busy_ns: Atomic<u64>,
}

impl JobQueueDriver for Ring {
    type Job = ListArc<GpuJob>;

    fn run(&self, job: ListArc<GpuJob>, seqno: u64, _done: &Fence) {
        self.engine.push(job, seqno);
    }

    fn timed_out(&self, seqno: u64) -> TimeoutAction {
        // The only way a job of this GPU hangs is the HANG test hook: reset the ring, and run
        // the innocent jobs behind the hung one again. Any other job is executing or waiting
        // for its interrupt, which comes in bounded time.
        if self.engine.reset_and_replay(seqno) {
            TimeoutAction::ResetAndReplay { guilty: seqno }
        } else {
            TimeoutAction::Progressing
        }
    }

    fn stop(&self) {
        self.engine.stop();
    }

    fn job_done(&self, t: &JobTimes) {
        self.busy_ns.fetch_add(t.ring_ns, Relaxed);
    }
}
