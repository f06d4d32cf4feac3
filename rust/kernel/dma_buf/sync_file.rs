// SPDX-License-Identifier: GPL-2.0

//! sync_file interop: exporting fences to userspace and importing them back.
//!
//! C header: [`include/linux/sync_file.h`](srctree/include/linux/sync_file.h)

use super::Fence;
use crate::{
    bindings,
    fs::{
        file::FileDescriptorReservation,
        File, //
    },
    prelude::*,
    sync::aref::ARef, //
};
use core::ptr::NonNull;

/// A sync_file holding a reference to one fence, not yet visible to userspace.
///
/// Make it with [`SyncFile::new`] (which allocates), then publish it with
/// [`SyncFile::install`] into a file descriptor reserved earlier.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::{
///     sync_file::{import_sync_file, SyncFile},
///     DriverFenceAllocation, FenceCtx,
/// };
/// use kernel::bindings;
/// use kernel::fs::file::FileDescriptorReservation;
///
/// let ctx = FenceCtx::new(c"drv", c"tl")?;
/// let fence = ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
/// let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
/// let n = fd.reserved_fd();
/// SyncFile::new(fence.as_fence())?.install(fd);
/// // What userspace would pass back in a later ioctl:
/// let imported = import_sync_file(n as i32)?;
/// assert_eq!(imported.seqno(), fence.as_fence().seqno());
/// let _ = fence.signal(Ok(()));
/// assert!(imported.is_signaled());
/// // SAFETY: `n` is our own descriptor, not used anywhere else.
/// unsafe { bindings::close_fd(n) };
/// # Ok::<(), Error>(())
/// ```
pub struct SyncFile {
    file: ARef<File>,
}

impl SyncFile {
    /// Creates a sync_file for `fence` (taking a reference to it).
    pub fn new(fence: &Fence) -> Result<Self> {
        // SAFETY: `fence` is a valid fence; `sync_file_create()` takes its own reference.
        let sf = unsafe { bindings::sync_file_create(fence.as_raw()) };
        if sf.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `sf` is a valid sync_file whose `file` holds the only reference to it, which
        // we take over; `File` is a transparent wrapper of `struct file`.
        let file = unsafe { ARef::from_raw(NonNull::new_unchecked((*sf).file.cast::<File>())) };
        Ok(Self { file })
    }

    /// Publishes the sync_file as the reserved file descriptor `fd`. Cannot fail.
    pub fn install(self, fd: FileDescriptorReservation) {
        fd.fd_install(self.file);
    }

    /// Allocates a sync_file for a fence that does not exist yet.
    ///
    /// A job's done fence only comes into being at the point of no return (for example
    /// [`PreparedJob::submit`](crate::drm::jobqueue::PreparedJob::submit)), after which nothing
    /// may allocate. Allocate the sync_file before, then [`arm`](UnarmedSyncFile::arm) it with
    /// the fence, which cannot fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::dma_buf::{sync_file::SyncFile, DriverFenceAllocation, FenceCtx};
    ///
    /// let ctx = FenceCtx::new(c"drv", c"tl")?;
    /// let alloc = DriverFenceAllocation::new((), GFP_KERNEL)?;
    /// let sf = SyncFile::new_unarmed()?; // All allocations are done...
    /// let fence = ctx.new_fence(alloc); // ...before the fence exists.
    /// let _sf: SyncFile = sf.arm(fence.as_fence());
    /// let _ = fence.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new_unarmed() -> Result<UnarmedSyncFile> {
        Ok(UnarmedSyncFile(Self::new(&Fence::stub())?))
    }
}

/// A sync_file allocated before its fence exists: see [`SyncFile::new_unarmed`].
///
/// # Invariants
///
/// The sync_file in `self.0` has never been visible outside this object.
pub struct UnarmedSyncFile(SyncFile);

impl UnarmedSyncFile {
    /// Makes the sync_file hold `fence` (taking a reference). Never allocates, never fails.
    pub fn arm(self, fence: &Fence) -> SyncFile {
        let sf = self.0;
        // SAFETY: The file is a sync_file made by `sync_file_create()`, so its private data is
        // the `struct sync_file`.
        let raw = unsafe { (*sf.file.as_ptr()).private_data }.cast::<bindings::sync_file>();
        // SAFETY: By the type invariant nobody else can reach the sync_file yet (it is neither
        // installed nor polled), so swapping its fence races with nothing. The new fence gets
        // a reference of its own; the stub's reference is dropped.
        unsafe {
            let old = (*raw).fence;
            (*raw).fence = bindings::dma_fence_get(fence.as_raw());
            bindings::dma_fence_put(old);
        }
        sf
    }
}

/// Returns the fence of the sync_file that `fd` refers to in the current task.
///
/// Fails with `EINVAL` if `fd` is not an open sync_file.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::sync_file::import_sync_file;
///
/// // What a driver does with a bad in-fence fd from userspace.
/// assert_eq!(import_sync_file(-1).err(), Some(EINVAL));
/// ```
pub fn import_sync_file(fd: i32) -> Result<ARef<Fence>> {
    // SAFETY: Any integer may be passed; the C code looks it up in the current task.
    let f = unsafe { bindings::sync_file_get_fence(fd) };
    let f = NonNull::new(f).ok_or(EINVAL)?;
    // SAFETY: `sync_file_get_fence()` returned a new reference to an initialised fence.
    Ok(unsafe { Fence::from_raw_owned(f) })
}
