// SPDX-License-Identifier: GPL-2.0 OR MIT

//! DRM sync objects.
//!
//! A syncobj is a per-file handle to a (replaceable) fence, used by userspace for explicit
//! synchronization. Drivers that set [`Driver::FEAT_SYNCOBJ`](drm::Driver::FEAT_SYNCOBJ)
//! typically look one up during a submit ioctl and store the job's done fence in it.
//!
//! C header: [`include/drm/drm_syncobj.h`](srctree/include/drm/drm_syncobj.h)

use crate::{
    bindings,
    dma_buf::Fence,
    drm,
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque, //
};
use core::ptr::{
    self,
    NonNull, //
};

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
