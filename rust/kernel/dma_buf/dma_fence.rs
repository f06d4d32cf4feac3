// SPDX-License-Identifier: GPL-2.0

//! DMA fences: timelines, driver-owned fences and refcounted consumer fences.
//!
//! C header: [`include/linux/dma-fence.h`](srctree/include/linux/dma-fence.h)

use crate::{
    alloc::{
        AllocError,
        Flags, //
    },
    bindings,
    ffi::c_char,
    prelude::*,
    str::CString,
    sync::{
        aref::{
            ARef,
            AlwaysRefCounted, //
        },
        atomic::{
            Acquire,
            Atomic,
            Full,
            Relaxed, //
        },
        lock::{
            spinlock::SpinLockIrqBackend,
            Guard, //
        },
        rcu::{
            self,
            RcuBox, //
        },
        Arc,
        ArcBorrow,
        SpinLockIrq, //
    },
    time::{
        msecs_to_jiffies,
        Delta,
        Instant,
        Jiffies,
        Monotonic, //
    },
    types::{
        ForeignOwnable,
        NotThreadSafe,
        Opaque, //
    },
};
use core::{
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::Deref,
    pin::Pin,
    ptr::NonNull, //
};

/// What the C fence code reaches through the fence ops of a timeline: its names and its
/// deadline hook. Freed one RCU grace period after the [`FenceCtx`] is gone.
struct FenceNames {
    driver: CString,
    timeline: CString,
    deadline: Option<Arc<dyn FenceDeadline>>,
}

/// Receives the deadline hints of a timeline's fences (`dma_fence_set_deadline()`).
///
/// A waiter, such as a display driver for the next vblank, asks that a fence signal by a
/// deadline; the fence's owner may then boost clocks or forward the hint to what the work
/// waits for. Hints are advisory: ignoring one breaks nothing. A deadline in the past means
/// "as soon as possible". Several hints may arrive for one fence, or for different fences of
/// the timeline; track the soonest.
///
/// # Context
///
/// [`FenceDeadline::set_deadline`] is called by whoever sets the deadline, in any context in
/// which a `spinlock_t` may be taken (under the RCU read lock, possibly with interrupts off),
/// only for a fence that was unsignalled just before, and possibly concurrently with its
/// signalling. It must not sleep, allocate, or wait; the usual implementation records the
/// deadline and queues a work item. The hook is dropped one RCU grace period after its
/// [`FenceCtx`], from an RCU callback (softirq context): its drop must not sleep either, and a
/// module that defines a hook type must call [`rcu_barrier`](rcu::rcu_barrier) before it is
/// unloaded.
pub trait FenceDeadline: Send + Sync + 'static {
    /// The fence `seqno` of the timeline should signal by `deadline`.
    fn set_deadline(&self, seqno: u64, deadline: Instant<Monotonic>);
}

/// A fence context: one timeline of fences with strictly increasing sequence numbers.
///
/// A `FenceCtx` owns a context number from `dma_fence_context_alloc()` and the driver and
/// timeline names that the C code reports for its fences. Every [`DriverFence`] holds a
/// reference to its context until it signals. The names are freed one RCU grace period after
/// the last reference is gone, so RCU readers that found a fence unsignalled can still read
/// them (see `dma_fence_driver_name()`).
///
/// The fences of a timeline signal in sequence number order, whatever order their
/// [`DriverFence`]s are signalled in: consumers such as `dma_resv` and syncobjs keep only the
/// latest fence per timeline, and take "signalled" to cover the earlier ones. A fence signalled
/// before an earlier one of its timeline waits for it (see [`DriverFence::signal`]).
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{DriverFenceAllocation, FenceCtx};
///
/// let ctx = FenceCtx::new(c"my_driver", c"ring0")?;
/// let a = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let b = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// assert_eq!(a.as_fence().context(), ctx.context());
/// assert!(b.as_fence().seqno() > a.as_fence().seqno());
/// let (fa, fb) = (a.fence(), b.fence());
/// let _ = b.signal(Ok(()));
/// assert!(!fb.is_signaled()); // Waits for `a`.
/// let _ = a.signal(Ok(()));
/// assert!(fa.is_signaled() && fb.is_signaled());
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// While `busy` is set, exactly one thread signals fences of the timeline, outside `order`, in
/// seqno order; it is set only under `order`, by a thread that found it clear with `Acquire`
/// (so after the previous signaller's signals). `more` is cleared only under `order`, by that
/// thread, right before it takes the next run of fences off the list.
#[pin_data(PinnedDrop)]
pub struct FenceCtx {
    context: u64,
    seqno: Atomic<u64>,
    names: ManuallyDrop<RcuBox<FenceNames>>,
    /// The signalling order of the timeline.
    #[pin]
    order: SpinLockIrq<Order>,
    /// A thread signals fences of the timeline, outside `order`: only that one, in order. Set
    /// under `order`; cleared under it, or without it by that thread once it signalled what it
    /// took, so that a lone signal takes the lock once (see `DriverFence::signal_in_order()`).
    busy: Atomic<bool>,
    /// A fence was queued while `busy` was set: the busy thread must look at the list again
    /// before it stops. Written under `order`; read without it by the thread that has just
    /// cleared `busy`.
    more: Atomic<bool>,
}

/// The signalling order of a timeline, protected by `FenceCtx::order`.
///
/// # Invariants
///
/// `next` is the lowest sequence number whose fence has not been taken off the list to be
/// signalled. `deferred` is a list, sorted by sequence number and linked through
/// `FenceHeader::next_deferred`, of fences that were signalled by their owner but are not
/// signalled yet; each holds a reference to its fence and still owns its data and context
/// reference. `last` is null if `deferred` is, else its last entry.
struct Order {
    next: u64,
    deferred: *mut FenceHeader,
    /// The last entry of `deferred`: fences are mostly signalled in order, and are then
    /// appended here without walking the list.
    last: *mut FenceHeader,
}

// SAFETY: The list is only used under the lock; the fences may be signalled from any thread.
unsafe impl Send for Order {}

/// The lockdep class of every timeline's order lock (non-generic, name in a `static`).
#[inline(never)]
fn order_class() -> (&'static CStr, Pin<&'static crate::sync::LockClassKey>) {
    static NAME: &CStr = c"FenceCtx::order";
    (NAME, crate::static_lock_class!())
}

impl FenceCtx {
    /// Creates a new fence context with its own context number.
    pub fn new(driver_name: &CStr, timeline_name: &CStr) -> Result<Arc<Self>> {
        Self::new_inner(driver_name, timeline_name, None)
    }

    /// Creates a new fence context whose fences pass deadline hints
    /// (`dma_fence_set_deadline()`) to `hook`.
    ///
    /// The context holds `hook` until one RCU grace period after the context is gone.
    pub fn new_with_deadline(
        driver_name: &CStr,
        timeline_name: &CStr,
        hook: Arc<dyn FenceDeadline>,
    ) -> Result<Arc<Self>> {
        Self::new_inner(driver_name, timeline_name, Some(hook))
    }

    fn new_inner(
        driver_name: &CStr,
        timeline_name: &CStr,
        deadline: Option<Arc<dyn FenceDeadline>>,
    ) -> Result<Arc<Self>> {
        let names = RcuBox::new(
            FenceNames {
                driver: CString::try_from(driver_name)?,
                timeline: CString::try_from(timeline_name)?,
                deadline,
            },
            GFP_KERNEL,
        )?;
        let (order_name, order_key) = order_class();
        Arc::pin_init(
            pin_init!(Self {
                // SAFETY: `dma_fence_context_alloc()` only increments a global atomic counter.
                context: unsafe { bindings::dma_fence_context_alloc(1) },
                seqno: Atomic::new(0),
                names: ManuallyDrop::new(names),
                order <- SpinLockIrq::new(
                    Order {
                        next: 1,
                        deferred: core::ptr::null_mut(),
                        last: core::ptr::null_mut(),
                    },
                    order_name,
                    order_key,
                ),
                busy: Atomic::new(false),
                more: Atomic::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// Returns the context number shared by every fence of this timeline.
    pub fn context(&self) -> u64 {
        self.context
    }

    /// Returns the driver name of this timeline's fences.
    pub fn driver_name(&self) -> &CStr {
        &self.names.driver
    }

    /// Returns the timeline name of this timeline's fences.
    pub fn timeline_name(&self) -> &CStr {
        &self.names.timeline
    }

    /// Turns a pre-allocated fence into a live, unsignalled [`DriverFence`] on this timeline.
    ///
    /// This never allocates and never fails, so it can be used on paths that must not
    /// allocate, such as a job submission after its point of no return. Each call takes the
    /// next sequence number; sequence numbers rise strictly, also under concurrent calls, and
    /// are compared as 64-bit numbers (`dma_fence_init64()`).
    ///
    /// The fences of one timeline signal in sequence number order (see [`FenceCtx`]).
    pub fn new_fence<T>(self: &Arc<Self>, alloc: DriverFenceAllocation<T>) -> DriverFence<T> {
        let alloc = ManuallyDrop::new(alloc);
        let storage = alloc.storage;
        let seqno = self.seqno.fetch_add(1, Relaxed) + 1;
        let names: *const FenceNames = &**self.names;
        let raw = storage.as_ptr();
        // SAFETY: `raw` points to the live `FenceStorage<T>` owned by `alloc`, which we took
        // over; nothing else accesses it yet.
        unsafe { (*raw).header.names = names };
        // SAFETY: As above.
        unsafe { (*raw).header.finish = finish::<T> };
        // SAFETY: As above. The field was `None` (never initialised as a fence), so overwriting
        // it leaks nothing; cloning an `Arc` does not allocate.
        unsafe { (*raw).ctx = ManuallyDrop::new(Some(self.clone())) };
        // SAFETY: `raw` is valid and its `dma_fence` is not initialised yet. `FENCE_OPS` is a
        // static. A NULL lock selects the fence's inline lock.
        unsafe {
            bindings::dma_fence_init64(
                Opaque::cast_into(&raw const (*raw).header.fence),
                &FENCE_OPS,
                core::ptr::null_mut(),
                self.context,
                seqno,
            )
        };
        // INVARIANT: The fence was just initialised with one reference, which the new
        // `DriverFence` owns; it is unsignalled and `data` and `ctx` are initialised.
        DriverFence {
            storage,
            _p: PhantomData,
        }
    }
}

#[pinned_drop]
impl PinnedDrop for FenceCtx {
    // Not inlined into a module: see below.
    #[inline(never)]
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `names` is dropped only here, once.
        let names = unsafe { ManuallyDrop::take(self.project().names) };
        // This function is not generic, so the RCU callback that frees the names is code of
        // the kernel crate, not of the module that used the context: it stays valid after
        // that module is unloaded.
        drop(names);
    }
}

/// The fence operations of every fence made by a [`FenceCtx`].
///
/// Neither `release` nor `wait` is set, so `dma_fence_signal()` detaches the ops from the
/// fence, and the memory is freed with `kfree_rcu()` when the last reference is gone. The ops
/// live in the kernel image, never in a module.
static FENCE_OPS: bindings::dma_fence_ops = bindings::dma_fence_ops {
    get_driver_name: Some(fence_get_driver_name),
    get_timeline_name: Some(fence_get_timeline_name),
    set_deadline: Some(fence_set_deadline),
    // SAFETY: All other fields are optional function pointers, for which zero is `None`.
    ..unsafe { core::mem::zeroed() }
};

/// Start of every fence allocation; the part the non-generic fence ops read.
#[repr(C)]
struct FenceHeader {
    /// Must stay the first field: the C code frees the allocation through this pointer.
    fence: Opaque<bindings::dma_fence>,
    /// Names of the timeline; valid while the fence is unsignalled and one RCU grace period
    /// after it signalled.
    names: *const FenceNames,
    /// Drops the data and the context reference of a signalled fence, and its reference:
    /// `finish::<T>` of the allocation's `T`.
    finish: unsafe fn(*mut FenceHeader),
    /// While the fence waits in `Order::deferred`, or in the run its signaller took off it:
    /// the next one there.
    next_deferred: *mut FenceHeader,
    /// While the fence waits in `Order::deferred`: its errno (or 0) and its timestamp (or
    /// `i64::MIN` for the time it really signals).
    deferred_errno: i32,
    deferred_ts: i64,
}

/// Drops what a signalled fence's owner held: the data, the context reference, the fence
/// reference.
///
/// # Safety
///
/// `header` must be the header of a `FenceStorage<T>` whose fence has signalled, whose `data`
/// and `ctx` are initialised, and whose reference the caller gives up. Called once per fence.
unsafe fn finish<T>(header: *mut FenceHeader) {
    let storage = header.cast::<FenceStorage<T>>();
    if core::mem::needs_drop::<T>() {
        // Dropped through a raw pointer: no `&mut T` is made, so the owner of parts of the data
        // that need no drop (a `MaybeUninit` slot, say) may still be using them.
        // SAFETY: `data` is initialised and dropped only here; the fence is signalled, so the ops
        // no longer reach it; `T: DriverFenceAllowedData` makes dropping it safe here.
        unsafe { core::ptr::drop_in_place((&raw mut (*storage).data).cast::<T>()) };
    }
    // SAFETY: `ctx` is initialised and dropped only here. RCU readers may still read the
    // names, which are freed only after a grace period.
    unsafe { ManuallyDrop::drop(&mut (*storage).ctx) };
    // SAFETY: The caller gives up its reference; the memory is freed by the C code
    // (`kfree_rcu()`) when the last reference is gone.
    unsafe { bindings::dma_fence_put(header.cast()) };
}

/// Sets the error and signals `fence`.
///
/// # Safety
///
/// `fence` must be initialised and unsignalled, and only its owner may signal it.
unsafe fn signal_raw(fence: *mut bindings::dma_fence, errno: i32, ts: i64) {
    if errno != 0 {
        // SAFETY: By the safety requirements the error is set before signalling.
        unsafe { bindings::dma_fence_set_error(fence, errno) };
    }
    if ts == i64::MIN {
        // SAFETY: `fence` is initialised and unsignalled.
        unsafe { bindings::dma_fence_signal(fence) };
    } else {
        // SAFETY: `fence` is initialised and unsignalled.
        unsafe { bindings::dma_fence_signal_timestamp(fence, ts) };
    }
}

/// The single allocation behind a [`DriverFence`] and all [`Fence`] references to it.
#[repr(C)]
struct FenceStorage<T> {
    header: FenceHeader,
    /// The timeline; released when the fence signals.
    ctx: ManuallyDrop<Option<Arc<FenceCtx>>>,
    /// The driver's data; dropped when the fence signals.
    data: ManuallyDrop<T>,
}

/// # Safety
///
/// `fence` must be a fence initialised by [`FenceCtx::new_fence`], and the caller must be in
/// an RCU read-side critical section in which it saw the fence unsignalled.
unsafe extern "C" fn fence_get_driver_name(fence: *mut bindings::dma_fence) -> *const c_char {
    let header = fence.cast::<FenceHeader>();
    // SAFETY: `fence` is the first field of a `FenceHeader` (`repr(C)`), and by the safety
    // requirements the names are still alive.
    unsafe { (*(*header).names).driver.as_char_ptr() }
}

/// # Safety
///
/// Same as [`fence_get_driver_name`].
unsafe extern "C" fn fence_get_timeline_name(fence: *mut bindings::dma_fence) -> *const c_char {
    let header = fence.cast::<FenceHeader>();
    // SAFETY: As in `fence_get_driver_name`.
    unsafe { (*(*header).names).timeline.as_char_ptr() }
}

/// # Safety
///
/// Same as [`fence_get_driver_name`] (`dma_fence_set_deadline()` calls it under the RCU read
/// lock, for a fence it saw unsignalled).
unsafe extern "C" fn fence_set_deadline(fence: *mut bindings::dma_fence, deadline: i64) {
    let header = fence.cast::<FenceHeader>();
    // SAFETY: As in `fence_get_driver_name`: the names, and the hook they own, are alive.
    let names = unsafe { &*(*header).names };
    if let Some(hook) = &names.deadline {
        // SAFETY: `fence` is initialised; `seqno` does not change after initialisation.
        let seqno = unsafe { (*fence).seqno };
        // SAFETY: The value is clamped into the range from 0 to `KTIME_MAX`.
        let deadline = unsafe { Instant::<Monotonic>::from_ktime(deadline.max(0)) };
        hook.set_deadline(seqno, deadline);
    }
}

/// Data that may live in a [`DriverFence`].
///
/// The data is dropped when the fence signals, which may happen in any context, including hard
/// interrupt context and inside a fence signalling critical section; and fence callbacks of
/// other code may still run on the fence for one RCU grace period after it signalled.
///
/// # Safety
///
/// Implementers guarantee that dropping a value of the type:
///
/// - does not sleep, take a sleeping lock, or allocate memory, and
/// - does not free memory that an RCU reader which saw the fence unsignalled may still read:
///   the type either needs no drop at all, or defers freeing by an RCU grace period, as
///   [`RcuBox`] does.
///
/// A module whose fences carry an [`RcuBox`] must call
/// [`rcu_barrier`](crate::sync::rcu::rcu_barrier) in its exit path: the deferred drop runs code
/// of the module. Data that needs no drop has no such requirement.
///
/// # Examples
///
/// Plain data needs no drop; anything that owns memory goes into an [`RcuBox`]:
///
/// ```
/// use kernel::dma_buf::{DriverFenceAllocation, FenceCtx};
/// use kernel::sync::rcu::RcuBox;
///
/// #[derive(Clone, Copy)]
/// struct JobId(u64);
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let a = ctx.new_fence(DriverFenceAllocation::new(JobId(1), GFP_KERNEL)?);
/// let owned = RcuBox::new(KVec::<u8>::from_elem(0, 64, GFP_KERNEL)?, GFP_KERNEL)?;
/// let b = ctx.new_fence(DriverFenceAllocation::new(owned, GFP_KERNEL)?);
/// assert_eq!(a.0, 1);
/// assert_eq!(b.len(), 64);
/// let _ = a.signal(Ok(()));
/// let _ = b.signal(Ok(())); // The vector is freed after an RCU grace period.
/// # Ok::<(), Error>(())
/// ```
pub unsafe trait DriverFenceAllowedData: Send + Sync {}

// SAFETY: `Copy` types have no drop glue: dropping them does nothing.
unsafe impl<T: Copy + Send + Sync> DriverFenceAllowedData for T {}

// SAFETY: Dropping an `RcuBox` only queues an RCU callback (no sleeping, no allocation); the
// contents are dropped and freed after a grace period. `RcuBox<T>` requires its contents to be
// safe to drop from the RCU callback.
unsafe impl<T: Send + Sync + 'static> DriverFenceAllowedData for RcuBox<T> {}

/// Memory for one [`DriverFence`], with the driver's data already in it.
///
/// Making this is the fallible step of creating a fence: do it where allocating is allowed,
/// then turn it into a fence with [`FenceCtx::new_fence`], which cannot fail. Dropping an
/// unused allocation frees it and drops the data.
///
/// # Invariants
///
/// `storage` points to a [`KBox`]-allocated `FenceStorage<T>` owned by `self`, whose `data` is
/// initialised, whose `ctx` is `None` and whose fence is not initialised.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{DriverFenceAllocation, FenceCtx};
///
/// // Prepare phase: may fail, may allocate.
/// let alloc = DriverFenceAllocation::new(5u32, GFP_KERNEL)?;
/// assert_eq!(*alloc.data(), 5);
/// // Submit phase: cannot fail, does not allocate.
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let fence = ctx.new_fence(alloc);
/// let _ = fence.signal(Ok(()));
///
/// // An allocation that is never used is simply dropped.
/// drop(DriverFenceAllocation::new(6u32, GFP_KERNEL)?);
/// # Ok::<(), Error>(())
/// ```
pub struct DriverFenceAllocation<T> {
    storage: NonNull<FenceStorage<T>>,
    _p: PhantomData<T>,
}

// SAFETY: The allocation owns a `T` and nothing else that is tied to a thread.
unsafe impl<T: Send> Send for DriverFenceAllocation<T> {}
// SAFETY: `&DriverFenceAllocation` only gives `&T` (through `data`), which is fine to share when
// `T: Sync`.
unsafe impl<T: Sync> Sync for DriverFenceAllocation<T> {}

impl<T> DriverFenceAllocation<T> {
    /// The start of the allocation, for memory accounting (`ksize()`) in benchmarks.
    #[cfg(CONFIG_DRM_JOBQUEUE_BENCH)]
    pub(crate) fn allocation_ptr(&self) -> *const core::ffi::c_void {
        self.storage.as_ptr().cast()
    }
}

impl<T: DriverFenceAllowedData> DriverFenceAllocation<T> {
    /// Allocates the memory for a fence and moves `data` into it.
    pub fn new(data: T, flags: Flags) -> Result<Self, AllocError> {
        let storage = KBox::new(
            FenceStorage {
                header: FenceHeader {
                    fence: Opaque::uninit(),
                    names: core::ptr::null(),
                    finish: finish::<T>,
                    next_deferred: core::ptr::null_mut(),
                    deferred_errno: 0,
                    deferred_ts: i64::MIN,
                },
                ctx: ManuallyDrop::new(None),
                data: ManuallyDrop::new(data),
            },
            flags,
        )?;
        // INVARIANT: A fresh `KBox` with `data` initialised, `ctx` `None` and no fence.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns null.
            storage: unsafe { NonNull::new_unchecked(KBox::into_raw(storage)) },
            _p: PhantomData,
        })
    }
}

impl<T> DriverFenceAllocation<T> {
    /// Returns the driver data.
    pub fn data(&self) -> &T {
        // SAFETY: By the type invariant, `storage` is live and `data` initialised.
        unsafe { &(*self.storage.as_ptr()).data }
    }
}

impl<T> Drop for DriverFenceAllocation<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own the `KBox` allocation; `ctx` is `None` and needs
        // no drop, the fence was never initialised.
        let mut storage = unsafe { KBox::from_raw(self.storage.as_ptr()) };
        // SAFETY: `data` is initialised and dropped only here.
        unsafe { ManuallyDrop::drop(&mut storage.data) };
    }
}

/// Proof that a [`DriverFence`] was signalled.
///
/// Only the signalling methods of [`DriverFence`] create it, so a closure given to
/// [`signalling`] that must return a `Signalled` cannot forget to signal its fence.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{signalling, DriverFence, DriverFenceAllocation, FenceCtx, Signalled};
///
/// fn complete(fence: DriverFence<()>, ok: bool) -> Signalled {
///     // Every path must end in a signal, or this does not compile.
///     if ok { fence.signal(Ok(())) } else { fence.signal(Err(EIO)) }
/// }
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let fence = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let consumer = fence.fence();
/// signalling(|| complete(fence, false));
/// assert_eq!(consumer.status(), Some(Err(EIO)));
/// # Ok::<(), Error>(())
/// ```
pub struct Signalled(());

/// A fence owned by the driver that will signal it: the only fence type that can signal.
///
/// It is created from a [`DriverFenceAllocation`] by [`FenceCtx::new_fence`]. It signals once:
/// [`signal`](Self::signal) consumes it. If it is dropped unsignalled, it warns and signals
/// with `-ECANCELED`, so waiters are never left hanging. Others get an [`ARef<Fence>`] from
/// [`fence`](Self::fence), which cannot signal. When the fence signals, the driver data and
/// the reference to the [`FenceCtx`] are dropped; the fence memory is freed by the C code once
/// every reference is gone.
///
/// It implements [`ForeignOwnable`], so it can be stored in an
/// [`XArray`](crate::xarray::XArray) and taken back on a completion path.
///
/// # Invariants
///
/// `storage` points to a `FenceStorage<T>` whose fence is initialised and unsignalled, whose
/// `data` and `ctx` are initialised, and `self` owns one reference to the fence.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{signalling, DriverFenceAllocation, FenceCtx};
///
/// let ctx = FenceCtx::new(c"my_driver", c"ring0")?;
/// // The fallible part, done before the point of no return.
/// let alloc = DriverFenceAllocation::new(42u32, GFP_KERNEL)?;
/// // Infallible from here on.
/// let fence = ctx.new_fence(alloc);
/// assert_eq!(*fence, 42);
/// let consumer = fence.fence();
/// assert!(!consumer.is_signaled());
///
/// // Signal inside a signalling critical section; the closure must return the proof.
/// signalling(|| fence.signal(Err(EIO)));
/// assert_eq!(consumer.status(), Some(Err(EIO)));
/// # Ok::<(), Error>(())
/// ```
pub struct DriverFence<T> {
    storage: NonNull<FenceStorage<T>>,
    _p: PhantomData<T>,
}

// SAFETY: A `DriverFence` owns a `T` and a fence reference; fences may be used from any thread.
unsafe impl<T: Send> Send for DriverFence<T> {}
// SAFETY: `&DriverFence` gives `&T` and `&Fence`; `Fence` is `Sync`.
unsafe impl<T: Sync> Sync for DriverFence<T> {}

impl<T> DriverFence<T> {
    fn raw(&self) -> *mut bindings::dma_fence {
        // SAFETY: By the type invariant `storage` is live.
        unsafe { Opaque::cast_into(&raw const (*self.storage.as_ptr()).header.fence) }
    }

    /// Returns the fence as a consumer [`Fence`].
    pub fn as_fence(&self) -> &Fence {
        // SAFETY: The fence is initialised and lives at least as long as `self`.
        unsafe { Fence::from_raw(self.raw()) }
    }

    /// Returns a new reference to the fence for consumers, which cannot signal it.
    pub fn fence(&self) -> ARef<Fence> {
        self.as_fence().into()
    }

    /// Returns the driver data.
    pub fn data(&self) -> &T {
        // SAFETY: By the type invariant `data` is initialised while `self` lives.
        unsafe { &(*self.storage.as_ptr()).data }
    }

    /// Signals the fence: `Ok(())` for success, or the error the work ended with.
    ///
    /// The error is set before the fence signals. Callbacks registered on the fence run from
    /// here, in the caller's context. Then the driver data and the context reference are
    /// dropped.
    ///
    /// If an earlier fence of the same timeline has not signalled yet, this one waits for it:
    /// it signals right after that one, in that fence's signaller's context (where its
    /// callbacks then run and its data is dropped). So safe code cannot make a timeline
    /// signal out of order.
    pub fn signal(self, res: Result) -> Signalled {
        let mut this = ManuallyDrop::new(self);
        this.complete(res, None);
        Signalled(())
    }

    /// Signals the fence like [`signal`](Self::signal), recording `timestamp` as the completion
    /// time instead of the current time.
    pub fn signal_timestamp(self, res: Result, timestamp: Instant<Monotonic>) -> Signalled {
        let mut this = ManuallyDrop::new(self);
        this.complete(res, Some(timestamp));
        Signalled(())
    }

    /// Signals several fences, each with its result and all with the completion time
    /// `timestamp`, as [`signal_timestamp`](Self::signal_timestamp) called on each in turn
    /// would: a completion path that finished a batch of jobs signals their fences with one
    /// round trip of the timeline's lock per run of fences of one timeline, instead of two
    /// per fence.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::{DriverFence, DriverFenceAllocation, FenceCtx};
    /// use kernel::time::{Instant, Monotonic};
    ///
    /// let (a, b) = (FenceCtx::new(c"drv", c"a")?, FenceCtx::new(c"drv", c"b")?);
    /// let a1 = a.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
    /// let a2 = a.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
    /// let a3 = a.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
    /// let b1 = b.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
    /// let (f2, f3, g1) = (a2.fence(), a3.fence(), b1.fence());
    /// let now = Instant::<Monotonic>::now();
    /// // `a1` is not in the batch: `a3` and `a2` wait for it; `b1` signals right away.
    /// let _ = DriverFence::signal_batch([(a3, Ok(())), (a2, Err(EIO)), (b1, Ok(()))], now);
    /// assert!(!f2.is_signaled() && !f3.is_signaled());
    /// assert_eq!(g1.status(), Some(Ok(())));
    /// let _ = a1.signal(Ok(()));
    /// assert_eq!(f2.status(), Some(Err(EIO)));
    /// assert_eq!(f3.status(), Some(Ok(())));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn signal_batch(
        fences: impl IntoIterator<Item = (Self, Result)>,
        timestamp: Instant<Monotonic>,
    ) -> Signalled {
        /// Fences of one timeline queued per critical section, at most.
        const CHUNK: usize = 8;
        let mut fences = fences.into_iter().peekable();
        while let Some((first, res)) = fences.next() {
            let Some(ctx) = first.ctx().map(Arc::as_ptr) else {
                // Unreachable: every live fence has its context. Dropping it warns, as
                // `complete()` does when it finds none.
                drop(first);
                continue;
            };
            // The iterator is only advanced with no lock held: it may drop fences (a `filter`,
            // say), which signals them, or sleep. `first` keeps `ctx` alive until then.
            let mut chunk: [Option<(Self, Result)>; CHUNK] = Default::default();
            chunk[0] = Some((first, res));
            let mut n = 1;
            while n < CHUNK
                && fences
                    .peek()
                    .is_some_and(|(f, _)| f.ctx().is_some_and(|c| Arc::as_ptr(c) == ctx))
            {
                chunk[n] = fences.next();
                n += 1;
            }
            // SAFETY: `ctx` is alive: the chunk's fences, which are ours, hold references to it.
            let mut order = unsafe { &*ctx }.order.lock();
            for (fence, res) in chunk.iter_mut().filter_map(Option::take) {
                let mut fence = ManuallyDrop::new(fence);
                // SAFETY: `fence` is never used again; `order` is the lock of its timeline
                // (`ctx`, which it shares with the chunk's first fence).
                unsafe { fence.enqueue(&mut order, res, Some(timestamp)) };
            }
            // SAFETY: `order` is the guard of the live `ctx`'s lock, which the context
            // references of the fences just queued keep alive while it is held.
            let kept = unsafe { Self::signal_in_order(ctx, order) };
            // SAFETY: `signal_in_order()` gave it to us, and the timeline is no longer used
            // here.
            unsafe { finish_signalled(kept) };
        }
        Signalled(())
    }

    /// The fence's timeline.
    fn ctx(&self) -> Option<&Arc<FenceCtx>> {
        // SAFETY: `ctx` is initialised while the fence is unsignalled (type invariant).
        unsafe { (*self.storage.as_ptr()).ctx.as_ref() }
    }

    /// Signals (now, or once the earlier fences of the timeline have), and drops the driver's
    /// parts and the fence reference. Called once, by `signal*` or by `drop`, after which
    /// `self` must not be used.
    ///
    /// Every fence goes through the timeline's `Order::deferred` list. One thread at a time
    /// (`FenceCtx::busy`) takes the run of consecutive fences from the front and signals them
    /// outside the lock, so that callbacks never run under it and may signal or drop fences
    /// of the same timeline (those are then signalled by that thread's loop). That thread
    /// keeps the last fence it signalled unfinished (its data, context and fence references)
    /// until it no longer uses the timeline, so that its context reference keeps the context
    /// alive meanwhile and none is taken per signal; [`finish_signalled`] then finishes it.
    fn complete(&mut self, res: Result, timestamp: Option<Instant<Monotonic>>) {
        let Some(ctx) = self.ctx().map(Arc::as_ptr) else {
            // Unreachable: every live fence has its context.
            crate::warn_on!(true);
            return;
        };
        // SAFETY: `ctx` is alive: this fence holds a reference to it until it is finished,
        // which the timeline's signaller (this thread or another) does only once this thread
        // released the lock, or later.
        let mut order = unsafe { &*ctx }.order.lock();
        // SAFETY: Called once, after which `self` is not used; `order` is its timeline's lock.
        unsafe { self.enqueue(&mut order, res, timestamp) };
        // SAFETY: `order` is the guard of the live `ctx`'s lock, which the context reference
        // of the fence just queued keeps alive while it is held.
        let kept = unsafe { Self::signal_in_order(ctx, order) };
        // SAFETY: `signal_in_order()` gave it to us, and the timeline is no longer used here.
        unsafe { finish_signalled(kept) };
    }

    /// Hands the fence, its data, context and reference over to its timeline's
    /// `Order::deferred` list, with `res` and `timestamp`.
    ///
    /// # Safety
    ///
    /// `self` is not used or dropped afterwards, and `order` is the lock of its timeline.
    unsafe fn enqueue(
        &mut self,
        order: &mut Order,
        res: Result,
        timestamp: Option<Instant<Monotonic>>,
    ) {
        let header = self.storage.as_ptr().cast::<FenceHeader>();
        // SAFETY: We own the fence (type invariant) and hand it, with its data, context and
        // reference, over to the list; nothing else touches these fields until then.
        unsafe {
            (*header).deferred_errno = res.err().map_or(0, |e| e.to_errno());
            (*header).deferred_ts = timestamp.map_or(i64::MIN, |t| t.as_nanos());
        }
        // SAFETY: The fence is initialised.
        let seqno = unsafe { (*(*header).fence.get()).seqno };
        let last = order.last;
        // SAFETY: `last` is null or the list's last entry, a valid fence (type invariant).
        if !last.is_null() && unsafe { (*(*last).fence.get()).seqno } < seqno {
            // The common case, fences signalled in order: appended.
            // SAFETY: `header` is ours to link (see above); `last` is a valid entry.
            unsafe {
                (*header).next_deferred = core::ptr::null_mut();
                (*last).next_deferred = header;
            }
            // INVARIANT: Appended in seqno order, as the new last entry; it holds its
            // reference.
            order.last = header;
            return;
        }
        let mut link: *mut *mut FenceHeader = &mut order.deferred;
        // SAFETY: The list's entries are valid fences of this timeline (invariant).
        unsafe {
            while !(*link).is_null() && (*(**link).fence.get()).seqno < seqno {
                link = &raw mut (**link).next_deferred;
            }
            (*header).next_deferred = *link;
            // INVARIANT: Inserted in seqno order; it holds its reference. It is the last
            // entry if it was inserted at the end (only when the list was empty: otherwise
            // the append above took it).
            *link = header;
        }
        if last.is_null() {
            order.last = header;
        }
    }

    /// Unless another thread signals the timeline `ctx` already, signals the fences of its
    /// `Order::deferred` list that are next in order, outside the lock, until none is.
    ///
    /// Each fence is finished right after it signalled, but for the last one: that one's
    /// context reference keeps `ctx` alive while this thread still uses it, so no reference is
    /// taken per signal. It is returned (or null, if this thread signalled nothing) for the
    /// caller to finish with [`finish_signalled`] once it no longer uses the timeline.
    ///
    /// # Safety
    ///
    /// `ctx` comes from [`Arc::as_ptr`], and `order` is the guard of its lock; a context
    /// reference that stays valid while the guard is held keeps `ctx` alive.
    unsafe fn signal_in_order(
        ctx: *const FenceCtx,
        mut order: Guard<'_, Order, SpinLockIrqBackend>,
    ) -> *mut FenceHeader {
        // SAFETY: As required, `ctx` is alive while `order` is held; below, `busy` and `more`
        // are used after an unlock only while the fence kept by this thread keeps it alive.
        let (busy, more) = unsafe { (&(*ctx).busy, &(*ctx).more) };
        if busy.load(Acquire) {
            // Another thread signals this timeline, and its loop picks these fences up in
            // turn, unless it is just stopping: it clears `busy`, then reads `more` (both
            // fully ordered, as here in the other order), so one of the two sees the other.
            more.xchg(true, Full);
            if busy.load(Acquire) {
                // SAFETY: As required, `ctx` stays alive while `order` is held.
                unsafe { unlock_holding(ctx, order) };
                return core::ptr::null_mut();
            }
            // It stopped: the `Acquire` orders its signals before ours.
        }
        // INVARIANT: Found clear with `Acquire`, set under the lock: this thread signals.
        busy.store(true, Relaxed);
        // The last fence this thread signalled, not finished yet.
        let mut kept: *mut FenceHeader = core::ptr::null_mut();
        loop {
            // INVARIANT: Cleared under the lock, right before the run is taken: a fence queued
            // from now on sets it again.
            more.store(false, Relaxed);
            // The run of consecutive fences at the front, in order.
            let mut run: *mut FenceHeader = core::ptr::null_mut();
            let mut tail: *mut *mut FenceHeader = &mut run;
            // SAFETY: The list's entries are valid, unsignalled fences of this timeline.
            unsafe {
                while !order.deferred.is_null()
                    && (*(*order.deferred).fence.get()).seqno == order.next
                {
                    let h = order.deferred;
                    // INVARIANT: Off the list; `next` moves past it, and it is signalled
                    // below, before any later one.
                    order.deferred = (*h).next_deferred;
                    if order.deferred.is_null() {
                        // INVARIANT: The list is empty again.
                        order.last = core::ptr::null_mut();
                    }
                    order.next += 1;
                    (*h).next_deferred = core::ptr::null_mut();
                    *tail = h;
                    tail = &raw mut (*h).next_deferred;
                }
            }
            if run.is_null() {
                // INVARIANT: Cleared under the lock: whoever queues next sees it.
                busy.store(false, Relaxed);
                if kept.is_null() {
                    // Nothing of ours keeps the context alive past the unlock: the fences
                    // this thread queued may be signalled and finished by another.
                    // SAFETY: As required, `ctx` stays alive while `order` is held.
                    unsafe { unlock_holding(ctx, order) };
                } else {
                    drop(order);
                }
                return kept;
            }
            drop(order);
            // SAFETY: The fences of `run` hold context references until finished, so the one
            // kept from the previous run is no longer needed for that.
            unsafe { finish_signalled(kept) };
            let mut h = run;
            loop {
                // SAFETY: `h` was taken off the list, in order; its owner handed its parts and
                // reference over. We are the only signaller of the timeline (`busy`). It is
                // finished only after its last use here.
                unsafe {
                    signal_raw(h.cast(), (*h).deferred_errno, (*h).deferred_ts);
                    let next = (*h).next_deferred;
                    if next.is_null() {
                        kept = h;
                        break;
                    }
                    // The later fences of the run keep the context alive.
                    ((*h).finish)(h);
                    h = next;
                }
            }
            // INVARIANT: This thread signalled what it took and stops, without the lock unless
            // a fence was queued meanwhile (see above). `busy` and `more` stay valid: `kept`
            // holds a context reference.
            busy.xchg(false, Full);
            if !more.load(Relaxed) {
                return kept;
            }
            // SAFETY: `kept` holds a context reference, so `ctx` is alive.
            order = unsafe { &*ctx }.order.lock();
            if busy.load(Acquire) {
                // A thread that queued a fence saw us stop and signals in our place.
                drop(order);
                return kept;
            }
            // INVARIANT: Found clear with `Acquire` (it may have been cleared by another
            // signaller that took over and stopped meanwhile), set under the lock.
            busy.store(true, Relaxed);
        }
    }
}

/// Releases the order lock of `ctx`, with a context reference held across the unlock: once
/// the lock is free, another thread may finish the fences that kept `ctx` alive.
///
/// # Safety
///
/// `ctx` comes from [`Arc::as_ptr`] and `order` is the guard of its lock; the context is alive
/// while the guard is held.
unsafe fn unlock_holding(ctx: *const FenceCtx, order: Guard<'_, Order, SpinLockIrqBackend>) {
    // SAFETY: `ctx` comes from `Arc::as_ptr()` and its count cannot reach zero while `order`
    // is held; the new reference is taken before the unlock.
    let keep: Arc<FenceCtx> = unsafe { ArcBorrow::from_raw(ctx) }.into();
    drop(order);
    drop(keep);
}

/// Finishes (drops the data, the context reference and the fence reference of) a signalled
/// fence that [`DriverFence::signal_in_order`] kept, if there is one.
///
/// # Safety
///
/// `kept` is null or such a fence, given up by the caller, who no longer relies on it to keep
/// its timeline alive.
unsafe fn finish_signalled(kept: *mut FenceHeader) {
    if !kept.is_null() {
        // SAFETY: `kept` is a signalled fence whose parts and reference the caller gives up;
        // it is finished once, here.
        unsafe { ((*kept).finish)(kept) };
    }
}

impl<T> Deref for DriverFence<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.data()
    }
}

impl<T> Drop for DriverFence<T> {
    fn drop(&mut self) {
        // A driver must signal every fence it created; this one would otherwise hang its
        // waiters forever.
        crate::warn_on!(true);
        self.complete(Err(ECANCELED), None);
    }
}

/// A borrowed [`DriverFence`], as handed out by [`ForeignOwnable::borrow`].
///
/// It gives access to the data and the consumer fence, but cannot signal.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{DriverFence, DriverFenceAllocation, FenceCtx};
/// use kernel::xarray::{AllocKind, XArray};
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let xa = KBox::pin_init(XArray::<DriverFence<u32>>::new(AllocKind::Alloc), GFP_KERNEL)?;
/// // Allocate before taking the XArray's spinlock.
/// let fence = ctx.new_fence(DriverFenceAllocation::new(9, GFP_KERNEL)?);
/// xa.lock().store(1, fence, GFP_KERNEL)?;
/// {
///     let guard = xa.lock();
///     let borrowed = guard.get(1).ok_or(ENOENT)?; // A `DriverFenceRef`.
///     assert_eq!(*borrowed, 9);
///     assert!(!borrowed.as_fence().is_signaled());
/// }
/// let fence = xa.lock().remove(1).ok_or(ENOENT)?;
/// let _ = fence.signal(Ok(()));
/// # Ok::<(), Error>(())
/// ```
pub struct DriverFenceRef<'a, T> {
    storage: NonNull<FenceStorage<T>>,
    _p: PhantomData<&'a DriverFence<T>>,
}

impl<'a, T> DriverFenceRef<'a, T> {
    /// Returns the fence as a consumer [`Fence`].
    pub fn as_fence(&self) -> &'a Fence {
        // SAFETY: The borrowed `DriverFence` keeps the fence alive for `'a`.
        unsafe {
            Fence::from_raw(Opaque::cast_into(
                &raw const (*self.storage.as_ptr()).header.fence,
            ))
        }
    }

    /// Returns the driver data.
    pub fn data(&self) -> &'a T {
        // SAFETY: The borrowed `DriverFence` keeps `data` initialised for `'a`.
        unsafe { &(*self.storage.as_ptr()).data }
    }
}

impl<T> Deref for DriverFenceRef<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.data()
    }
}

// SAFETY: `into_foreign` returns the `FenceStorage` pointer, which is aligned to
// `FOREIGN_ALIGN`; `from_foreign` and `borrow*` rebuild the `DriverFence` or a borrow of it from
// that same pointer, as the trait requires of their callers.
unsafe impl<T: 'static> ForeignOwnable for DriverFence<T> {
    const FOREIGN_ALIGN: usize = core::mem::align_of::<FenceStorage<T>>();

    type Borrowed<'a> = DriverFenceRef<'a, T>;
    type BorrowedMut<'a> = DriverFenceRef<'a, T>;

    fn into_foreign(self) -> *mut c_void {
        let this = ManuallyDrop::new(self);
        this.storage.as_ptr().cast()
    }

    unsafe fn from_foreign(ptr: *mut c_void) -> Self {
        // INVARIANT: By the safety requirements `ptr` came from `into_foreign`, which gave up
        // a `DriverFence` satisfying the invariants.
        Self {
            // SAFETY: `ptr` came from `into_foreign` and is not null.
            storage: unsafe { NonNull::new_unchecked(ptr.cast()) },
            _p: PhantomData,
        }
    }

    unsafe fn borrow<'a>(ptr: *mut c_void) -> DriverFenceRef<'a, T> {
        DriverFenceRef {
            // SAFETY: `ptr` came from `into_foreign` and is not null.
            storage: unsafe { NonNull::new_unchecked(ptr.cast()) },
            _p: PhantomData,
        }
    }

    unsafe fn borrow_mut<'a>(ptr: *mut c_void) -> DriverFenceRef<'a, T> {
        // SAFETY: Same requirements as `borrow`.
        unsafe { Self::borrow(ptr) }
    }
}

/// A DMA fence as seen by its consumers: always behind an [`ARef<Fence>`].
///
/// It can wrap any C `struct dma_fence` (from another driver, from a sync_file, a stub) and can
/// be waited on, queried and given callbacks ([`FenceCbRegistration`](super::FenceCbRegistration)),
/// but not signalled.
///
/// # Invariants
///
/// The inner `dma_fence` is initialised, and each `ARef<Fence>` owns one reference to it.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::Fence;
///
/// // The always-signalled stub fence of the dma-fence core.
/// let stub = Fence::stub();
/// assert!(stub.is_signaled());
/// assert_eq!(stub.status(), Some(Ok(())));
/// stub.wait(false)?;
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct Fence(Opaque<bindings::dma_fence>);

// SAFETY: dma_fence is designed to be shared between threads; all mutation goes through the C
// API, which locks.
unsafe impl Send for Fence {}
// SAFETY: As above.
unsafe impl Sync for Fence {}

// SAFETY: `dma_fence_get()`/`dma_fence_put()` manage the fence's reference count, and the fence
// is freed only when it reaches zero.
unsafe impl AlwaysRefCounted for Fence {
    fn inc_ref(&self) {
        // SAFETY: The fence is initialised (type invariant).
        unsafe { bindings::dma_fence_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up a reference it owns.
        unsafe { bindings::dma_fence_put(obj.as_ptr().cast()) };
    }
}

impl Fence {
    /// Borrows a C fence as a [`Fence`].
    ///
    /// # Safety
    ///
    /// `ptr` must point to an initialised `struct dma_fence` that stays alive (someone holds a
    /// reference) for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_fence) -> &'a Fence {
        // SAFETY: `Fence` is a transparent wrapper of `dma_fence`; the caller guarantees that
        // the fence lives for `'a`.
        unsafe { &*ptr.cast::<Fence>() }
    }

    /// Takes over a reference to a C fence.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an initialised `struct dma_fence` and the caller must own a
    /// reference to it, which the returned [`ARef`] takes over.
    pub unsafe fn from_raw_owned(ptr: NonNull<bindings::dma_fence>) -> ARef<Fence> {
        // SAFETY: The caller transfers a reference to an initialised fence.
        unsafe { ARef::from_raw(ptr.cast()) }
    }

    /// Returns the dma-fence core's stub fence, which is always signalled.
    pub fn stub() -> ARef<Fence> {
        // SAFETY: `dma_fence_get_stub()` returns a new reference to an initialised fence and
        // never fails.
        let ptr = unsafe { bindings::dma_fence_get_stub() };
        // SAFETY: `ptr` is a non-null fence with a reference we own.
        unsafe { Self::from_raw_owned(NonNull::new_unchecked(ptr)) }
    }

    /// Returns the raw C fence.
    pub fn as_raw(&self) -> *mut bindings::dma_fence {
        self.0.get()
    }

    /// Returns whether the fence has signalled.
    ///
    /// A signalled fence may still be running its callbacks.
    pub fn is_signaled(&self) -> bool {
        // SAFETY: The fence is initialised.
        unsafe { bindings::dma_fence_is_signaled(self.as_raw()) }
    }

    /// Returns the result of a fence that is known to have signalled, else `None`, without
    /// taking the fence's lock. Unlike [`status`](Self::status), it does not ask the fence's
    /// driver (its `signaled` op): a fence only that op knows to be done reads as pending.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::{DriverFenceAllocation, FenceCtx};
    ///
    /// let ctx = FenceCtx::new(c"drv", c"tl")?;
    /// let f = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
    /// let consumer = f.fence();
    /// assert_eq!(consumer.signalled_status(), None);
    /// let _ = f.signal(Err(EIO));
    /// assert_eq!(consumer.signalled_status(), Some(Err(EIO)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn signalled_status(&self) -> Option<Result> {
        // SAFETY: The fence is initialised.
        if !unsafe { bindings::dma_fence_test_signaled_flag(self.as_raw()) } {
            return None;
        }
        // The error is set before the signalled bit, which is set with a fully ordered
        // `test_and_set_bit()` (`dma_fence_set_error()` warns on a signalled fence): after
        // seeing the bit, a read barrier makes the error stable, as the fence's lock would.
        crate::sync::barrier::smp_mb(crate::sync::barrier::ordering::Read);
        // SAFETY: The fence is initialised, and its error no longer changes (see above).
        let e = unsafe { core::ptr::read_volatile(&raw const (*self.as_raw()).error) };
        Some(if e < 0 {
            Err(Error::from_errno(e))
        } else {
            Ok(())
        })
    }

    /// Returns `None` while the fence is pending, else the result it signalled with.
    pub fn status(&self) -> Option<Result> {
        // SAFETY: The fence is initialised.
        let s = unsafe { bindings::dma_fence_get_status(self.as_raw()) };
        match s {
            0 => None,
            s if s > 0 => Some(Ok(())),
            e => Some(Err(Error::from_errno(e))),
        }
    }

    /// Returns the fence context (timeline) number.
    pub fn context(&self) -> u64 {
        // SAFETY: The fence is initialised; `context` does not change after initialisation.
        unsafe { (*self.as_raw()).context }
    }

    /// Returns the sequence number of the fence in its context.
    pub fn seqno(&self) -> u64 {
        // SAFETY: The fence is initialised; `seqno` does not change after initialisation.
        unsafe { (*self.as_raw()).seqno }
    }

    /// Returns whether `self` is later than `other` on the same timeline.
    ///
    /// Both fences must belong to the same context; for fences of different contexts the
    /// answer is meaningless (and the C code warns).
    pub fn is_later(&self, other: &Fence) -> bool {
        // SAFETY: Both fences are initialised.
        unsafe { bindings::dma_fence_is_later(self.as_raw(), other.as_raw()) }
    }

    /// Asks the fence's owner to signal it by `deadline` (`dma_fence_set_deadline()`): a hint,
    /// which the owner may ignore. Does nothing for a signalled fence.
    ///
    /// # Context
    ///
    /// Any context in which a `spinlock_t` may be taken: the owner's hook runs right here.
    pub fn set_deadline(&self, deadline: Instant<Monotonic>) {
        // SAFETY: The fence is initialised and we hold a reference.
        unsafe { bindings::dma_fence_set_deadline(self.as_raw(), deadline.as_nanos()) };
    }

    /// Returns the driver name, valid while the RCU read lock `_rcu` is held.
    ///
    /// After the fence signalled this is `"detached-driver"`: the issuer may be gone.
    pub fn driver_name<'a>(&'a self, _rcu: &'a rcu::Guard) -> &'a CStr {
        // SAFETY: The fence is initialised and the RCU read lock is held.
        let p = unsafe { bindings::dma_fence_driver_name(self.as_raw()) };
        // SAFETY: The C code returns a NUL-terminated string that stays valid while the RCU
        // read lock is held, which the lifetime ties to `_rcu`.
        unsafe { CStr::from_char_ptr(p) }
    }

    /// Returns the timeline name, valid while the RCU read lock `_rcu` is held.
    ///
    /// After the fence signalled this is `"signaled-timeline"`.
    pub fn timeline_name<'a>(&'a self, _rcu: &'a rcu::Guard) -> &'a CStr {
        // SAFETY: The fence is initialised and the RCU read lock is held.
        let p = unsafe { bindings::dma_fence_timeline_name(self.as_raw()) };
        // SAFETY: As in `driver_name`.
        unsafe { CStr::from_char_ptr(p) }
    }

    /// Waits until the fence signals; with `interruptible`, a signal to the task ends the wait
    /// early with `ERESTARTSYS`.
    ///
    /// This sleeps: never call it inside a fence signalling critical section.
    pub fn wait(&self, interruptible: bool) -> Result {
        // SAFETY: The fence is initialised and we hold a reference.
        let r = unsafe {
            bindings::dma_fence_wait_timeout(
                self.as_raw(),
                interruptible,
                crate::ffi::c_long::MAX, // MAX_SCHEDULE_TIMEOUT
            )
        };
        if r < 0 {
            Err(Error::from_errno(r as i32))
        } else {
            Ok(())
        }
    }

    /// Waits at most `timeout` for the fence to signal.
    ///
    /// Returns the time left, in jiffies (at least 1) if the fence signalled, `ETIMEDOUT` if it
    /// did not, or `ERESTARTSYS` if an interruptible wait was interrupted. A zero timeout only
    /// checks the state.
    pub fn wait_timeout(&self, interruptible: bool, timeout: Delta) -> Result<Jiffies> {
        let ms = timeout.as_millis_ceil().clamp(0, u32::MAX.into()) as u32;
        let j = msecs_to_jiffies(ms);
        let j = crate::ffi::c_long::try_from(j).unwrap_or(crate::ffi::c_long::MAX);
        // SAFETY: The fence is initialised and we hold a reference.
        let r = unsafe { bindings::dma_fence_wait_timeout(self.as_raw(), interruptible, j) };
        match r {
            r if r < 0 => Err(Error::from_errno(r as i32)),
            0 if !self.is_signaled() => Err(ETIMEDOUT),
            0 => Ok(1),
            r => Ok(r as Jiffies),
        }
    }
}

/// A fence signalling critical section, for lockdep (`dma_fence_begin_signalling()`).
///
/// Code between creating the guard and dropping it is on the path to signalling a fence: it
/// must not allocate memory with reclaim, take locks held while allocating, or wait for fences.
/// Lockdep then reports any such dependency. Sections nest. The guard is not [`Send`], because
/// the C cookie is per thread. Without `CONFIG_LOCKDEP` it is empty and compiles to nothing.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::SignallingSection;
///
/// let outer = SignallingSection::begin();
/// {
///     let _inner = SignallingSection::begin();
/// }
/// drop(outer);
/// ```
pub struct SignallingSection {
    #[cfg(CONFIG_LOCKDEP)]
    cookie: bool,
    _not_send: NotThreadSafe,
}

impl SignallingSection {
    /// Enters a fence signalling critical section until the guard is dropped.
    #[inline]
    pub fn begin() -> Self {
        Self {
            #[cfg(CONFIG_LOCKDEP)]
            // SAFETY: Always safe to call; the cookie is returned to `end_signalling` on the
            // same thread, because the guard is not `Send`.
            cookie: unsafe { bindings::dma_fence_begin_signalling() },
            _not_send: NotThreadSafe,
        }
    }

    /// Leaves the section while `f` runs, then enters it again.
    ///
    /// For releasing, on the way, what is not on the signalling path: for example a driver
    /// object whose drop may allocate or take locks held while allocating. If this section is
    /// nested in another one, `f` still runs inside the outer one.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::SignallingSection;
    ///
    /// let mut section = SignallingSection::begin();
    /// let v = section.suspend(|| KVec::<u8>::with_capacity(64, GFP_KERNEL));
    /// drop(section);
    /// assert!(v.is_ok());
    /// ```
    pub fn suspend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: The cookie came from `dma_fence_begin_signalling()` on this thread.
        unsafe {
            bindings::dma_fence_end_signalling(self.cookie)
        };
        let r = f();
        #[cfg(CONFIG_LOCKDEP)]
        {
            // SAFETY: As in `begin`.
            self.cookie = unsafe { bindings::dma_fence_begin_signalling() };
        }
        r
    }
}

impl Drop for SignallingSection {
    #[inline]
    fn drop(&mut self) {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: The cookie came from `dma_fence_begin_signalling()` on this thread.
        unsafe {
            bindings::dma_fence_end_signalling(self.cookie)
        };
    }
}

/// Runs `f` in a fence signalling critical section; `f` must return proof that it signalled.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{signalling, DriverFenceAllocation, FenceCtx};
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let fence = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let waiter = fence.fence();
/// signalling(move || fence.signal(Ok(())));
/// assert!(waiter.is_signaled());
/// # Ok::<(), Error>(())
/// ```
pub fn signalling<F: FnOnce() -> Signalled>(f: F) -> Signalled {
    let _section = SignallingSection::begin();
    f()
}
