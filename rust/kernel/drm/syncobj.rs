// SPDX-License-Identifier: GPL-2.0 OR MIT

//! DRM sync objects.
//!
//! A syncobj is a per-file handle to a (replaceable) fence, used by userspace for explicit
//! synchronization. Drivers that set [`Driver::FEAT_SYNCOBJ`](drm::Driver::FEAT_SYNCOBJ)
//! typically look one up during a submit ioctl and store the job's done fence in it.
//!
//! C header: [`include/drm/drm_syncobj.h`](srctree/include/drm/drm_syncobj.h)

use crate::{
    alloc::Flags,
    bindings,
    dma_buf::Fence,
    drm,
    error::to_result,
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque, //
};
use core::{
    mem::MaybeUninit,
    ptr::{
        self,
        NonNull, //
    },
};

/// A `struct dma_fence_chain` node allocated ahead, for [`SyncObj::add_point`]: the fallible
/// part of adding a timeline point, done before a job's point of no return
/// (`dma_fence_chain_alloc()`). Dropping it unused frees it (`dma_fence_chain_free()`).
pub struct FenceChainAllocation(KBox<MaybeUninit<bindings::dma_fence_chain>>);

impl FenceChainAllocation {
    /// Allocates a chain node.
    pub fn new(flags: Flags) -> Result<Self> {
        Ok(Self(KBox::new_uninit(flags)?))
    }
}

/// A DRM sync object.
///
/// # Invariants
///
/// `self.0` is a valid `struct drm_syncobj` with a nonzero reference count.
#[repr(transparent)]
pub struct SyncObj(Opaque<bindings::drm_syncobj>);

// SAFETY: The C syncobj API is thread safe (its fence pointer is protected by its own lock).
unsafe impl Send for SyncObj {}
// SAFETY: As above.
unsafe impl Sync for SyncObj {}

// SAFETY: `drm_syncobj_get()`/`drm_syncobj_put()` manage the object's reference count.
unsafe impl AlwaysRefCounted for SyncObj {
    fn inc_ref(&self) {
        // SAFETY: A shared reference proves the count is nonzero.
        unsafe { bindings::drm_syncobj_get(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference.
        unsafe { bindings::drm_syncobj_put(obj.as_ptr().cast()) };
    }
}

impl SyncObj {
    /// Looks up the syncobj `handle` of `file`.
    ///
    /// Fails with `ENOENT` if the file has no such syncobj. May sleep.
    pub fn lookup<T: drm::file::DriverFile>(
        file: &drm::File<T>,
        handle: u32,
    ) -> Result<ARef<Self>> {
        // SAFETY: `file` is a valid, open DRM file.
        let p = unsafe { bindings::drm_syncobj_find(file.as_raw(), handle) };
        let p = NonNull::new(p.cast::<Self>()).ok_or(ENOENT)?;
        // SAFETY: `drm_syncobj_find()` returned a new reference, which we take over.
        Ok(unsafe { ARef::from_raw(p) })
    }

    /// Returns the fence of the syncobj `handle` of `file` at timeline `point`, or, with
    /// `point` 0, its current fence (a binary syncobj's).
    ///
    /// Fails with `ENOENT` if the file has no such syncobj, and with `EINVAL` if it has no
    /// fence, or if `point` has not materialised yet (no fence was added at or after it): this
    /// does not wait for submission (`DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`), which would
    /// block the submitter on another submitter. A point that already signalled may come back
    /// as a signalled stub fence. May sleep.
    pub fn find_fence<T: drm::file::DriverFile>(
        file: &drm::File<T>,
        handle: u32,
        point: u64,
    ) -> Result<ARef<Fence>> {
        let mut f = ptr::null_mut();
        // SAFETY: `file` is a valid, open DRM file; `f` is writable.
        to_result(unsafe {
            bindings::drm_syncobj_find_fence(file.as_raw(), handle, point, 0, &mut f)
        })?;
        let f = NonNull::new(f).ok_or(EINVAL)?;
        // SAFETY: `drm_syncobj_find_fence()` returned a new reference, which we take over.
        Ok(unsafe { Fence::from_raw_owned(f) })
    }

    /// Returns the syncobj's current fence (for a timeline, the chain node of its latest
    /// point), if it has one.
    pub fn fence(&self) -> Option<ARef<Fence>> {
        // SAFETY: `self` is valid by the type invariant.
        let f = unsafe { bindings::drm_syncobj_fence_get(self.0.get()) };
        // SAFETY: `drm_syncobj_fence_get()` returned a new reference, or null.
        NonNull::new(f).map(|f| unsafe { Fence::from_raw_owned(f) })
    }

    /// Adds `fence` as timeline point `point` of the syncobj, in the chain node `chain`
    /// allocated before. Never allocates, so it may be used after a job's point of no return.
    ///
    /// Points should rise: the C code accepts a point at or below the latest one, but then
    /// `DRM_IOCTL_SYNCOBJ_QUERY` may report 0.
    pub fn add_point(&self, chain: FenceChainAllocation, fence: &Fence, point: u64) {
        let node = KBox::into_raw(chain.0).cast::<bindings::dma_fence_chain>();
        // SAFETY: `self` is valid by the type invariant; `node` is a kmalloc'ed, unused chain
        // node, which the syncobj takes over (it becomes a fence, freed by its release);
        // `fence` is valid, and the syncobj takes its own reference.
        unsafe { bindings::drm_syncobj_add_point(self.0.get(), node, fence.as_raw(), point) };
    }

    /// Replaces the syncobj's fence with `fence` (or removes it, with `None`).
    ///
    /// Does not allocate for a binary syncobj, so it may be used after a job's point of no
    /// return. Takes a spinlock; callable from any non-interrupt context.
    pub fn replace_fence(&self, fence: Option<&Fence>) {
        let f = fence.map_or(ptr::null_mut(), Fence::as_raw);
        // SAFETY: `self` is valid by the type invariant; `f` is null or a valid fence, of
        // which the syncobj takes its own reference.
        unsafe { bindings::drm_syncobj_replace_fence(self.0.get(), f) };
    }
}
