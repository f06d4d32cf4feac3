// SPDX-License-Identifier: GPL-2.0

//! Callbacks on DMA fences.
//!
//! C header: [`include/linux/dma-fence.h`](srctree/include/linux/dma-fence.h)

use super::Fence;
use crate::{
    bindings,
    error::to_result,
    prelude::*,
    sync::aref::ARef,
    types::Opaque, //
};
use core::{
    cell::UnsafeCell,
    pin::Pin, //
};

/// A callback run when a fence signals.
///
/// [`called`](FenceCb::called) consumes the callback: it runs at most once, and it owns its
/// state, so it can move things out of it: for example signal a [`DriverFence`] it carries,
/// hand a job to a queue, or drop a reference. (A reviewer of the first posting asked for
/// this; the alternative, `&mut self`, left callbacks holding resources they could only give
/// up through interior mutability.) If the registration is dropped or cancelled before the
/// fence signals, the callback is not called and is dropped or handed back instead.
///
/// [`DriverFence`]: super::DriverFence
///
/// # Context
///
/// `called` runs in the context of whoever signals the fence: possibly hard interrupt context,
/// always with the fence's spinlock held and interrupts disabled, and inside that thread's
/// fence signalling critical section. It must not sleep, allocate with reclaim, or touch the
/// fence's lock (for example by registering a callback on the same fence). Dropping the
/// callback state there must be just as safe. Any lock it takes must be taken with interrupts
/// disabled everywhere (for example a [`SpinLockIrq`](crate::sync::SpinLockIrq)), because
/// fences are signalled from interrupt handlers.
///
/// The callback is `'static`: a registration can be leaked (with `core::mem::forget`), and the
/// callback then runs whenever the fence signals, possibly long after its creator returned.
///
/// It must not signal another fence directly either: the inline locks of all fences share one
/// lockdep class, so signalling from a callback nests two of them and lockdep reports possible
/// recursive locking. Hand the work to a work item or an irq_work instead, as the C
/// `dma_fence_array` does.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::FenceCb;
/// use kernel::sync::atomic::{Atomic, Relaxed};
///
/// struct CountOnSignal(&'static Atomic<u32>);
///
/// impl FenceCb for CountOnSignal {
///     fn called(self) {
///         self.0.fetch_add(1, Relaxed);
///     }
/// }
/// ```
pub trait FenceCb: Send + 'static {
    /// Called once, when the fence signals.
    fn called(self);
}

/// Why registering a callback failed.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{CallbackError, FenceCb, FenceCbRegistration, Fence};
///
/// struct Cb(u32);
/// impl FenceCb for Cb {
///     fn called(self) {}
/// }
///
/// match KBox::try_pin_init(FenceCbRegistration::new(Fence::stub(), Cb(3)), GFP_KERNEL) {
///     Err(CallbackError::AlreadySignaled(cb)) => assert_eq!(cb.0, 3),
///     _ => return Err(EINVAL),
/// }
/// // As a plain kernel error it is `ENOENT`, like `dma_fence_add_callback()`.
/// let e: Error = CallbackError::AlreadySignaled(Cb(4)).into();
/// assert_eq!(e, ENOENT);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub enum CallbackError<T> {
    /// The fence had already signalled; here is the callback back, not called.
    AlreadySignaled(T),
    /// Another error, such as running out of memory for the registration.
    Other(Error),
}

impl<T> From<CallbackError<T>> for Error {
    fn from(e: CallbackError<T>) -> Error {
        match e {
            CallbackError::AlreadySignaled(_) => ENOENT,
            CallbackError::Other(e) => e,
        }
    }
}

impl<T> From<crate::alloc::AllocError> for CallbackError<T> {
    fn from(_: crate::alloc::AllocError) -> Self {
        CallbackError::Other(ENOMEM)
    }
}

/// A callback registered on a fence.
///
/// It is pinned, because the C fence keeps a pointer to it. Dropping it removes the callback
/// if it has not run, and waits for a concurrently running callback to finish (by taking the
/// fence's lock), so the callback never outlives the registration.
///
/// # Invariants
///
/// - `cb` was passed to `dma_fence_add_callback()` on `fence`, which succeeded.
/// - `callback` holds the callback until `called` takes it (under the fence's lock), or until
///   [`Self::cancel`] or drop take it after removing `cb` from the fence.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{CallbackError, DriverFenceAllocation, FenceCb, FenceCbRegistration,
///     FenceCtx};
/// use kernel::sync::atomic::{Atomic, Relaxed};
///
/// static CALLS: Atomic<u32> = Atomic::new(0);
/// struct Cb;
/// impl FenceCb for Cb {
///     fn called(self) {
///         CALLS.fetch_add(1, Relaxed);
///     }
/// }
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let fence = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let reg = KBox::try_pin_init(FenceCbRegistration::new(fence.fence(), Cb), GFP_KERNEL)?;
/// let _ = fence.signal(Ok(()));
/// assert_eq!(CALLS.load(Relaxed), 1);
/// drop(reg);
///
/// // On a signalled fence, registration hands the callback back.
/// let err = KBox::try_pin_init(FenceCbRegistration::new(kernel::dma_buf::Fence::stub(), Cb),
///     GFP_KERNEL);
/// assert!(matches!(err, Err(CallbackError::AlreadySignaled(Cb))));
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct FenceCbRegistration<T: FenceCb> {
    #[pin]
    cb: Opaque<bindings::dma_fence_cb>,
    callback: UnsafeCell<Option<T>>,
    fence: ARef<Fence>,
}

// SAFETY: The callback state is only touched under the fence's lock or after the callback was
// removed; it moves to the signalling thread, which `T: Send` allows.
unsafe impl<T: FenceCb> Send for FenceCbRegistration<T> {}
// SAFETY: `&FenceCbRegistration` gives no access to `T`.
unsafe impl<T: FenceCb> Sync for FenceCbRegistration<T> {}

impl<T: FenceCb> FenceCbRegistration<T> {
    /// Registers `callback` on `fence`, to be called when it signals.
    ///
    /// Takes the fence reference by value, so a caller that owns one does not pay for another.
    /// If the fence has already signalled, initialisation fails with
    /// [`CallbackError::AlreadySignaled`], which returns the callback unchanged.
    pub fn new(fence: ARef<Fence>, callback: T) -> impl PinInit<Self, CallbackError<T>> {
        // SAFETY: On `Ok` all fields are initialised. On `Err` everything written into the slot
        // has been moved back out or dropped, and the callback is not registered, so the slot
        // may be freed without running `Drop`.
        unsafe {
            pin_init::pin_init_from_closure(move |slot: *mut Self| {
                let cell = (&raw mut (*slot).callback).cast::<Option<T>>();
                cell.write(Some(callback));
                (&raw mut (*slot).fence).write(fence);
                let raw_fence = (*slot).fence.as_raw();
                let ret = to_result(bindings::dma_fence_add_callback(
                    raw_fence,
                    Opaque::cast_into(&raw const (*slot).cb),
                    Some(Self::callback),
                ));
                match ret {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        core::ptr::drop_in_place(&raw mut (*slot).fence);
                        let cb = cell.read().unwrap_unchecked();
                        if e == ENOENT {
                            Err(CallbackError::AlreadySignaled(cb))
                        } else {
                            Err(CallbackError::Other(e))
                        }
                    }
                }
            })
        }
    }

    /// Called by the C code when the fence signals, with the fence's lock held.
    ///
    /// # Safety
    ///
    /// `cb` must be the `cb` field of a live `FenceCbRegistration<T>`.
    unsafe extern "C" fn callback(
        _fence: *mut bindings::dma_fence,
        cb: *mut bindings::dma_fence_cb,
    ) {
        let cb = Opaque::cast_from(cb);
        // SAFETY: By the safety requirements `cb` is in a live registration, which cannot be
        // freed while we run: its drop takes the fence lock that our caller holds.
        let this = unsafe { crate::container_of!(cb, Self, cb) };
        // SAFETY: We hold the fence lock, which serialises all access to `callback` while the
        // callback is registered.
        let slot = unsafe { &mut *(*this).callback.get().cast::<Option<T>>() };
        if let Some(cb) = slot.take() {
            cb.called();
        }
    }

    /// Returns the fence the callback is registered on.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Removes the callback if it has not run yet, and returns it.
    ///
    /// Returns `None` if the callback has already run (or was already cancelled).
    pub fn cancel(self: Pin<&mut Self>) -> Option<T> {
        // SAFETY: `cb` is registered on `fence` (type invariant). Removing takes the fence's
        // lock, so a concurrent `callback` has finished when this returns.
        unsafe { bindings::dma_fence_remove_callback(self.fence.as_raw(), self.cb.get()) };
        // SAFETY: The callback is no longer registered, so nothing else accesses `callback`.
        unsafe { (*self.callback.get().cast::<Option<T>>()).take() }
    }
}

#[pinned_drop]
impl<T: FenceCb> PinnedDrop for FenceCbRegistration<T> {
    fn drop(self: Pin<&mut Self>) {
        // `cancel` synchronises with a running callback through the fence lock: after it the
        // callback has either run completely or will never run.
        let pending = self.cancel();
        drop(pending);
    }
}

/// The C callback node and the callback of a [`FenceCbSlot`], which the signaller reaches.
#[repr(C)]
struct SlotRaw<T> {
    /// First, so that the C callback finds the rest from the `dma_fence_cb` pointer.
    cb: bindings::dma_fence_cb,
    /// The callback while armed; the signaller takes it.
    callback: Option<T>,
}

/// A callback slot that is armed on one fence at a time, and can be armed again afterwards.
///
/// For a waiter that goes through several fences one after the other, such as a job waiting
/// for its dependencies: the slot lives in the waiter's pinned state, so waiting for the next
/// fence needs no allocation. Unlike [`FenceCbRegistration`], the slot does not know whether
/// the fence has signalled; [`Self::disarm`] tells, and must be called before the slot is armed
/// again (arming an armed slot disarms it first).
///
/// Dropping the slot disarms it; like [`FenceCbRegistration`], that takes the fence's lock,
/// which waits for a callback running on another CPU.
///
/// # Invariants
///
/// - While `fence` is `Some`, `raw.cb` was added to that fence by `dma_fence_add_callback()`
///   and has not been removed: the fence's signaller may take and call `raw.callback` at any
///   time, under the fence's lock.
/// - While `fence` is `None`, the C fence code does not use `raw`.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{CallbackError, DriverFenceAllocation, FenceCb, FenceCbSlot, FenceCtx};
/// use kernel::sync::atomic::{Atomic, Relaxed};
///
/// static CALLS: Atomic<u32> = Atomic::new(0);
/// struct Cb;
/// impl FenceCb for Cb {
///     fn called(self) {
///         CALLS.fetch_add(1, Relaxed);
///     }
/// }
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let a = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let b = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let mut slot = KBox::pin_init(FenceCbSlot::new(), GFP_KERNEL)?;
///
/// let signalled = a.fence();
/// slot.as_mut().arm(a.fence(), Cb).map_err(Error::from)?;
/// let _ = a.signal(Ok(()));
/// assert_eq!(CALLS.load(Relaxed), 1);
/// // The callback ran: nothing to give back.
/// assert!(slot.as_mut().disarm().is_none());
///
/// // Armed again on the next fence, then disarmed before it signals.
/// slot.as_mut().arm(b.fence(), Cb).map_err(Error::from)?;
/// assert!(slot.as_mut().disarm().is_some());
/// let _ = b.signal(Ok(()));
/// assert_eq!(CALLS.load(Relaxed), 1);
///
/// // On a signalled fence, arming hands the callback back.
/// assert!(matches!(
///     slot.as_mut().arm(signalled, Cb),
///     Err(CallbackError::AlreadySignaled(Cb))
/// ));
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct FenceCbSlot<T: FenceCb> {
    /// Inside an [`Opaque`]: the signaller uses it while the owner holds `Pin<&mut Self>`.
    #[pin]
    raw: Opaque<SlotRaw<T>>,
    /// The fence the slot is armed on.
    fence: Option<ARef<Fence>>,
}

// SAFETY: The callback is only touched by the owner while disarmed and under the fence's lock
// while armed; it may move to the signalling thread, which `T: Send` allows.
unsafe impl<T: FenceCb> Send for FenceCbSlot<T> {}
// SAFETY: `&FenceCbSlot` gives no access to `T` or to the C callback node.
unsafe impl<T: FenceCb> Sync for FenceCbSlot<T> {}

impl<T: FenceCb> FenceCbSlot<T> {
    /// Creates a disarmed slot.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            raw: Opaque::new(SlotRaw {
                // SAFETY: All-zero is a valid, unlinked `dma_fence_cb` with no function;
                // `dma_fence_add_callback()` initialises it before use.
                cb: unsafe { core::mem::zeroed() },
                callback: None,
            }),
            fence: None,
        })
    }

    /// Returns the fence the slot is armed on, if any.
    ///
    /// The callback may have run already; only [`Self::disarm`] tells.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_deref()
    }

    /// Returns whether the slot is armed (its callback may or may not have run).
    pub fn is_armed(&self) -> bool {
        self.fence.is_some()
    }

    /// Arms the slot: `callback` is called when `fence` signals.
    ///
    /// An armed slot is disarmed first, dropping its callback if that had not run. If `fence`
    /// has already signalled, the slot stays disarmed and the callback comes back in
    /// [`CallbackError::AlreadySignaled`].
    pub fn arm(
        self: Pin<&mut Self>,
        fence: ARef<Fence>,
        callback: T,
    ) -> Result<(), CallbackError<T>> {
        let mut this = self;
        drop(this.as_mut().disarm());
        let proj = this.project();
        let raw = proj.raw.get();
        // SAFETY: Disarmed, so nothing else uses `raw` (type invariant).
        unsafe { (*raw).callback = Some(callback) };
        // SAFETY: `raw` is pinned; it stays valid until the callback is removed or has run,
        // because disarming (also on drop) removes it first. `fence` is a valid fence.
        let ret = unsafe {
            bindings::dma_fence_add_callback(
                fence.as_raw(),
                &raw mut (*raw).cb,
                Some(Self::callback),
            )
        };
        if ret == 0 {
            // INVARIANT: Added to `fence`.
            *proj.fence = Some(fence);
            return Ok(());
        }
        // Not added, so still ours.
        // SAFETY: The C code did not keep `raw`; nothing else uses it.
        let callback = unsafe { (*raw).callback.take() };
        match callback {
            Some(cb) if ret == ENOENT.to_errno() => Err(CallbackError::AlreadySignaled(cb)),
            _ => Err(CallbackError::Other(Error::from_errno(ret))),
        }
    }

    /// Disarms the slot, returning the callback if it had not run.
    ///
    /// Takes the fence's lock, so a callback running on another CPU has finished when this
    /// returns. Returns `None` on a disarmed slot.
    pub fn disarm(self: Pin<&mut Self>) -> Option<T> {
        let proj = self.project();
        let fence = proj.fence.take()?;
        let raw = proj.raw.get();
        // SAFETY: `cb` was added to `fence` (type invariant). Removing it takes the fence's
        // lock, which the signaller holds while calling it: afterwards it is not running.
        unsafe { bindings::dma_fence_remove_callback(fence.as_raw(), &raw mut (*raw).cb) };
        // INVARIANT: `fence` is `None` now, and the C code no longer uses `raw`.
        // SAFETY: As above, nothing else uses `raw` any more.
        unsafe { (*raw).callback.take() }
    }

    /// Called by the C code when the fence signals, with the fence's lock held.
    ///
    /// # Safety
    ///
    /// `cb` must be the `cb` field of the `SlotRaw<T>` of an armed `FenceCbSlot<T>`.
    unsafe extern "C" fn callback(
        _fence: *mut bindings::dma_fence,
        cb: *mut bindings::dma_fence_cb,
    ) {
        // `cb` is the first field of the `repr(C)` `SlotRaw<T>`.
        let raw = cb.cast::<SlotRaw<T>>();
        // SAFETY: By the safety requirements the slot is armed, so it is alive until it is
        // disarmed, which takes the fence lock our caller holds; that lock serialises all
        // access to `callback` while armed.
        let callback = unsafe { (*raw).callback.take() };
        if let Some(cb) = callback {
            cb.called();
        }
    }
}

#[pinned_drop]
impl<T: FenceCb> PinnedDrop for FenceCbSlot<T> {
    fn drop(self: Pin<&mut Self>) {
        drop(self.disarm());
    }
}
