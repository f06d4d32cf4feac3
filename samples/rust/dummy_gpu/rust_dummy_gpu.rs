// SPDX-License-Identifier: GPL-2.0

//! Dummy GPU: a DRM render driver for an emulated GPU, built on the Rust [`JobQueue`].
//!
//! Every open file of `/dev/dri/renderD*` gets its own set of rings (the `rings` module
//! parameter), as a firmware-scheduled GPU gives each context its own firmware rings. Each ring
//! is a [`JobQueue`] in front of an emulated engine ([`engine`]), which executes the jobs'
//! commands on GEM shmem buffer objects in a work item and reports completion from an hrtimer
//! interrupt.
//!
//! The uapi is `include/uapi/drm/dummy_gpu_drm.h`; the userspace client is
//! `tools/testing/selftests/drivers/gpu/dummy_gpu/`. `/sys/kernel/debug/dummy_gpu/rings` shows
//! the rings' counters.
//!
//! [`JobQueue`]: kernel::drm::jobqueue::JobQueue

use core::fmt;
use kernel::{
    bindings, debugfs, device,
    dma_buf::{
        resv::{
            DmaResv,
            ResvLocks,
            ResvUsage, //
        },
        sync_file::{
            import_sync_file,
            SyncFile, //
        },
        FenceWorkqueue, //
    },
    drm::{
        self,
        gem::BaseObject,
        ioctl,
        jobqueue::{
            JobQueue,
            JobQueueStats,
            JobQueueWorkqueues, //
        },
        syncobj::{
            FenceChainAllocation,
            SyncObj, //
        },
        Registered, //
    },
    faux,
    fs::file::FileDescriptorReservation,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        rcu,
        Arc,
        Mutex, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    transmute::FromBytes,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi,
};

mod engine;
mod gem;

use engine::{
    Cmd,
    Engine,
    EngineStats,
    GpuJob,
    Ring, //
};
use gem::{
    Bo,
    BoMap, //
};

module! {
    type: DummyGpuModule,
    name: "rust_dummy_gpu",
    authors: ["Rust for Linux Contributors"],
    description: "Dummy GPU: a DRM render driver on the Rust JobQueue",
    license: "GPL",
    params: {
        rings: u32 {
            default: 4,
            description: "Rings per open file (1-16)",
        },
        ring_credits: u32 {
            default: 64,
            description: "Credit capacity of each ring (1-4096)",
        },
        timeout_ms: u32 {
            default: 2000,
            description: "Job timeout in milliseconds (10-60000)",
        },
    },
}

const INFO: drm::DriverInfo = drm::DriverInfo {
    major: 1,
    minor: 0,
    patchlevel: 0,
    name: c"dummy_gpu",
    desc: c"Emulated GPU on the Rust DRM JobQueue",
};

/// The DRM driver.
pub(crate) struct DummyGpu;

/// The device's DRM device type.
pub(crate) type DummyGpuDevice<Ctx = drm::Normal> = drm::Device<DummyGpu, Ctx>;

#[vtable]
impl drm::Driver for DummyGpu {
    type Data = Arc<Shared>;
    type RegistrationData<'a> = ();
    type Object = gem::BoObject;
    type File = File;
    type ParentDevice<Ctx: device::DeviceContext> = faux::Device<Ctx>;

    const INFO: drm::DriverInfo = INFO;
    const FEAT_RENDER: bool = true;
    const FEAT_SYNCOBJ: bool = true;
    const FEAT_SYNCOBJ_TIMELINE: bool = true;

    kernel::declare_drm_ioctls! {
        (DUMMY_GPU_GET_PARAM, drm_dummy_gpu_get_param, ioctl::RENDER_ALLOW, File::get_param),
        (DUMMY_GPU_BO_CREATE, drm_dummy_gpu_bo_create, ioctl::RENDER_ALLOW, File::bo_create),
        (DUMMY_GPU_BO_MMAP_OFFSET, drm_dummy_gpu_bo_mmap_offset, ioctl::RENDER_ALLOW,
            File::bo_mmap_offset),
        (DUMMY_GPU_SUBMIT, drm_dummy_gpu_submit, ioctl::RENDER_ALLOW, File::submit),
    }
}

/// Counters of one ring, summed over files.
#[derive(Clone, Copy, Default)]
struct RingTotals {
    queue: JobQueueStats,
    engine: EngineStats,
}

impl RingTotals {
    fn add(&mut self, q: &JobQueueStats, e: &EngineStats) {
        self.queue += *q;
        self.engine.executed += e.executed;
        self.engine.irqs += e.irqs;
        self.engine.resets += e.resets;
    }
}

/// A killed queue of a closed file still waiting for a dependency: its ring index, the queue
/// and the final engine counters.
type Draining = (usize, Arc<JobQueue<Ring>>, EngineStats);

/// Device-wide state.
#[pin_data]
pub(crate) struct Shared {
    rings: u32,
    credits: u32,
    timeout: Delta,
    /// The rings of the open files, for debugfs.
    #[pin]
    files: Mutex<KVec<Arc<FileRings>>>,
    /// Per ring index: the final counters of the files closed so far.
    #[pin]
    closed: Mutex<KVec<RingTotals>>,
    /// Killed queues of closed files whose jobs still wait for a dependency (they are
    /// cancelled once it signals), with their ring index and final engine counters. Folded
    /// into `closed` once idle.
    #[pin]
    draining: Mutex<KVec<Draining>>,
    files_opened: Atomic<u64>,
    /// Runs the engines' shader cores: they are on the fence signalling path, and the queues'
    /// work items wait for them when a ring stops.
    exec_wq: Arc<FenceWorkqueue>,
    /// The workqueues of all the rings' queues. The device is one reset domain: its ordered
    /// timeout workqueue resets one ring at a time.
    wqs: JobQueueWorkqueues,
    /// Whether the emulated device is suspended (debugfs `suspend`). Changed, and read by new
    /// files, under `files`.
    suspended: Atomic<u32>,
}

impl Shared {
    /// Suspends (`true`) or resumes the emulated device: every ring's queue is parked, then
    /// its engine paused; resuming goes the other way round. While suspended nothing runs,
    /// executes or completes, and no job times out; submissions wait.
    fn set_suspended(&self, suspend: bool) {
        let files = self.files.lock();
        if (self.suspended.load(Relaxed) != 0) == suspend {
            return;
        }
        for fr in files.iter() {
            for r in fr.rings.iter() {
                if suspend {
                    r.queue.park();
                    r.engine.pause();
                } else {
                    r.engine.resume();
                    r.queue.unpark();
                }
            }
        }
        self.suspended.store(u32::from(suspend), Relaxed);
    }

    fn fold_closed(&self, i: usize, q: &JobQueueStats, e: &EngineStats) {
        if let Some(t) = self.closed.lock().get_mut(i) {
            t.add(q, e);
        }
    }

    /// Waits for the killed queues of closed files (see `draining`): their work items run this
    /// module's code. Called on module exit, when no file is open any more.
    fn shutdown_draining(&self) {
        let draining = core::mem::take(&mut *self.draining.lock());
        for (i, queue, e) in draining.into_iter() {
            queue.shutdown();
            self.fold_closed(i, &queue.stats(), &e);
        }
    }

    /// Folds the killed queues that became idle into `closed`.
    fn reap_draining(&self) {
        self.draining.lock().retain(|(i, queue, e)| {
            let q = queue.stats();
            let idle = q.pending + q.in_flight == 0;
            if idle {
                // Waits for its work items (this module's code) before it is dropped.
                queue.shutdown();
                self.fold_closed(*i, &q, e);
            }
            !idle
        });
    }
}

/// The rings of one open file.
pub(crate) struct FileRings {
    rings: KVec<RingCtx>,
    shared: Arc<Shared>,
}

/// One ring: its queue, and the engine that executes the jobs.
struct RingCtx {
    queue: Arc<JobQueue<Ring>>,
    engine: Arc<Engine>,
}

impl FileRings {
    fn new(shared: &Arc<Shared>) -> Result<Arc<Self>> {
        let id = shared.files_opened.fetch_add(1, Relaxed);
        // On any failure below, dropping `this` tears down the rings made so far.
        let mut this = FileRings {
            rings: KVec::with_capacity(shared.rings as usize, GFP_KERNEL)?,
            shared: shared.clone(),
        };
        for i in 0..shared.rings {
            let engine = Engine::new(shared.exec_wq.clone())?;
            let name = CString::try_from_fmt(fmt!("dummy_gpu-f{id}-r{i}"))?;
            let queue = JobQueue::new(
                Ring {
                    engine: engine.clone(),
                    busy_ns: Atomic::new(0),
                },
                c"dummy_gpu",
                &name,
                shared.credits,
                shared.timeout,
                &shared.wqs,
            )?;
            let queue = Arc::new(queue, GFP_KERNEL)?;
            engine.attach(queue.clone());
            this.rings.push(RingCtx { queue, engine }, GFP_KERNEL)?;
        }
        Ok(Arc::new(this, GFP_KERNEL)?)
    }
}

impl Drop for FileRings {
    /// Tears the rings down when the file is closed. A client that exits normally gets the
    /// work it submitted done first (for a bounded time); a killed client's work is cancelled:
    /// every unsignalled out-fence signals `-ECANCELED`.
    fn drop(&mut self) {
        // One bound for all rings together.
        let deadline = Instant::<Monotonic>::now() + self.shared.timeout + FLUSH_MARGIN;
        for (i, r) in self.rings.drain_all().enumerate() {
            // Bounded; returns at once if the task is being killed.
            let left = deadline - Instant::<Monotonic>::now();
            let _ = r.queue.flush(left.max(Delta::ZERO));
            // Disconnect the interrupt, so that the queue is dropped here, not in IRQ. Killing
            // the queue has the engine stop its ring (`Ring::stop`) before the queue cancels
            // the jobs on it, and no job runs afterwards.
            drop(r.engine.detach());
            r.queue.kill();
            r.engine.shutdown();
            let e = r.engine.stats();
            let q = r.queue.stats();
            if q.pending + q.in_flight > 0 {
                // Jobs waiting for a dependency: count them when they are cancelled.
                let mut draining = self.shared.draining.lock();
                if draining.reserve(1, GFP_KERNEL).is_ok() {
                    let _ = draining.push_within_capacity((i, r.queue, e));
                    continue;
                }
            }
            // Idle: wait for its work items, so that none runs this module's code later.
            r.queue.shutdown();
            drop(r.queue);
            self.shared.fold_closed(i, &q, &e);
        }
    }
}

/// How much longer than the job timeout a closing file waits for its work to finish: a hung
/// job has timed out by then.
const FLUSH_MARGIN: Delta = Delta::from_millis(1000);

/// A reinterpretation of a user command as bytes; the uapi struct has no padding.
#[repr(transparent)]
struct UserCmd(uapi::drm_dummy_gpu_cmd);

// SAFETY: `drm_dummy_gpu_cmd` consists of integers only, without padding; any bit pattern is a
// valid value.
unsafe impl FromBytes for UserCmd {}

/// A user syncobj in-fence, as bytes.
#[repr(transparent)]
struct UserSyncobjPoint(uapi::drm_dummy_gpu_syncobj_point);

// SAFETY: Integers only, without padding; any bit pattern is a valid value.
unsafe impl FromBytes for UserSyncobjPoint {}

/// A user buffer reference, as bytes.
#[repr(transparent)]
struct UserBoRef(uapi::drm_dummy_gpu_bo_ref);

// SAFETY: Integers only, without padding; any bit pattern is a valid value.
unsafe impl FromBytes for UserBoRef {}

/// An open file: a client context with its own rings.
#[pin_data(PinnedDrop)]
pub(crate) struct File {
    rings: Arc<FileRings>,
    /// Kernel mappings of the buffer objects this file's jobs used, by handle.
    #[pin]
    maps: Mutex<KVec<(u32, Arc<BoMap>)>>,
}

impl drm::file::DriverFile for File {
    type Driver = DummyGpu;

    fn open(dev: &DummyGpuDevice) -> Result<Pin<KBox<Self>>> {
        let shared: &Arc<Shared> = dev;
        let rings = FileRings::new(shared)?;
        {
            let mut files = shared.files.lock();
            files.push(rings.clone(), GFP_KERNEL)?;
            if shared.suspended.load(Relaxed) != 0 {
                // Opened while the device is suspended: its rings wait for the resume.
                for r in rings.rings.iter() {
                    r.queue.park();
                    r.engine.pause();
                }
            }
        }
        KBox::pin_init(
            try_pin_init!(File {
                rings,
                maps <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    const HAS_FDINFO: bool = true;

    /// Usage statistics (`Documentation/gpu/drm-usage-stats.rst`): the ring time of the
    /// file's jobs per ring, and the memory of its buffer objects. The DRM core prints
    /// `drm-driver` and `drm-client-id` before.
    fn show_fdinfo(&self, p: &mut drm::file::FdinfoPrinter<'_>) {
        for (i, r) in self.rings.rings.iter().enumerate() {
            let busy = r.queue.driver().busy_ns.load(Relaxed);
            if p.line(fmt!("drm-engine-ring{i}:\t{busy} ns")).is_err() {
                return;
            }
        }
        p.memory_stats();
    }
}

#[pinned_drop]
impl PinnedDrop for File {
    fn drop(self: Pin<&mut Self>) {
        // The file's jobs are cancelled when the last reference to its rings goes, which is
        // ours once it is off the debugfs list.
        let shared = self.rings.shared.clone();
        shared.files.lock().retain(|f| !Arc::ptr_eq(f, &self.rings));
    }
}

fn user_reader(addr: u64, count: u32, size: usize) -> Result<kernel::uaccess::UserSliceReader> {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    let len = (count as usize).checked_mul(size).ok_or(E2BIG)?;
    Ok(UserSlice::new(UserPtr::from_addr(addr), len).reader())
}

impl File {
    /// Returns the kernel mapping of the buffer object `handle`, mapping it on first use.
    ///
    /// Fails with `ENOENT` if the file has no such handle.
    fn bo_map(&self, file: &drm::File<File>, handle: u32) -> Result<Arc<BoMap>> {
        // Held across the lookup, so that a concurrent GEM_CLOSE of `handle` either makes the
        // lookup fail or runs `forget_bo` after the mapping is in the list.
        let mut maps = self.maps.lock();
        if let Some((_, m)) = maps.iter().find(|(h, _)| *h == handle) {
            return Ok(m.clone());
        }
        let bo = Bo::lookup(file, handle)?;
        let map = Arc::new(bo.owned_vmap::<0>()?, GFP_KERNEL)?;
        maps.push((handle, map.clone()), GFP_KERNEL)?;
        Ok(map)
    }

    /// Drops the mappings of `obj`, whose handle was closed. Jobs still using it keep their own
    /// references.
    pub(crate) fn forget_bo(&self, obj: &gem::BoObject) {
        let mut maps = self.maps.lock();
        maps.retain(|(_, m)| !core::ptr::eq(m.owner(), obj));
    }

    /// IOCTL: GET_PARAM.
    fn get_param(
        dev: &DummyGpuDevice<Registered>,
        _reg: &(),
        args: &mut uapi::drm_dummy_gpu_get_param,
        _file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let shared: &Arc<Shared> = dev;
        args.value = match args.param {
            uapi::DUMMY_GPU_PARAM_NUM_RINGS => shared.rings.into(),
            uapi::DUMMY_GPU_PARAM_RING_CREDITS => shared.credits.into(),
            uapi::DUMMY_GPU_PARAM_TIMEOUT_MS => shared.timeout.as_millis() as u64,
            _ => return Err(EINVAL),
        };
        Ok(0)
    }

    /// IOCTL: BO_CREATE.
    fn bo_create(
        dev: &DummyGpuDevice<Registered>,
        _reg: &(),
        args: &mut uapi::drm_dummy_gpu_bo_create,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 {
            return Err(EINVAL);
        }
        let bo = Bo::create(dev, args.size)?;
        args.handle = bo.create_handle(file)?;
        Ok(0)
    }

    /// IOCTL: BO_MMAP_OFFSET.
    fn bo_mmap_offset(
        _dev: &DummyGpuDevice<Registered>,
        _reg: &(),
        args: &mut uapi::drm_dummy_gpu_bo_mmap_offset,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        args.offset = Bo::lookup(file, args.handle)?.create_mmap_offset()?;
        Ok(0)
    }

    /// Validates the user's commands and maps the buffer objects they use.
    fn read_cmds(
        file: &drm::File<File>,
        args: &uapi::drm_dummy_gpu_submit,
    ) -> Result<(KVec<Arc<BoMap>>, KVec<Cmd>)> {
        let n = args.cmd_count as usize;
        let mut reader = user_reader(args.cmds, args.cmd_count, size_of::<UserCmd>())?;
        let mut handles: KVec<u32> = KVec::new();
        let mut bos: KVec<Arc<BoMap>> = KVec::new();
        let ctx = file.inner();
        let mut cmds = KVec::with_capacity(n, GFP_KERNEL)?;
        // Returns the index of `handle`'s mapping in `bos`, mapping it on first use, and checks
        // that `[off, off + len)` is a word-aligned range of it.
        let mut map = |handle: u32, off: u64, len: u64| -> Result<(usize, usize)> {
            let idx = match handles.iter().position(|&h| h == handle) {
                Some(i) => i,
                None => {
                    bos.push(ctx.bo_map(file, handle)?, GFP_KERNEL)?;
                    handles.push(handle, GFP_KERNEL)?;
                    handles.len() - 1
                }
            };
            let size = bos[idx].owner().size() as u64;
            let end = off.checked_add(len).ok_or(ERANGE)?;
            if off % 4 != 0 || len % 4 != 0 || end > size {
                return Err(ERANGE);
            }
            Ok((idx, off as usize))
        };
        for _ in 0..n {
            let c = reader.read::<UserCmd>()?.0;
            let (src, src_off) = match c.op {
                uapi::DUMMY_GPU_OP_FILL | uapi::DUMMY_GPU_OP_ADD => {
                    if c.src_handle != 0 || c.src_offset != 0 {
                        return Err(EINVAL);
                    }
                    (0, 0)
                }
                uapi::DUMMY_GPU_OP_COPY => {
                    if c.value != 0 {
                        return Err(EINVAL);
                    }
                    map(c.src_handle, c.src_offset, c.size)?
                }
                _ => return Err(EOPNOTSUPP),
            };
            let (dst, dst_off) = map(c.dst_handle, c.dst_offset, c.size)?;
            cmds.push(
                Cmd {
                    op: c.op,
                    dst,
                    src,
                    dst_off,
                    src_off,
                    len: c.size as usize,
                    value: c.value,
                },
                GFP_KERNEL,
            )?;
        }
        Ok((bos, cmds))
    }

    /// IOCTL: SUBMIT.
    ///
    /// Everything that can fail happens before [`PreparedJob::submit`], the point of no
    /// return: the job, its fence, its dependencies, the out-fence's fd and sync_file, and the
    /// syncobj lookup. After it, nothing allocates and nothing fails.
    ///
    /// [`PreparedJob::submit`]: kernel::drm::jobqueue::PreparedJob::submit
    fn submit(
        _dev: &DummyGpuDevice<Registered>,
        _reg: &(),
        args: &mut uapi::drm_dummy_gpu_submit,
        file: &drm::File<File>,
    ) -> Result<u32> {
        let ctx = file.inner();
        let ring = ctx.rings.rings.get(args.ring as usize).ok_or(ENXIO)?;
        let out_syncobj = args.flags & uapi::DUMMY_GPU_SUBMIT_OUT_SYNCOBJ != 0;
        if args.flags & !uapi::DUMMY_GPU_SUBMIT_FLAGS != 0
            || (!out_syncobj && (args.out_syncobj != 0 || args.out_point != 0))
        {
            return Err(EINVAL);
        }
        if args.credits == 0 || args.credits > ring.queue.capacity() {
            return Err(EINVAL);
        }
        if args.cmd_count > uapi::DUMMY_GPU_MAX_CMDS
            || args.in_fence_count > uapi::DUMMY_GPU_MAX_IN_FENCES
            || args.in_syncobj_count > uapi::DUMMY_GPU_MAX_IN_SYNCOBJS
            || args.bo_count > uapi::DUMMY_GPU_MAX_BOS
            || args.busy_us > uapi::DUMMY_GPU_MAX_BUSY_US
        {
            return Err(E2BIG);
        }

        let (bos, cmds) = Self::read_cmds(file, args)?;

        let ndeps = (args.in_fence_count + args.in_syncobj_count) as usize;
        let mut deps = KVec::with_capacity(ndeps, GFP_KERNEL)?;
        let mut reader = user_reader(args.in_fences, args.in_fence_count, size_of::<i32>())?;
        for _ in 0..args.in_fence_count {
            let fd = reader.read::<i32>()?;
            deps.push(import_sync_file(fd).map_err(|_| EBADF)?, GFP_KERNEL)?;
        }
        let mut reader = user_reader(
            args.in_syncobjs,
            args.in_syncobj_count,
            size_of::<UserSyncobjPoint>(),
        )?;
        for _ in 0..args.in_syncobj_count {
            let p = reader.read::<UserSyncobjPoint>()?.0;
            if p.pad != 0 {
                return Err(EINVAL);
            }
            deps.push(SyncObj::find_fence(file, p.handle, p.point)?, GFP_KERNEL)?;
        }

        // The buffers for implicit sync, and their reservation objects, locked until the
        // job's fence is in them.
        let mut reader = user_reader(args.bos, args.bo_count, size_of::<UserBoRef>())?;
        let mut resv_bos = KVec::with_capacity(args.bo_count as usize, GFP_KERNEL)?;
        for _ in 0..args.bo_count {
            let r = reader.read::<UserBoRef>()?.0;
            if r.flags & !uapi::DUMMY_GPU_BO_WRITE != 0 {
                return Err(EINVAL);
            }
            let write = r.flags & uapi::DUMMY_GPU_BO_WRITE != 0;
            resv_bos.push((Bo::lookup(file, r.handle)?, write), GFP_KERNEL)?;
        }
        let mut resv_list = KVec::with_capacity(resv_bos.len(), GFP_KERNEL)?;
        for (bo, _) in resv_bos.iter() {
            resv_list.push(DmaResv::of_gem(&**bo), GFP_KERNEL)?;
        }
        // `EINVAL` if a buffer is listed twice.
        let mut resvs = ResvLocks::lock(&resv_list)?;
        for i in 0..resvs.len() {
            resvs.reserve(i, 1)?;
        }

        let (syncobj, chain) = if out_syncobj {
            let s = SyncObj::lookup(file, args.out_syncobj)?;
            let chain = if args.out_point != 0 {
                Some(FenceChainAllocation::new(GFP_KERNEL)?)
            } else {
                None
            };
            (Some(s), chain)
        } else {
            (None, None)
        };
        let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        let sync_file = SyncFile::new_unarmed()?;

        let hang = args.flags & uapi::DUMMY_GPU_SUBMIT_HANG != 0;
        let busy = Delta::from_micros(args.busy_us.into());
        let fault = args.flags & uapi::DUMMY_GPU_SUBMIT_FAULT != 0;
        let job = GpuJob::new(bos, cmds, busy, hang, fault)?;
        let mut job = ring.queue.prepare(job, args.credits)?;
        for d in deps {
            job.add_dependency(d)?;
        }
        if args.flags & uapi::DUMMY_GPU_SUBMIT_IMPLICIT_SYNC != 0 {
            for (i, (_, write)) in resv_bos.iter().enumerate() {
                job.add_resv_dependencies(&resvs, i, *write)?;
            }
        }
        ring.queue.set_client_id(file.client_id());

        // The point of no return.
        let done = job.submit();

        for (i, (_, write)) in resv_bos.iter().enumerate() {
            resvs.add_fence(i, &done, ResvUsage::of_access(*write));
        }
        drop(resvs);
        match (syncobj, chain) {
            (Some(s), Some(chain)) => s.add_point(chain, &done, args.out_point),
            (Some(s), None) => s.replace_fence(Some(&done)),
            _ => {}
        }
        args.out_fence = fd.reserved_fd() as i32;
        args.seqno = done.seqno();
        sync_file.arm(&done).install(fd);
        Ok(0)
    }
}

/// The debugfs `suspend` file: reads `0` or `1`; writing `1` suspends the emulated device,
/// `0` resumes it (see [`Shared::set_suspended`]).
struct SuspendCtl(Arc<Shared>);

impl fmt::Debug for SuspendCtl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.suspended.load(Relaxed))
    }
}

impl debugfs::Reader for SuspendCtl {
    fn read_from_slice(&self, reader: &mut kernel::uaccess::UserSliceReader) -> Result {
        let mut buf = [0u8; 4];
        let n = reader.len();
        if n == 0 || n > buf.len() {
            return Err(EINVAL);
        }
        reader.read_slice(&mut buf[..n])?;
        match core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim() {
            "1" => self.0.set_suspended(true),
            "0" => self.0.set_suspended(false),
            _ => return Err(EINVAL),
        }
        Ok(())
    }
}

/// The debugfs view of the rings' counters.
struct RingsView(Arc<Shared>);

impl fmt::Debug for RingsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.0;
        let mut totals = KVec::new();
        shared.reap_draining();
        let open = {
            let closed = shared.closed.lock();
            for t in closed.iter() {
                if totals.push(*t, GFP_KERNEL).is_err() {
                    return Err(fmt::Error);
                }
            }
            drop(closed);
            for (i, q, e) in shared.draining.lock().iter() {
                if let Some(t) = totals.get_mut(*i) {
                    t.add(&q.stats(), e);
                }
            }
            let files = shared.files.lock();
            for fr in files.iter() {
                for (i, r) in fr.rings.iter().enumerate() {
                    if let Some(t) = totals.get_mut(i) {
                        t.add(&r.queue.stats(), &r.engine.stats());
                    }
                }
            }
            files.len()
        };
        writeln!(
            f,
            "ring submitted completed errored timed_out cancelled in_flight pending credits_in_use executed irqs resets"
        )?;
        let mut all = RingTotals::default();
        for (i, t) in totals.iter().enumerate() {
            all.add(&t.queue, &t.engine);
            write_row(f, &fmt!("{i}"), t)?;
        }
        write_row(f, &fmt!("all"), &all)?;
        writeln!(f, "open_files {open}")?;
        write!(f, "files_opened {}", shared.files_opened.load(Relaxed))
    }
}

fn write_row(f: &mut fmt::Formatter<'_>, name: &fmt::Arguments<'_>, t: &RingTotals) -> fmt::Result {
    let q = &t.queue;
    writeln!(
        f,
        "{name} {} {} {} {} {} {} {} {} {} {} {}",
        q.submitted,
        q.completed,
        q.errored,
        q.timed_out,
        q.cancelled,
        q.in_flight,
        q.pending,
        q.credits_in_use,
        t.engine.executed,
        t.engine.irqs,
        t.engine.resets
    )
}

struct DummyGpuModule {
    shared: Arc<Shared>,
    // Field order is drop order: the debugfs file, then the DRM device, then its parent.
    _rings_file: Pin<KBox<debugfs::File<RingsView>>>,
    _suspend_file: Pin<KBox<debugfs::File<SuspendCtl>>>,
    _debugfs: debugfs::Dir,
    drm: Option<drm::Registration<'static, DummyGpu>>,
    faux: KBox<faux::Registration>,
}

impl kernel::Module for DummyGpuModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let rings = module_parameters::rings.value();
        let credits = module_parameters::ring_credits.value();
        let timeout_ms = module_parameters::timeout_ms.value();
        if !(1..=16).contains(&rings)
            || !(1..=4096).contains(&credits)
            || !(10..=60000).contains(&timeout_ms)
        {
            pr_err!("invalid parameters: rings={rings} ring_credits={credits} timeout_ms={timeout_ms}\n");
            return Err(EINVAL);
        }
        let mut closed = KVec::with_capacity(rings as usize, GFP_KERNEL)?;
        for _ in 0..rings {
            closed.push(RingTotals::default(), GFP_KERNEL)?;
        }
        let exec_wq = FenceWorkqueue::new(c"dummy_gpu-exec")?;
        let wqs = JobQueueWorkqueues::new(c"dummy_gpu")?;
        let shared = Arc::pin_init(
            pin_init!(Shared {
                rings,
                credits,
                timeout: Delta::from_millis(timeout_ms.into()),
                files <- new_mutex!(KVec::new()),
                closed <- new_mutex!(closed),
                draining <- new_mutex!(KVec::new()),
                files_opened: Atomic::new(0),
                exec_wq,
                wqs,
                suspended: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;

        let faux = KBox::new(faux::Registration::new(c"dummy_gpu", None)?, GFP_KERNEL)?;
        // The faux device lives in a box that `Self` owns and that outlives the DRM
        // registration: `Drop` (and the field order) drops the registration first.
        let parent: *const faux::Registration = &*faux;
        // SAFETY: As above: the box outlives every use of the registration.
        let parent: &'static faux::Registration = unsafe { &*parent };
        let fdev: &faux::Device<device::Bound> = parent.as_ref();
        let udev = drm::UnregisteredDevice::<DummyGpu>::new(fdev, Ok(shared.clone()))?;
        // SAFETY: The registration is stored in `Self` and dropped in `Drop`; it is never
        // forgotten.
        let reg = unsafe { drm::Registration::new(fdev.as_ref(), udev, (), 0)? };

        let debugfs = debugfs::Dir::new(c"dummy_gpu");
        let rings_file = KBox::pin_init(
            debugfs.read_only_file(c"rings", RingsView(shared.clone())),
            GFP_KERNEL,
        )?;
        let suspend_file = KBox::pin_init(
            debugfs.read_write_file(c"suspend", SuspendCtl(shared.clone())),
            GFP_KERNEL,
        )?;
        pr_info!("dummy_gpu: {rings} rings per file, {credits} credits, timeout {timeout_ms} ms\n");
        Ok(Self {
            shared,
            _rings_file: rings_file,
            _suspend_file: suspend_file,
            _debugfs: debugfs,
            drm: Some(reg),
            faux,
        })
    }
}

impl Drop for DummyGpuModule {
    fn drop(&mut self) {
        // No file is open any more; queues of closed files may still wait for dependencies.
        self.shared.shutdown_draining();
        // Unregister before the parent goes away (also ensured by the field order).
        drop(self.drm.take());
        // Out-fences that userspace still holds outlive the module: their ops and names belong
        // to the kernel, not to us. Wait for the RCU callbacks that free fence data.
        rcu::rcu_barrier();
        let _ = &self.faux;
    }
}
