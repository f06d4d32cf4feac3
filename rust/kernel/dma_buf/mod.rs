// SPDX-License-Identifier: GPL-2.0

//! DMA-buf subsystem abstractions: dma_fence.
//!
//! C header: [`include/linux/dma-fence.h`](srctree/include/linux/dma-fence.h)
//!
//! The fence types follow the dma_fence cross-driver contract
//! (`Documentation/driver-api/dma-buf.rst`) and make its rules hard to break:
//!
//! - only a [`DriverFence`] can signal, and it signals exactly once: `signal` consumes it, and
//!   dropping it unsignalled signals `-ECANCELED` (with a warning);
//! - the error is always set before signalling, because it is an argument of `signal`;
//! - creating a [`DriverFence`] never allocates: the memory comes from a
//!   [`DriverFenceAllocation`] made earlier, outside any signalling path;
//! - everybody else sees an [`ARef<Fence>`](Fence), which can be waited on, queried and given
//!   callbacks, but not signalled; every such pointer holds a reference;
//! - fences outlive their [`FenceCtx`] and the module that made them: the fence ops are
//!   static, have no `release` or `wait`, and so are detached when the fence signals; names
//!   and driver data are freed RCU-safely (see [`DriverFenceAllowedData`], including the
//!   `rcu_barrier()` a module needs when its fence data lives in an `RcuBox`);
//! - [`SignallingSection`] annotates fence signalling critical sections for lockdep.

mod dma_fence;
mod fence_cb;
mod fence_wq;
#[cfg(CONFIG_DMA_SHARED_BUFFER)]
pub mod resv;
#[cfg(CONFIG_SYNC_FILE)]
pub mod sync_file;

pub use self::dma_fence::{
    signalling,
    DriverFence,
    DriverFenceAllocation,
    DriverFenceAllowedData,
    DriverFenceRef,
    Fence,
    FenceCtx,
    FenceDeadline,
    Signalled,
    SignallingSection, //
};
pub use self::fence_cb::{
    CallbackError,
    FenceCb,
    FenceCbRegistration,
    FenceCbSlot, //
};
pub use self::fence_wq::{
    FenceWorkqueue,
    SignallingWorkItem, //
};

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
mod tests;

/// Test support: declaring a deliberately provoked kernel warning to the test harness.
///
/// `dev/test` fails a run whose kernel log holds a splat. A test that provokes one on purpose
/// wraps the provoking code in an `ExpectSplat` guard: it prints
/// `jq-expect-splat: begin <tag>` when created and `jq-expect-splat: end <tag>` when dropped,
/// and the harness then requires at least one splat between the two and ignores it.
#[cfg(CONFIG_KUNIT)]
#[doc(hidden)]
pub mod kunit_support {
    /// Declares that the code running while this guard lives provokes a kernel warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::kunit_support::ExpectSplat;
    ///
    /// let _g = ExpectSplat::new(c"doctest-warn");
    /// kernel::warn_on!(true);
    /// ```
    pub struct ExpectSplat(&'static crate::str::CStr);

    impl ExpectSplat {
        /// Starts a region in which a warning is expected.
        pub fn new(tag: &'static crate::str::CStr) -> Self {
            crate::pr_info!("jq-expect-splat: begin {}\n", tag.to_str().unwrap_or("?"));
            Self(tag)
        }
    }

    impl Drop for ExpectSplat {
        fn drop(&mut self) {
            crate::pr_info!("jq-expect-splat: end {}\n", self.0.to_str().unwrap_or("?"));
        }
    }

    /// Returns whether the current thread is inside a fence signalling section (always `true`
    /// in atomic context, and without lockdep).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::{kunit_support::in_signalling_section, SignallingSection};
    ///
    /// let section = SignallingSection::begin();
    /// assert!(in_signalling_section());
    /// drop(section);
    /// ```
    pub fn in_signalling_section() -> bool {
        #[cfg(CONFIG_LOCKDEP)]
        {
            // SAFETY: Always safe to call; the cookie goes back to `end` on this thread.
            let cookie = unsafe { crate::bindings::dma_fence_begin_signalling() };
            // SAFETY: The cookie came from `dma_fence_begin_signalling()` just above.
            unsafe { crate::bindings::dma_fence_end_signalling(cookie) };
            cookie
        }
        #[cfg(not(CONFIG_LOCKDEP))]
        {
            true
        }
    }

    /// Returns whether lockdep is still running (it turns itself off after its first report).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::kunit_support::lockdep_enabled;
    ///
    /// assert!(lockdep_enabled());
    /// ```
    pub fn lockdep_enabled() -> bool {
        #[cfg(CONFIG_LOCKDEP)]
        {
            // SAFETY: `debug_locks` is a plain global int that lockdep only ever clears; a racy
            // read is fine for a test assertion.
            unsafe { core::ptr::read_volatile(&raw const crate::bindings::debug_locks) != 0 }
        }
        #[cfg(not(CONFIG_LOCKDEP))]
        {
            true
        }
    }
}
