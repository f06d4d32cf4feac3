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
