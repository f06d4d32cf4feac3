// SPDX-License-Identifier: GPL-2.0

//! Jobs: prepare (the fallible phase) and submit (the point of no return).

use super::{
    deps::DepWait,
    trace::JobEvent,
    Inner,
    JobMeta,
    JobQueue,
    JobQueueDriver,
    Phase, //
};
use crate::{
    alloc::Flags,
    dma_buf::{
        resv::{
            ResvLocks,
            ResvUsage, //
        },
        DriverFence,
        DriverFenceAllocation,
        Fence, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::Atomic,
        Arc, //
    },
};
use core::{
    mem::ManuallyDrop,
    pin::Pin,
    ptr, //
};

/// A job from prepare until the work item takes it (runs or cancels it).
#[pin_data]
pub(super) struct JobNode<D: JobQueueDriver> {
    /// The dependency callback; registered on at most one dependency at a time.
    #[pin]
    pub(super) wait: DepWait<D>,
    /// The driver's job, until it runs.
    pub(super) job: Option<D::Job>,
    /// The done fence, from submit until the job goes in flight.
    pub(super) fence: Option<DriverFence<JobMeta>>,
    /// Dependencies: one per fence context, the latest of each.
    pub(super) deps: KVec<ARef<Fence>>,
    /// Index in `deps` of the first dependency not known to have signalled.
    pub(super) next_dep: usize,
    /// The first dependency error seen.
    pub(super) dep_error: Option<Error>,
    /// The deadline (monotonic ns) last forwarded to `deps[next_dep]`, or `i64::MAX`.
    pub(super) deadline_sent: i64,
    /// The next job in [`Pending`], while this one is in it.
    next: Option<Pin<KBox<JobNode<D>>>>,
    pub(super) credits: u32,
}

impl<D: JobQueueDriver> JobQueue<D> {
    /// Prepares a job costing `credits` of the ring's capacity: the fallible phase.
    ///
    /// Allocates everything the job will need until its done fence signals, charged to the
    /// caller's memory cgroup (`GFP_KERNEL_ACCOUNT`): submissions come from user space. Fails
    /// with `EINVAL` if `credits` is zero or more than the capacity, `ENODEV` if the queue is
    /// dead, `ENOMEM` if out of memory. May sleep.
    pub fn prepare(&self, job: D::Job, credits: u32) -> Result<PreparedJob<D>> {
        self.prepare_with_flags(job, credits, GFP_KERNEL_ACCOUNT)
    }

    /// [`JobQueue::prepare`] with the allocation flags `flags`, which [`PreparedJob`] also
    /// uses for its dependencies. `flags` must allow sleeping (`GFP_KERNEL` or stronger), as
    /// reserving the queue's slots sleeps.
    pub fn prepare_with_flags(
        &self,
        job: D::Job,
        credits: u32,
        flags: Flags,
    ) -> Result<PreparedJob<D>> {
        let inner: &Arc<Inner<D>> = &self.inner;
        if credits == 0 || credits > inner.capacity {
            return Err(EINVAL);
        }
        if inner.state.lock().phase != Phase::Live {
            return Err(ENODEV);
        }
        let alloc = DriverFenceAllocation::new(
            JobMeta {
                credits,
                started: Atomic::new(0),
                ran_at: Atomic::new(0),
                skipped: Atomic::new(0),
            },
            flags,
        )?;
        let node = KBox::pin_init(
            pin_init!(JobNode::<D> {
                wait <- DepWait::new(),
                job: Some(job),
                fence: None,
                deps: KVec::new(),
                next_dep: 0,
                dep_error: None,
                deadline_sent: i64::MAX,
                next: None,
                credits,
            }),
            flags,
        )?;
        // Reserve the next seqno slot in the in-flight set, so that running never allocates.
        {
            let mut r = inner.reservations.lock();
            inner.inflight.reserve(r.end as usize, flags)?;
            r.end += 1;
        }
        Ok(PreparedJob {
            node: ManuallyDrop::new(node),
            alloc: ManuallyDrop::new(alloc),
            queue: inner.clone(),
            flags,
        })
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
/// use kernel::drm::jobqueue::{JobQueue, JobQueueDriver, JobQueueWorkqueues, TimeoutAction};
/// use kernel::time::Delta;
///
/// struct Ring;
/// impl JobQueueDriver for Ring {
///     type Job = ();
///     fn run(&self, _job: (), _seqno: u64, _done: &Fence) {}
///     fn timed_out(&self, _seqno: u64) -> TimeoutAction {
///         TimeoutAction::Dead
///     }
///     fn stop(&self) {}
/// }
///
/// let wqs = JobQueueWorkqueues::new(c"example")?;
/// let queue = JobQueue::new(Ring, c"example", c"ring1", 4, Delta::from_millis(500), &wqs)?;
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
    pub(super) node: ManuallyDrop<Pin<KBox<JobNode<D>>>>,
    pub(super) alloc: ManuallyDrop<DriverFenceAllocation<JobMeta>>,
    queue: Arc<Inner<D>>,
    /// The allocation flags of [`JobQueue::prepare_with_flags`].
    flags: Flags,
}

impl<D: JobQueueDriver> PreparedJob<D> {
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
        let node = self.node.as_mut().project();
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
        node.deps.push(fence, self.flags)?;
        Ok(())
    }

    /// Adds the fences of object `i` of the locked reservation objects `resvs` that an access
    /// must wait for (implicit synchronization): a write waits for all readers and writers, a
    /// read for the writers ([`ResvUsage::to_wait_for`]). Deduplicated like
    /// [`PreparedJob::add_dependency`].
    ///
    /// After [`PreparedJob::submit`], the driver adds the job's done fence to the same
    /// objects with [`ResvLocks::add_fence`] (usage [`ResvUsage::of_access`]), in slots it
    /// reserved with [`ResvLocks::reserve`] before submitting, and then unlocks them.
    pub fn add_resv_dependencies(
        &mut self,
        resvs: &ResvLocks<'_>,
        i: usize,
        write: bool,
    ) -> Result {
        resvs.for_each_fence(i, ResvUsage::to_wait_for(write), |f| {
            self.add_dependency(f.into())
        })
    }

    /// Returns how many dependencies the job waits for, after deduplication.
    pub fn dependency_count(&self) -> usize {
        self.node.deps.len()
    }

    /// Submits the job: the point of no return. Infallible; never allocates.
    ///
    /// Returns the job's done fence, which consumers can wait on but not signal. If the queue
    /// was killed since [`JobQueue::prepare`], the fence signals `-ENODEV` (once the jobs
    /// before it have signalled).
    ///
    /// If the job is the first pending one, its dependencies have signalled and the ring has
    /// the credits, and no work item or other submitter is calling the driver, the job is
    /// handed to [`JobQueueDriver::run`] right here, inside a signalling section, with no
    /// workqueue hop (the direct run); otherwise the queue's work item takes it.
    ///
    /// # Context
    ///
    /// Process context, as for [`JobQueueDriver::run`], which it may call: it sleeps only if
    /// `run()` does (with `CONFIG_DEBUG_ATOMIC_SLEEP`, `might_sleep()` checks the context). The
    /// caller may hold locks (reservation locks, for example) as long as `run()` and
    /// [`JobQueueDriver::set_deadline`] take none of them; a job that will not run is
    /// dropped by the work item, never under the caller's locks. From a [`JobQueueDriver`]
    /// method of the same queue the job waits for the work item (no direct run).
    pub fn submit(self) -> ARef<Fence> {
        // The context check only: on `PREEMPT_VOLUNTARY` kernels `might_sleep()` also offers a
        // reschedule point, which a submission path of a busy ring does not need.
        #[cfg(CONFIG_DEBUG_ATOMIC_SLEEP)]
        crate::task::might_sleep();
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; we take each field out once.
        let mut node = ManuallyDrop::into_inner(unsafe { ptr::read(&this.node) });
        // SAFETY: As above.
        let alloc = ManuallyDrop::into_inner(unsafe { ptr::read(&this.alloc) });
        // SAFETY: As above.
        let queue = unsafe { ptr::read(&this.queue) };

        let done = {
            let mut st = queue.state.lock();
            // Creating the fence under the lock makes seqno order the submission order. It
            // takes the seqno `st.next_seqno`, whose slots were reserved at prepare.
            let fence = queue.ctx.new_fence(alloc);
            let seqno = fence.as_fence().seqno();
            let done = fence.fence();
            // Under the lock: before the work item can see the job.
            queue.trace_job(
                JobEvent::Queue,
                seqno,
                st.stats.pending + 1,
                st.credits_in_use,
            );
            queue.trace_deps(seqno, node.deps.iter().map(|d| &**d));
            *node.as_mut().project().fence = Some(fence);
            // In seqno order: appended under the state lock, like the seqno was taken.
            queue.pending.lock().push_back(node);
            // INVARIANT: The job is pending: it is in `pending`, at `next_seqno`.
            st.next_seqno = seqno + 1;
            st.stats.submitted += 1;
            st.stats.pending += 1;
            let previous = st.last_submitted.replace(done.clone());
            drop(st);
            // Outside the lock: this may be the last reference to an old fence.
            drop(previous);
            done
        };
        if queue.run_direct() {
            queue.as_arc_borrow().kick();
        }
        // May be the last reference (the queue's handle is gone): never freed here.
        Inner::release(queue);
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
            self.queue.inflight.lock().release(idx);
        }
        // SAFETY: Dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.node) };
        // SAFETY: Dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.alloc) };
    }
}

/// The pending jobs after the first, in seqno order: a list through [`JobNode::next`], so that
/// submitting and running a job take no XArray operation and never allocate.
///
/// # Invariants
///
/// `last` is null if `first` is `None`, else it points to the last node of the chain that
/// starts at `first` (owned by that chain, so valid and pinned while it is in it).
pub(super) struct Pending<D: JobQueueDriver> {
    first: Option<Pin<KBox<JobNode<D>>>>,
    last: *mut JobNode<D>,
}

// SAFETY: `last` only points into the nodes the list owns; the list is only used under its
// lock, and the nodes are `Send` (the driver's job is).
unsafe impl<D: JobQueueDriver> Send for Pending<D> {}

impl<D: JobQueueDriver> Pending<D> {
    pub(super) fn new() -> Self {
        // INVARIANT: Empty.
        Self {
            first: None,
            last: ptr::null_mut(),
        }
    }

    /// Appends `node`. Never allocates.
    pub(super) fn push_back(&mut self, mut node: Pin<KBox<JobNode<D>>>) {
        // SAFETY: Only the address is taken; the node is not moved out of its pin.
        let raw: *mut JobNode<D> = unsafe { Pin::get_unchecked_mut(node.as_mut()) };
        if self.last.is_null() {
            self.first = Some(node);
        } else {
            // SAFETY: By the type invariant `last` is the valid last node of the chain; `next`
            // is not structurally pinned.
            unsafe { (*self.last).next = Some(node) };
        }
        // INVARIANT: `raw` is the new last node, owned by the chain.
        self.last = raw;
    }

    /// Takes the first job off the list.
    pub(super) fn pop_front(&mut self) -> Option<Pin<KBox<JobNode<D>>>> {
        let mut node = self.first.take()?;
        self.first = node.as_mut().project().next.take();
        if self.first.is_none() {
            // INVARIANT: Empty again.
            self.last = ptr::null_mut();
        }
        Some(node)
    }
}

impl<D: JobQueueDriver> Drop for Pending<D> {
    fn drop(&mut self) {
        // One node at a time: dropping the chain recursively could overflow the stack.
        while self.pop_front().is_some() {}
    }
}
