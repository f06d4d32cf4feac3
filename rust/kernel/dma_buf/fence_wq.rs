// SPDX-License-Identifier: GPL-2.0

//! Workqueues for work on the fence signalling path.
//!
//! Work that a dma_fence waits for (running a job, handling its timeout, resetting a ring)
//! must not allocate with reclaim or wait for anything that does, and it must make progress
//! under memory pressure. A [`FenceWorkqueue`] is always `WQ_MEM_RECLAIM` (it has a rescuer
//! thread), and it only accepts work items that implement [`SignallingWorkItem`], whose `run`
//! the kernel calls inside a fence signalling section
//! ([`SignallingSection`](super::SignallingSection)): lockdep then checks everything it does.
//!
//! One queue is meant to be shared by many users (for example all the job queues of a device),
//! through an [`Arc`]: a user adds no thread and no `alloc_workqueue()` call.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::SignallingSection;
use crate::{
    prelude::*,
    sync::Arc,
    time::Jiffies,
    workqueue::{
        flags,
        HasDelayedWork,
        HasWork,
        OwnedQueue,
        Queue,
        RawDelayedWorkItem,
        RawWorkItem,
        WorkItem,
        WorkItemPointer, //
    },
};

/// A work item that runs on the fence signalling path.
///
/// Implementing this trait implements [`WorkItem`] for the type, with a `run` that begins a
/// fence signalling section and hands it to [`SignallingWorkItem::run`]: a type cannot have
/// both, so a work item accepted by a [`FenceWorkqueue`] always starts in a signalling
/// section.
///
/// # Context
///
/// `run` is called in process context, inside the section it is handed. Everything it does
/// until it drops the section is on the signalling path of some fence: it must not allocate
/// with reclaim, take a lock held anywhere while allocating, or wait for a fence. It may end
/// the section early by dropping `section`, to release what is not on that path (for example
/// driver objects whose drop may allocate or take such locks); it must not start a new one to
/// get around this.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{FenceWorkqueue, SignallingSection, SignallingWorkItem};
/// use kernel::sync::Arc;
/// use kernel::workqueue::{impl_has_work, new_work, Work};
///
/// #[pin_data]
/// struct Reset {
///     #[pin]
///     work: Work<Reset>,
/// }
///
/// impl_has_work! {
///     impl HasWork<Self> for Reset { self.work }
/// }
///
/// impl SignallingWorkItem for Reset {
///     type Pointer = Arc<Self>;
///
///     fn run(_this: Arc<Self>, _section: SignallingSection) {
///         pr_info!("resetting the ring, inside a signalling section\n");
///     }
/// }
///
/// let wq = FenceWorkqueue::new_ordered(c"reset-domain")?;
/// let reset = Arc::pin_init(pin_init!(Reset { work <- new_work!("Reset::work") }), GFP_KERNEL)?;
/// let _ = wq.enqueue(reset);
/// # Ok::<(), Error>(())
/// ```
pub trait SignallingWorkItem<const ID: u64 = 0> {
    /// The pointer type the work item is queued as, typically `Arc<Self>`.
    type Pointer: WorkItemPointer<ID>;

    /// Runs the work item, inside `section`.
    fn run(this: Self::Pointer, section: SignallingSection);
}

impl<T, const ID: u64> WorkItem<ID> for T
where
    T: SignallingWorkItem<ID>,
{
    type Pointer = <T as SignallingWorkItem<ID>>::Pointer;

    fn run(this: Self::Pointer) {
        <T as SignallingWorkItem<ID>>::run(this, SignallingSection::begin());
    }
}

/// A shared `WQ_MEM_RECLAIM` workqueue for [`SignallingWorkItem`]s.
///
/// The ordered flavour ([`FenceWorkqueue::new_ordered`]) runs one work item at a time, in
/// queueing order, system-wide: sharing one between several users serialises their work, for
/// example the timeout handlers (ring resets) of all the queues of one reset domain. The
/// unordered flavour ([`FenceWorkqueue::new`]) runs work items concurrently (unbound, up to the
/// default limit).
///
/// Dropping the last reference destroys the workqueue, after draining it; from a work item
/// (maybe one of its own) the destruction is left to a system worker. Delayed work must own a
/// reference to the queue (see [`FenceWorkqueue::enqueue_delayed`]).
pub struct FenceWorkqueue {
    wq: OwnedQueue,
    ordered: bool,
}

impl FenceWorkqueue {
    /// Allocates an unordered fence workqueue named `name`.
    pub fn new(name: &CStr) -> Result<Arc<Self>> {
        let wq = OwnedQueue::new(name, flags::MEM_RECLAIM | flags::UNBOUND, 0)?;
        Ok(Arc::new(Self { wq, ordered: false }, GFP_KERNEL)?)
    }

    /// Allocates an ordered fence workqueue named `name`: one work item at a time, in
    /// queueing order (`alloc_ordered_workqueue()`).
    pub fn new_ordered(name: &CStr) -> Result<Arc<Self>> {
        let wq = OwnedQueue::new(
            name,
            flags::MEM_RECLAIM | flags::UNBOUND | crate::bindings::wq_flags___WQ_ORDERED,
            1,
        )?;
        Ok(Arc::new(Self { wq, ordered: true }, GFP_KERNEL)?)
    }

    /// Returns whether this is the ordered flavour.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Queues a work item; gives it back if it was already queued.
    pub fn enqueue<T, const ID: u64>(&self, w: Arc<T>) -> Result<(), Arc<T>>
    where
        T: SignallingWorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID> + Send + Sync + 'static,
        Arc<T>: RawWorkItem<ID, EnqueueOutput = Result<(), Arc<T>>>,
    {
        self.wq.enqueue(w)
    }

    /// Queues a delayed work item, to run after `delay`; gives it back if it was already
    /// queued.
    ///
    /// # Safety
    ///
    /// The work item must run or be cancelled before the queue is dropped: for example, `w`
    /// owns a reference to this queue, so that the queue cannot be dropped while the timer is
    /// pending.
    pub unsafe fn enqueue_delayed<T, const ID: u64>(
        &self,
        w: Arc<T>,
        delay: Jiffies,
    ) -> Result<(), Arc<T>>
    where
        T: SignallingWorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
        Arc<T>: RawDelayedWorkItem<ID> + RawWorkItem<ID, EnqueueOutput = Result<(), Arc<T>>>,
    {
        // SAFETY: Forwarded from the caller.
        unsafe { self.wq.enqueue_delayed(w, delay) }
    }

    /// The C workqueue, which stays valid until `self` is dropped and every work item queued on
    /// it has run.
    pub fn raw_queue(&self) -> *const Queue {
        self.wq.raw_queue()
    }
}
