// SPDX-License-Identifier: GPL-2.0

//! A box whose contents outlive every RCU reader that may still see them.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use crate::{
    alloc::{
        AllocError,
        Flags, //
    },
    bindings,
    prelude::*,
    types::Opaque, //
};
use core::{
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::Deref,
    ptr::NonNull, //
};

/// The heap allocation behind an [`RcuBox`].
#[repr(C)]
struct RcuBoxInner<T> {
    value: T,
    head: Opaque<bindings::callback_head>,
}

/// An owned heap allocation whose destruction is deferred by one RCU grace period.
///
/// Dropping an [`RcuBox`] does not free its contents immediately: it queues them with
/// `call_rcu()`, so that any reader that found the contents through an RCU-protected pointer
/// and is still inside its RCU read-side critical section keeps a valid reference. The value is
/// dropped, and the memory freed, from the RCU callback once a grace period has elapsed.
///
/// Dropping an [`RcuBox`] never sleeps and never allocates, so it may happen in any context,
/// including hard interrupt context and inside a dma-fence signalling critical section.
///
/// # Context of the deferred drop
///
/// The destructor of `T` runs from an RCU callback, which usually runs in softirq context on an
/// arbitrary CPU, after the [`RcuBox`] and everything it could borrow are gone. `T` must
/// therefore be [`Send`] and `'static`, and its [`Drop`] implementation must not sleep. A module
/// that drops [`RcuBox`]es must wait for pending callbacks with
/// [`rcu_barrier`](super::rcu_barrier) before it is unloaded, because the callback runs code of
/// the module.
///
/// # Invariants
///
/// `ptr` points to a live `RcuBoxInner<T>` allocated with [`KBox`], exclusively owned by this
/// [`RcuBox`]; its `value` is initialised.
///
/// # Examples
///
/// ```
/// use kernel::sync::rcu::{self, RcuBox};
///
/// let b = RcuBox::new(42u32, GFP_KERNEL)?;
/// assert_eq!(*b, 42);
///
/// let guard = rcu::read_lock();
/// let p: *const u32 = &*b;
/// drop(b);
/// // SAFETY: We are still inside the RCU read-side critical section that was open when `b` was
/// // dropped, so the value is only freed after `guard` is released.
/// assert_eq!(unsafe { *p }, 42);
/// drop(guard);
/// # Ok::<(), Error>(())
/// ```
pub struct RcuBox<T: Send + 'static> {
    ptr: NonNull<RcuBoxInner<T>>,
    _p: PhantomData<RcuBoxInner<T>>,
}

// SAFETY: An `RcuBox<T>` owns a `T`, and the deferred drop runs on another thread, which is fine
// because `T: Send`.
unsafe impl<T: Send + 'static> Send for RcuBox<T> {}

// SAFETY: Sharing an `RcuBox<T>` only gives out `&T`, which is fine across threads when
// `T: Sync`.
unsafe impl<T: Send + Sync + 'static> Sync for RcuBox<T> {}

impl<T: Send + 'static> RcuBox<T> {
    /// Allocates memory with `flags` and moves `value` into it.
    pub fn new(value: T, flags: Flags) -> Result<Self, AllocError> {
        let inner = KBox::new(
            RcuBoxInner {
                value,
                head: Opaque::uninit(),
            },
            flags,
        )?;
        let ptr = KBox::into_raw(inner);
        // INVARIANT: `ptr` comes from `KBox::into_raw` on an initialised value, so it is live,
        // owned by us and non-null.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _p: PhantomData,
        })
    }

    /// Returns a raw pointer to the contents.
    ///
    /// The pointer stays valid while this [`RcuBox`] exists, and, after it was dropped, until
    /// the end of every RCU read-side critical section that was already running at the time of
    /// the drop.
    pub fn as_ptr(this: &Self) -> *const T {
        // SAFETY: By the type invariant, `ptr` points to a live `RcuBoxInner<T>`.
        unsafe { &raw const (*this.ptr.as_ptr()).value }
    }

    /// Called by RCU once a grace period has elapsed after [`RcuBox::drop`].
    ///
    /// # Safety
    ///
    /// `head` must be the `head` field of an `RcuBoxInner<T>` whose [`RcuBox`] was dropped and
    /// that was queued with `call_rcu()`.
    unsafe extern "C" fn free_callback(head: *mut bindings::callback_head) {
        let head = Opaque::cast_from(head);
        // SAFETY: By the safety requirements, `head` is the `head` field of an `RcuBoxInner<T>`.
        let inner = unsafe { crate::container_of!(head, RcuBoxInner<T>, head) };
        // SAFETY: The allocation came from `KBox::into_raw` in `RcuBox::new`, and its only owner
        // gave it up when it queued this callback, so we may reconstruct and drop the box.
        drop(unsafe { KBox::from_raw(inner.cast_mut()) });
    }
}

impl<T: Send + 'static> Deref for RcuBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: By the type invariant, `ptr` points to a live `RcuBoxInner<T>` with an
        // initialised `value`, and it is not freed while `self` is borrowed.
        unsafe { &(*self.ptr.as_ptr()).value }
    }
}

impl<T: Send + 'static> Drop for RcuBox<T> {
    fn drop(&mut self) {
        let this = ManuallyDrop::new(self.ptr);
        // SAFETY: By the type invariant, `ptr` points to a live `RcuBoxInner<T>`.
        let head = unsafe { Opaque::cast_into(&raw const (*this.as_ptr()).head) };
        // SAFETY: `head` is the `rcu_head` of an allocation we own and give up here; it is not
        // queued yet because this is the only place that queues it. `free_callback` matches the
        // layout of the allocation.
        unsafe { bindings::call_rcu(head, Some(Self::free_callback)) };
    }
}

#[cfg(CONFIG_RUST_RCU_BOX_KUNIT_TEST)]
#[macros::kunit_tests(rust_rcu_box)]
mod tests {
    use super::*;
    use crate::sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        rcu,
    };

    /// Counts how often its destructor ran, in a counter chosen by the test.
    struct DropCounter {
        counter: &'static Atomic<u32>,
        payload: u64,
    }

    impl Drop for DropCounter {
        fn drop(&mut self) {
            self.counter.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn new_and_deref() -> Result {
        let b = RcuBox::new(0x5a5a_u64, GFP_KERNEL)?;
        assert_eq!(*b, 0x5a5a);
        assert_eq!(RcuBox::as_ptr(&b), &raw const *b);
        Ok(())
    }

    #[test]
    fn drop_waits_for_reader() -> Result {
        static DROPS: Atomic<u32> = Atomic::new(0);

        let b = RcuBox::new(
            DropCounter {
                counter: &DROPS,
                payload: 0xdead_beef,
            },
            GFP_KERNEL,
        )?;
        let guard = rcu::read_lock();
        let p = RcuBox::as_ptr(&b);
        drop(b);
        // The grace period cannot end while we are inside the read-side critical section.
        assert_eq!(DROPS.load(Relaxed), 0);
        // SAFETY: We are inside the RCU read-side critical section that was open when the box
        // was dropped, so the contents are still live.
        assert_eq!(unsafe { (*p).payload }, 0xdead_beef);
        drop(guard);

        // Wait for the deferred destructor.
        rcu::rcu_barrier();
        assert_eq!(DROPS.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn many_drops_each_run_once() -> Result {
        static DROPS: Atomic<u32> = Atomic::new(0);
        const N: u32 = 256;

        let mut v = KVec::with_capacity(N as usize, GFP_KERNEL)?;
        for i in 0..N {
            v.push(
                RcuBox::new(
                    DropCounter {
                        counter: &DROPS,
                        payload: u64::from(i),
                    },
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        for (i, b) in v.iter().enumerate() {
            assert_eq!(b.payload, i as u64);
        }
        drop(v);
        rcu::rcu_barrier();
        assert_eq!(DROPS.load(Relaxed), N);
        Ok(())
    }

    #[test]
    fn drop_in_atomic_context() -> Result {
        static DROPS: Atomic<u32> = Atomic::new(0);

        let b = RcuBox::new(
            DropCounter {
                counter: &DROPS,
                payload: 1,
            },
            GFP_KERNEL,
        )?;
        // Dropping must not sleep: with DEBUG_ATOMIC_SLEEP a sleeping drop would splat here.
        let guard = rcu::read_lock();
        drop(b);
        drop(guard);
        rcu::rcu_barrier();
        assert_eq!(DROPS.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(crate::kunit::lockdep_enabled());
    }
}
