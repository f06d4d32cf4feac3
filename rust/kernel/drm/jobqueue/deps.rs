// SPDX-License-Identifier: GPL-2.0

//! Dependencies: the head job waits for one unsignalled dependency at a time.
//!
//! Only the work item polls dependencies, for the first pending job only, and it holds no
//! queue lock while doing so: a dependency's lock is never taken inside a queue lock (a
//! callback on that fence may look at the queue's counters, and a fence whose `signaled` op
//! signals it inline runs all its callbacks right there).

use super::{
    job::JobNode,
    Inner,
    JobQueueDriver, //
};
use crate::{
    bindings,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
    types::Opaque,
};
use core::{
    pin::Pin,
    ptr, //
};

/// What the callback finds from its `dma_fence_cb` pointer.
#[repr(C)]
struct DepRaw<D: JobQueueDriver> {
    /// First, so that the callback finds the rest from the `dma_fence_cb` pointer.
    cb: bindings::dma_fence_cb,
    /// While the callback is registered: a reference to the queue, from `Arc::into_raw`. The
    /// callback, or the work item when it removes the callback, takes it back.
    queue: *const Inner<D>,
}

/// A job's dependency callback slot.
///
/// # Invariants
///
/// `armed` is `true` exactly when `raw.cb` is registered on `JobNode::deps[next_dep]` or is
/// being called by that fence's signaller; `raw.queue` then owns a reference to the queue.
#[pin_data]
pub(super) struct DepWait<D: JobQueueDriver> {
    /// Inside an [`Opaque`]: the C fence code and the callback use it while the work item
    /// holds `&mut` to the node.
    #[pin]
    raw: Opaque<DepRaw<D>>,
    armed: bool,
}

impl<D: JobQueueDriver> DepWait<D> {
    pub(super) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            raw: Opaque::new(DepRaw {
                // SAFETY: All-zero is a valid (unlinked, no function) `dma_fence_cb`;
                // `dma_fence_add_callback()` initialises it before use.
                cb: unsafe { core::mem::zeroed() },
                queue: ptr::null(),
            }),
            armed: false,
        })
    }

    fn cb(&self) -> *mut bindings::dma_fence_cb {
        // SAFETY: `raw` is a valid `DepRaw`; this only computes a field address.
        unsafe { &raw mut (*self.raw.get()).cb }
    }
}

impl<D: JobQueueDriver> Inner<D> {
    /// Checks the dependencies of the head job, arming the callback on the first unsignalled
    /// one. Returns `true` when all have signalled (a failed one included).
    ///
    /// Called by the work item, with no queue lock held.
    pub(super) fn poll_deps(self: &Arc<Self>, node: Pin<&mut JobNode<D>>) -> bool {
        let n = node.project();
        // SAFETY: Only `armed` is touched through this reference; the callback slot itself is
        // reached through raw pointers and stays in place.
        let wait = unsafe { n.wait.get_unchecked_mut() };
        let cb = wait.cb();
        while *n.next_dep < n.deps.len() {
            let dep = &n.deps[*n.next_dep];
            if wait.armed {
                if !dep.is_signaled() {
                    return false;
                }
                // The dependency signalled. Its callback list is being (or has been) walked by
                // the signaller under the fence lock; removing takes that lock, so afterwards
                // the signaller is done with `cb` and it may be registered again.
                // SAFETY: `cb` was registered on `dep` and both are valid.
                let removed = unsafe { bindings::dma_fence_remove_callback(dep.as_raw(), cb) };
                if removed {
                    // The callback did not run: its queue reference is ours again.
                    // SAFETY: `queue` came from `Arc::into_raw` when arming, and the callback,
                    // which would have taken it, is no longer registered.
                    drop(unsafe { Arc::from_raw((*wait.raw.get()).queue) });
                }
                // INVARIANT: Removed, or the callback ran and took its reference.
                wait.armed = false;
            }
            match dep.status() {
                Some(Ok(())) => *n.next_dep += 1,
                Some(Err(e)) => {
                    // The job will not run, but its fence still waits for the others: it
                    // must not signal before what it depended on.
                    n.dep_error.get_or_insert(e);
                    *n.next_dep += 1;
                }
                None => {
                    let queue = Arc::into_raw(self.clone());
                    // SAFETY: Nobody else uses `raw` while the callback is not registered.
                    unsafe { (*wait.raw.get()).queue = queue };
                    // SAFETY: `cb` lives in the pinned node, which the work item keeps (in
                    // `Inner::head`) until the callback is removed or has run.
                    let ret = unsafe {
                        bindings::dma_fence_add_callback(
                            dep.as_raw(),
                            cb,
                            Some(Self::dependency_signalled),
                        )
                    };
                    if ret == 0 {
                        // INVARIANT: Registered, owning the reference in `queue`.
                        wait.armed = true;
                        return false;
                    }
                    // `-ENOENT`: it signalled meanwhile; take the reference back and look at
                    // its status again.
                    // SAFETY: From `Arc::into_raw` above; the callback was not registered.
                    drop(unsafe { Arc::from_raw(queue) });
                }
            }
        }
        true
    }

    /// The dependency callback: queues the work item.
    ///
    /// # Safety
    ///
    /// `cb` must be the `cb` field of a live `DepRaw<D>` whose `queue` owns a reference to the
    /// queue (see [`DepWait`]'s invariants).
    unsafe extern "C" fn dependency_signalled(
        _fence: *mut bindings::dma_fence,
        cb: *mut bindings::dma_fence_cb,
    ) {
        // `cb` is the first field of the `repr(C)` `DepRaw<D>`.
        let raw = cb.cast::<DepRaw<D>>();
        // SAFETY: By the safety requirements `raw` is alive and `queue` came from
        // `Arc::into_raw`; the work item does not touch it while the callback is registered.
        let queue = unsafe { Arc::from_raw((*raw).queue) };
        let borrowed: ArcBorrow<'_, Self> = queue.as_arc_borrow();
        borrowed.kick();
        // Never the last reference: the queued work item holds one.
        drop(queue);
    }
}
