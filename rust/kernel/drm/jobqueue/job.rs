// SPDX-License-Identifier: GPL-2.0

//! Jobs: prepare (the fallible phase) and submit (the point of no return).

use super::{
    deps::DepWait,
    trace::JobEvent,
    Inner,
    JobMeta,
    JobQueue,
    JobQueueDriver, //
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
        DriverFenceAllowedData,
        DriverFenceRef,
        Fence,
        SignallingSection, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    },
    types::ForeignOwnable,
};
use core::{
    cell::UnsafeCell,
    ffi::c_void,
    marker::PhantomData,
    mem::{
        ManuallyDrop,
        MaybeUninit, //
    },
    ops::Deref,
    pin::Pin,
    ptr::{
        self,
        NonNull, //
    },
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
    pub(super) fence: Option<DriverFence<JobData<D>>>,
    /// Dependencies: one per fence context, the latest of each.
    pub(super) deps: KVec<ARef<Fence>>,
    /// Index in `deps` of the first dependency not known to have signalled (`deps` holds at
    /// most `u32::MAX` fences: [`PreparedJob::add_dependency`]).
    pub(super) next_dep: u32,
    /// The first dependency error seen.
    pub(super) dep_error: Option<Error>,
    /// The deadline (monotonic ns) last forwarded to `deps[next_dep]`, or `i64::MAX`.
    pub(super) deadline_sent: i64,
    /// The next job in [`Pending`], while this one is in it.
    next: Option<NodeBox<D>>,
}

/// Per-job data in the done fence's allocation: the job's metadata, the room for its
/// [`JobNode`], so that a job costs one allocation, and its link in [`InFlight`].
///
/// The node lives there from prepare until the run path is done with the job; its memory stays
/// allocated until the fence's last reference is gone. Only the job's [`NodeBox`] reaches it.
pub(super) struct JobData<D: JobQueueDriver> {
    meta: JobMeta,
    node: UnsafeCell<MaybeUninit<JobNode<D>>>,
    /// The next job in [`InFlight`] (a pointer from [`ForeignOwnable::into_foreign`]), or
    /// null. Only the list that owns this fence touches it.
    next: UnsafeCell<*mut c_void>,
}

impl<D: JobQueueDriver> Deref for JobData<D> {
    type Target = JobMeta;

    fn deref(&self) -> &JobMeta {
        &self.meta
    }
}

// SAFETY: The node is only reached through its `NodeBox`, which is `Send` like the node; the
// metadata is atomics and plain data; `next` is only used by the `InFlight` list that owns the
// fence, which is `Send`.
unsafe impl<D: JobQueueDriver> Send for JobData<D> {}

// SAFETY: A shared `JobData` only gives access to the metadata (atomics and plain data): the
// node is only reached through its `NodeBox`, and `next` through the `InFlight` list that
// owns the fence (under the queue's state lock), never through a shared reference.
unsafe impl<D: JobQueueDriver> Sync for JobData<D> {}

// SAFETY: Dropping a `JobData` does nothing: `JobMeta` has no drop glue, the node is a
// `MaybeUninit` (its `NodeBox` drops it in place, never the fence), and `next` is a raw
// pointer (only a fence taken off its list is ever signalled, and then `next` is null).
unsafe impl<D: JobQueueDriver> DriverFenceAllowedData for JobData<D> {}

/// Owns a job's [`JobNode`], which lives in the job's fence allocation ([`JobData`]).
///
/// # Invariants
///
/// `node` points to an initialised, pinned `JobNode<D>` in the `JobData<D>` of a fence
/// allocation that stays allocated while `self` exists: `keep` holds a reference to the fence
/// once it is live; before that, the [`PreparedJob`] that owns both `self` and the allocation
/// drops `self` first. `self` is the only owner of the node.
pub(super) struct NodeBox<D: JobQueueDriver> {
    node: NonNull<JobNode<D>>,
    keep: Option<ARef<Fence>>,
}

// SAFETY: `NodeBox` owns the node like a `KBox` would; the node is `Send` (the driver's job
// is), and the fence reference is `Send`.
unsafe impl<D: JobQueueDriver> Send for NodeBox<D> {}

impl<D: JobQueueDriver> NodeBox<D> {
    /// The node, pinned.
    pub(super) fn as_mut(&mut self) -> Pin<&mut JobNode<D>> {
        // SAFETY: By the type invariant the node is initialised, pinned and owned by `self`
        // only, so borrowing `self` mutably borrows the node exclusively.
        unsafe { Pin::new_unchecked(self.node.as_mut()) }
    }
}

impl<D: JobQueueDriver> Deref for NodeBox<D> {
    type Target = JobNode<D>;

    fn deref(&self) -> &JobNode<D> {
        // SAFETY: By the type invariant the node is initialised and alive while `self` is.
        unsafe { self.node.as_ref() }
    }
}

impl<D: JobQueueDriver> Drop for NodeBox<D> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the node is initialised and owned by `self` only; it
        // is dropped once, here, in place (it is pinned). Its memory stays allocated until
        // `keep` (dropped after this) or the allocation's owner lets it go.
        unsafe { ptr::drop_in_place(self.node.as_ptr()) };
    }
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
    /// uses for its dependencies.
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
        // A kill racing with this is seen by `submit`, whose fence then signals `-ENODEV`.
        if inner.dead.load(Relaxed) != 0 {
            return Err(ENODEV);
        }
        let alloc = DriverFenceAllocation::new(
            JobData {
                meta: JobMeta {
                    credits,
                    started: Atomic::new(0),
                    ran_at: Atomic::new(0),
                    skipped: Atomic::new(0),
                },
                node: UnsafeCell::new(MaybeUninit::uninit()),
                next: UnsafeCell::new(ptr::null_mut()),
            },
            flags,
        )?;
        let slot = alloc.data().node.get().cast::<JobNode<D>>();
        let init = pin_init!(JobNode::<D> {
            wait <- DepWait::new(),
            job: Some(job),
            fence: None,
            deps: KVec::new(),
            next_dep: 0,
            dep_error: None,
            deadline_sent: i64::MAX,
            next: None,
        });
        // SAFETY: `slot` is the uninitialised node of the fresh allocation, which never moves
        // (it is pinned) and which nothing else reaches.
        unsafe { pin_init::raw_init(slot, init) };
        // INVARIANT: The node is initialised and pinned in `alloc`, which `PreparedJob` drops
        // after `node`; nothing else reaches it.
        let node = NodeBox {
            // SAFETY: `slot` points into a live allocation, so it is not null.
            node: unsafe { NonNull::new_unchecked(slot) },
            keep: None,
        };
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
/// Dropping it instead of submitting frees it: nothing was published, and no seqno was taken.
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
    /// Dropped before `alloc`, in whose memory it lives.
    pub(super) node: ManuallyDrop<NodeBox<D>>,
    pub(super) alloc: ManuallyDrop<DriverFenceAllocation<JobData<D>>>,
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
    ///
    /// Fails with `ENOMEM` if out of memory, `E2BIG` past `u32::MAX` dependencies; the job is
    /// left as it was.
    pub fn add_dependency(&mut self, fence: ARef<Fence>) -> Result {
        let node = self.node.as_mut().project();
        // Lock-free: `is_signaled()` signals a fence whose driver says it is done, and
        // `signalled_status()` then reads its error without its lock.
        if fence.is_signaled() {
            if let Some(Err(e)) = fence.signalled_status() {
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
        if node.deps.len() >= u32::MAX as usize {
            return Err(E2BIG);
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
    /// If no work item or other submitter is calling the driver, the first pending job (this
    /// one, or an earlier one) is handed to [`JobQueueDriver::run`] right here if its
    /// dependencies have signalled and the ring has the credits, inside a signalling section,
    /// with no workqueue hop (the direct run); otherwise the queue's work item takes it.
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

        // The driver lock first (lock order): if no work item or other submitter holds it, the
        // job may go to the ring right here (the direct run), inside a signalling section that
        // begins before the state lock, which the direct run goes on holding.
        let driver = queue.driver_lock.try_lock();
        let mut section = driver.as_ref().map(|_| SignallingSection::begin());
        let (done, kick) = {
            let mut st = queue.state.lock();
            // Creating the fence under the lock makes seqno order the submission order. It
            // takes the seqno `st.next_seqno`.
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
            // INVARIANT: From now on the fence keeps the node's memory allocated.
            node.keep = Some(done.clone());
            // In seqno order: appended under the state lock, like the seqno was taken.
            st.pending.push_back(node);
            // INVARIANT: The job is pending: it is in `pending`, at `next_seqno`.
            st.next_seqno = seqno + 1;
            st.stats.submitted += 1;
            st.stats.pending += 1;
            let kick = match (driver, section.as_mut()) {
                (Some(driver), Some(section)) => queue.run_direct(driver, st, section),
                _ => {
                    drop(st);
                    true
                }
            };
            (done, kick)
        };
        if kick {
            queue.as_arc_borrow().kick();
        }
        drop(section);
        // May be the last reference (the queue's handle is gone): never freed here.
        Inner::release(queue);
        done
    }
}

impl<D: JobQueueDriver> Drop for PreparedJob<D> {
    fn drop(&mut self) {
        // SAFETY: Dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.node) };
        // SAFETY: Dropped once, here.
        unsafe { ManuallyDrop::drop(&mut self.alloc) };
    }
}

/// The pending jobs after the first, in seqno order: a list through [`JobNode::next`], so that
/// submitting a job and taking it to the ring never allocate and index nothing.
///
/// # Invariants
///
/// `last` is null if `first` is `None`, else it points to the last node of the chain that
/// starts at `first` (owned by that chain, so valid and pinned while it is in it).
pub(super) struct Pending<D: JobQueueDriver> {
    first: Option<NodeBox<D>>,
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
    pub(super) fn push_back(&mut self, mut node: NodeBox<D>) {
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

    /// The done fence of the last job, if there is one.
    pub(super) fn last_fence(&self) -> Option<ARef<Fence>> {
        if self.last.is_null() {
            return None;
        }
        // SAFETY: By the type invariant `last` is the valid last node of the chain, which
        // `&self` keeps in it while the reference lives.
        let node = unsafe { &*self.last };
        node.fence.as_ref().map(|f| f.fence())
    }

    /// Takes the first job off the list.
    pub(super) fn pop_front(&mut self) -> Option<NodeBox<D>> {
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

/// The done fences of the jobs in flight, in seqno order: a list through [`JobData::next`], so
/// that running and completing a job never allocate and index nothing. The ring finishes jobs
/// in order, so completion only ever takes the front.
///
/// # Invariants
///
/// `first` is null or a pointer from [`ForeignOwnable::into_foreign`] of a
/// `DriverFence<JobData<D>>` the list owns, whose `next` is null or the next fence the list
/// owns, and so on; `last` is null if `first` is, else the last fence of that chain. A fence
/// is owned by at most one list, and a fence in no list has a null `next`. The list, and the
/// `next` of its fences, are only used under the state lock of the queue whose `State` holds
/// it.
pub(super) struct InFlight<D: JobQueueDriver> {
    first: *mut c_void,
    last: *mut c_void,
    _p: PhantomData<DriverFence<JobData<D>>>,
}

// SAFETY: The list owns its fences, which are `Send`; the raw pointers only point to them.
unsafe impl<D: JobQueueDriver> Send for InFlight<D> {}

// Moving the list moves two pointers, never the fences.
impl<D: JobQueueDriver> Unpin for InFlight<D> {}

impl<D: JobQueueDriver> InFlight<D> {
    pub(super) fn new() -> Self {
        // INVARIANT: Empty.
        Self {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            _p: PhantomData,
        }
    }

    /// Borrows the fence `raw` of the list.
    ///
    /// # Safety
    ///
    /// `raw` is a fence of the list (`first` or a `next` of the chain), and the borrow is not
    /// used after that fence leaves the list.
    unsafe fn borrow<'a>(raw: *mut c_void) -> DriverFenceRef<'a, JobData<D>> {
        // SAFETY: By the type invariant `raw` came from `into_foreign` and the list owns it;
        // the caller does not use the borrow after the list gives the fence up.
        unsafe { DriverFence::<JobData<D>>::borrow(raw) }
    }

    /// Appends `fence`. Never allocates.
    pub(super) fn push_back(&mut self, fence: DriverFence<JobData<D>>) {
        let raw = fence.into_foreign();
        if self.last.is_null() {
            self.first = raw;
        } else {
            // SAFETY: `last` is the last fence of the list (type invariant), borrowed only here.
            let last = unsafe { Self::borrow(self.last) };
            // SAFETY: Only the list that owns the fence touches its `next`, and we hold the
            // list mutably. Its `next` was null: it was the last.
            unsafe { *last.data().next.get() = raw };
        }
        // INVARIANT: `raw`, whose `next` is null (it was in no list), is the new last fence.
        self.last = raw;
    }

    /// Takes the first fence off the list.
    pub(super) fn pop_front(&mut self) -> Option<DriverFence<JobData<D>>> {
        if self.first.is_null() {
            return None;
        }
        // SAFETY: By the type invariant `first` came from `into_foreign` and the list owns it;
        // it gives it up here.
        let fence = unsafe { DriverFence::<JobData<D>>::from_foreign(self.first) };
        let link = fence.data().next.get();
        // SAFETY: The fence was the list's (we hold it mutably); only the list touches `next`.
        self.first = unsafe { *link };
        // INVARIANT: The fence is in no list now: its `next` is null.
        // SAFETY: As above.
        unsafe { *link = ptr::null_mut() };
        if self.first.is_null() {
            // INVARIANT: Empty again.
            self.last = ptr::null_mut();
        }
        Some(fence)
    }

    /// The fences, from the first.
    pub(super) fn iter(&self) -> impl Iterator<Item = DriverFenceRef<'_, JobData<D>>> {
        let mut cur = self.first;
        core::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            // SAFETY: `cur` is a fence of the list (the chain from `first`), which `&self`
            // keeps in it while the borrow lives.
            let f = unsafe { Self::borrow(cur) };
            // SAFETY: Only the list touches `next`, and it is borrowed shared: nothing writes.
            cur = unsafe { *f.data().next.get() };
            Some(f)
        })
    }

    /// The first fence.
    pub(super) fn front(&self) -> Option<DriverFenceRef<'_, JobData<D>>> {
        self.iter().next()
    }

    /// The last fence.
    pub(super) fn back(&self) -> Option<DriverFenceRef<'_, JobData<D>>> {
        if self.last.is_null() {
            return None;
        }
        // SAFETY: `last` is the last fence of the list (type invariant), which `&self` keeps
        // in it while the borrow lives.
        Some(unsafe { Self::borrow(self.last) })
    }
}

impl<D: JobQueueDriver> Drop for InFlight<D> {
    fn drop(&mut self) {
        // Unreachable with fences in it: the teardown signals every job in flight. Each
        // `DriverFence` dropped here warns and signals `-ECANCELED`, so nothing hangs.
        while self.pop_front().is_some() {}
    }
}
