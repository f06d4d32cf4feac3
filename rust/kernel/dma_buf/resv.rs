// SPDX-License-Identifier: GPL-2.0

//! Reservation objects (`struct dma_resv`): the fences of a shared buffer.
//!
//! A reservation object holds the fences of the work that uses a buffer, each with a
//! [`ResvUsage`]. It is how implicit synchronization works between drivers and processes: a job
//! that writes a buffer waits for every fence in it, a job that reads it waits for the writers,
//! and each job adds its done fence, which the next user (another driver, the compositor, the
//! display, `poll()` on the exported dma-buf) then waits for.
//!
//! The rules of `Documentation/driver-api/dma-buf.rst`, and how this module follows them:
//!
//! - Reservation locks are ww_mutexes: several are taken together with one acquire context,
//!   backing off on contention ([`ResvLocks::lock`]). Holding them, one may allocate
//!   (`dma_resv_lockdep()` primes lockdep with that order).
//! - Adding a fence cannot fail, because it often happens after a submission's point of no
//!   return, so its slot is reserved first ([`ResvLocks::reserve`], which allocates and may
//!   fail); [`ResvLocks::add_fence`] then only uses a reserved slot.
//! - No reservation lock is ever taken inside a fence signalling critical section: a fence
//!   whose signalling waited for a reservation lock could deadlock against a holder of that
//!   lock waiting for the fence. Lockdep reports it (`dma_resv_lockdep()` records that
//!   reservation locks are taken around waits for fences).
//!
//! C header: [`include/linux/dma-resv.h`](srctree/include/linux/dma-resv.h)

use crate::{
    bindings,
    dma_buf::Fence,
    error::to_result,
    prelude::*,
    types::Opaque, //
};
use core::{
    mem::MaybeUninit,
    pin::Pin, //
};

/// What a fence in a reservation object stands for (`enum dma_resv_usage`).
///
/// The usages are ordered: looking up the fences of one usage also returns those of the usages
/// before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ResvUsage {
    /// In-kernel memory management (moves, clears).
    Kernel = bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
    /// Implicitly synchronized writes.
    Write = bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE,
    /// Implicitly synchronized reads.
    Read = bindings::dma_resv_usage_DMA_RESV_USAGE_READ,
    /// Not implicitly synchronized: only memory management waits for these.
    Bookkeep = bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
}

impl ResvUsage {
    /// The usage of the fences that an access must wait for: a write waits for all readers and
    /// writers ([`ResvUsage::Read`]), a read for the writers ([`ResvUsage::Write`])
    /// (`dma_resv_usage_rw()`).
    pub fn to_wait_for(write: bool) -> Self {
        if write {
            Self::Read
        } else {
            Self::Write
        }
    }

    /// The usage with which an access adds its fence.
    pub fn of_access(write: bool) -> Self {
        if write {
            Self::Write
        } else {
            Self::Read
        }
    }
}

/// A reservation object, borrowed from the buffer it belongs to.
///
/// # Invariants
///
/// `self.0` is a valid, initialised `struct dma_resv`.
#[repr(transparent)]
pub struct DmaResv(Opaque<bindings::dma_resv>);

// SAFETY: The C reservation object is used from any thread, under its own lock.
unsafe impl Send for DmaResv {}
// SAFETY: As above.
unsafe impl Sync for DmaResv {}

impl DmaResv {
    /// Borrows the reservation object at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to an initialised `struct dma_resv` that stays valid for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_resv) -> &'a Self {
        // SAFETY: `DmaResv` is a transparent wrapper; the caller guarantees validity.
        unsafe { &*ptr.cast() }
    }

    /// Returns the C reservation object.
    pub fn as_raw(&self) -> *mut bindings::dma_resv {
        self.0.get()
    }

    /// The reservation object of a GEM object (`obj->resv`: its own, or that of the dma-buf it
    /// was imported from).
    #[cfg(CONFIG_DRM = "y")]
    pub fn of_gem<T: crate::drm::gem::IntoGEMObject>(obj: &T) -> &DmaResv {
        let gem = obj.as_raw();
        // SAFETY: `gem` is a valid GEM object for as long as `obj` is borrowed.
        let resv = unsafe { (*gem).resv };
        // SAFETY: A GEM object's `resv` is set at init and lives as long as the object.
        unsafe { Self::from_raw(resv) }
    }
}

/// A reservation object of its own, for a buffer that is not a GEM object (a GEM object has
/// one: [`DmaResv::of_gem`]).
#[pin_data(PinnedDrop)]
pub struct OwnedResv {
    #[pin]
    resv: Opaque<bindings::dma_resv>,
}

impl OwnedResv {
    /// Initialises an empty reservation object.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `dma_resv_init()` initialises the object in place, and cannot fail.
            resv <- Opaque::ffi_init(|p| unsafe { bindings::dma_resv_init(p) }),
        })
    }
}

impl core::ops::Deref for OwnedResv {
    type Target = DmaResv;

    fn deref(&self) -> &DmaResv {
        // SAFETY: `resv` was initialised by `new()` and lives as long as `self`.
        unsafe { DmaResv::from_raw(self.resv.get()) }
    }
}

#[pinned_drop]
impl PinnedDrop for OwnedResv {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Initialised, and not locked (a `ResvLocks` borrows it, so it is gone).
        unsafe { bindings::dma_resv_fini(self.resv.get()) };
    }
}

/// The reservation locks of several objects, held together with one ww acquire context.
///
/// Locking a set backs off and retries on contention with another task that locks an
/// overlapping set in another order, so sets never deadlock against each other. Dropping the
/// value unlocks everything.
///
/// # Invariants
///
/// `ctx` is initialised. If `locked`, every object in `resvs` is locked with `ctx`;
/// `reserved[i]` fence slots of `resvs[i]` were reserved and not used yet.
pub struct ResvLocks<'a> {
    resvs: KVec<&'a DmaResv>,
    reserved: KVec<u32>,
    ctx: Pin<KBox<Opaque<bindings::ww_acquire_ctx>>>,
    locked: bool,
}

impl<'a> ResvLocks<'a> {
    /// Locks the reservation objects `resvs` (interruptibly).
    ///
    /// Fails with `EINVAL` if an object is in the list twice, and with `EINTR` (or
    /// `ERESTARTSYS`) if a signal arrived while waiting. Process context; sleeps; must not be
    /// called inside a signalling section.
    pub fn lock(resvs: &[&'a DmaResv]) -> Result<Self> {
        let mut list = KVec::with_capacity(resvs.len(), GFP_KERNEL)?;
        let mut reserved = KVec::with_capacity(resvs.len(), GFP_KERNEL)?;
        for r in resvs {
            list.push(*r, GFP_KERNEL)?;
            reserved.push(0, GFP_KERNEL)?;
        }
        let ctx = KBox::pin(Opaque::uninit(), GFP_KERNEL)?;
        // SAFETY: `ctx` is pinned memory for an acquire context, which this initialises;
        // `reservation_ww_class` is the class of every reservation lock.
        unsafe { bindings::ww_acquire_init(ctx.get(), &raw mut bindings::reservation_ww_class) };
        let mut this = Self {
            resvs: list,
            reserved,
            ctx,
            locked: false,
        };
        this.lock_all()?;
        // INVARIANT: Every object is locked now.
        this.locked = true;
        // SAFETY: Every lock of the set is held; none is added later.
        unsafe { bindings::ww_acquire_done(this.ctx.get()) };
        Ok(this)
    }

    /// The ww_mutex dance: locks every object, and on `-EDEADLK` unlocks all, sleeps on the
    /// contended lock and starts over. On error nothing is locked (and `Drop` has nothing to
    /// unlock).
    fn lock_all(&self) -> Result {
        let n = self.resvs.len();
        let mut contended: Option<usize> = None;
        'retry: loop {
            for i in 0..n {
                if contended == Some(i) {
                    continue;
                }
                // SAFETY: The object is valid for `'a`; `ctx` is initialised and pinned.
                let r = unsafe {
                    bindings::dma_resv_lock_interruptible(self.resvs[i].as_raw(), self.ctx.get())
                };
                if r == 0 {
                    continue;
                }
                // Unlock what this round took, and the contended one if it is not among them.
                self.unlock_first(i);
                if let Some(c) = contended.filter(|&c| c >= i) {
                    self.unlock_one(c);
                }
                if r != EDEADLK.to_errno() {
                    return Err(if r == EALREADY.to_errno() {
                        EINVAL
                    } else {
                        Error::from_errno(r)
                    });
                }
                // SAFETY: As above; no lock of the set is held now, as the slow path requires.
                let r = unsafe {
                    bindings::dma_resv_lock_slow_interruptible(
                        self.resvs[i].as_raw(),
                        self.ctx.get(),
                    )
                };
                to_result(r)?;
                contended = Some(i);
                continue 'retry;
            }
            return Ok(());
        }
    }

    /// Unlocks the objects `0..end`.
    fn unlock_first(&self, end: usize) {
        for i in 0..end {
            self.unlock_one(i);
        }
    }

    fn unlock_one(&self, i: usize) {
        // SAFETY: The caller knows that object `i` is locked by this set.
        unsafe { bindings::dma_resv_unlock(self.resvs[i].as_raw()) };
    }

    /// Returns the number of objects in the set.
    pub fn len(&self) -> usize {
        self.resvs.len()
    }

    /// Returns whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.resvs.is_empty()
    }

    /// Reserves `n` more fence slots in object `i`, for [`ResvLocks::add_fence`]. Allocates
    /// (`GFP_KERNEL`): the prepare phase of a submission.
    pub fn reserve(&mut self, i: usize, n: u32) -> Result {
        let want = self.reserved.get(i).ok_or(EINVAL)? + n;
        // SAFETY: Object `i` is locked by this set.
        to_result(unsafe { bindings::dma_resv_reserve_fences(self.resvs[i].as_raw(), want) })?;
        // INVARIANT: `want` slots are free now.
        self.reserved[i] = want;
        Ok(())
    }

    /// Adds `fence` to object `i` with `usage`, in a slot reserved before. Never allocates,
    /// never fails: callable after a submission's point of no return.
    ///
    /// Without a reserved slot left (a driver bug) it warns and does not add the fence.
    pub fn add_fence(&mut self, i: usize, fence: &Fence, usage: ResvUsage) {
        match self.reserved.get_mut(i) {
            Some(n) if *n > 0 => {
                // INVARIANT: One reserved slot is used.
                *n -= 1;
                // SAFETY: Object `i` is locked by this set and has a free slot; the object
                // takes its own reference to `fence`.
                unsafe {
                    bindings::dma_resv_add_fence(
                        self.resvs[i].as_raw(),
                        fence.as_raw(),
                        usage as u32,
                    )
                };
            }
            _ => {
                crate::warn_on!(true);
            }
        }
    }

    /// Calls `f` for each fence of object `i` with `usage` or a usage before it, stopping at
    /// the first error.
    pub fn for_each_fence(
        &self,
        i: usize,
        usage: ResvUsage,
        mut f: impl FnMut(&Fence) -> Result,
    ) -> Result {
        let resv = self.resvs.get(i).ok_or(EINVAL)?;
        let mut cursor = MaybeUninit::<bindings::dma_resv_iter>::uninit();
        // SAFETY: `cursor` is writable; the object is valid and locked by this set.
        unsafe { bindings::dma_resv_iter_begin(cursor.as_mut_ptr(), resv.as_raw(), usage as u32) };
        // SAFETY: `cursor` was initialised by `dma_resv_iter_begin()`; the lock is held.
        let mut p = unsafe { bindings::dma_resv_iter_first(cursor.as_mut_ptr()) };
        while !p.is_null() {
            // SAFETY: The object holds a reference to its fences while its lock is held.
            f(unsafe { Fence::from_raw(p) })?;
            // SAFETY: As for `dma_resv_iter_first()`.
            p = unsafe { bindings::dma_resv_iter_next(cursor.as_mut_ptr()) };
        }
        Ok(())
    }
}

impl Drop for ResvLocks<'_> {
    fn drop(&mut self) {
        if self.locked {
            self.unlock_first(self.resvs.len());
        }
        // SAFETY: No lock of the context is held any more.
        unsafe { bindings::ww_acquire_fini(self.ctx.get()) };
    }
}
