// SPDX-License-Identifier: GPL-2.0

//! Buffer objects: GEM shmem objects, mapped into the kernel while a job uses them.

use kernel::{
    drm::{
        self,
        gem::{
            self,
            shmem, //
        },
    },
    page,
    prelude::*,
    sync::aref::ARef,
    uapi, //
};

use crate::{
    DummyGpu,
    File, //
};

/// Driver data of a buffer object (none: the "GPU" has no address space of its own).
#[pin_data]
pub(crate) struct Bo {}

/// A buffer object of this driver.
pub(crate) type BoObject = shmem::Object<Bo>;

/// A kernel mapping of a buffer object: what the "GPU" accesses it through.
///
/// Each file keeps one per buffer object it used (see [`File::bo_map`]), as a GPU driver keeps
/// buffers mapped in the context's address space; jobs hold a reference until they retire.
pub(crate) type BoMap = shmem::VMapOwned<Bo>;

impl gem::DriverObject for Bo {
    type Driver = DummyGpu;
    type Args = ();

    fn new(_dev: &drm::Device<DummyGpu>, _size: usize, _args: ()) -> impl PinInit<Self, Error> {
        try_pin_init!(Bo {})
    }

    fn close(obj: &BoObject, file: &drm::File<File>) {
        // The handle is gone: unmap the object from the file's "address space".
        file.inner().forget_bo(obj);
    }
}

impl Bo {
    /// Creates a zero-filled buffer object of at least `size` bytes.
    pub(crate) fn create(dev: &drm::Device<DummyGpu>, size: u64) -> Result<ARef<BoObject>> {
        if size == 0 {
            return Err(EINVAL);
        }
        if size > u64::from(uapi::DUMMY_GPU_MAX_BO_SIZE) {
            return Err(E2BIG);
        }
        let size = page::page_align(size as usize).ok_or(EINVAL)?;
        BoObject::new(dev, size, shmem::ObjectConfig::default(), ())
    }

    /// Looks up `handle` in `file`; `ENOENT` if there is no such object.
    pub(crate) fn lookup(file: &drm::File<File>, handle: u32) -> Result<ARef<BoObject>> {
        <BoObject as gem::BaseObject>::lookup_handle(file, handle)
    }
}
