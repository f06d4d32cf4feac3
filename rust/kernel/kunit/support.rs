// SPDX-License-Identifier: GPL-2.0

//! Support for KUnit tests: expected warnings, skipping, lockdep's state, per-task fault
//! injection, and running code on another thread.
//!
//! C header: [`include/kunit/test.h`](srctree/include/kunit/test.h)

use crate::{
    bindings,
    prelude::*,
    str::CStr,
    sync::{
        Arc,
        Completion, //
    },
};

/// Prints a KTAP diagnostic line of the running test case: `    # <args>`.
///
/// It goes to the kernel log only, not to the case's debugfs log (unlike C's `kunit_info()`).
///
/// # Examples
///
/// ```
/// kernel::kunit::diagnostic(format_args!("faults injected: {}", 3));
/// ```
pub fn diagnostic(args: crate::fmt::Arguments<'_>) {
    super::info(format_args!("    # {args}\n"));
}

/// Declares that the code running while this guard lives provokes a kernel warning.
///
/// A test run that treats any warning in the kernel log as a failure cannot tell a deliberate
/// one from a bug. The guard prints a KTAP diagnostic line `# expect-splat: begin <tag>` when
/// created and `# expect-splat: end <tag>` when dropped; a log checker can then require at
/// least one warning between the two, and ignore it.
///
/// # Examples
///
/// ```
/// use kernel::kunit::ExpectSplat;
///
/// let _g = ExpectSplat::new(c"doctest-warn");
/// kernel::warn_on!(true);
/// ```
pub struct ExpectSplat(&'static CStr);

impl ExpectSplat {
    /// Starts a region in which a warning is expected.
    pub fn new(tag: &'static CStr) -> Self {
        diagnostic(format_args!(
            "expect-splat: begin {}",
            tag.to_str().unwrap_or("?")
        ));
        Self(tag)
    }
}

impl Drop for ExpectSplat {
    fn drop(&mut self) {
        diagnostic(format_args!(
            "expect-splat: end {}",
            self.0.to_str().unwrap_or("?")
        ));
    }
}

/// Marks the running test case skipped, with `reason` as its KTAP `# SKIP` comment.
///
/// The case still runs to its end: return right after calling this. A case that found nothing
/// to test should skip rather than pass. Does nothing outside a KUnit test.
///
/// Call it from the test's own thread: elsewhere (a [`spawn`]ed worker, say) there is no
/// current test and it does nothing. Note that KUnit does not run a skipped case again when its
/// suite is re-run through debugfs.
pub fn skip(reason: &CStr) {
    // SAFETY: Always safe to call (it has fallbacks for when KUnit is not enabled).
    let test = unsafe { bindings::kunit_get_current_test() };
    if test.is_null() {
        return;
    }
    // SAFETY: `test` is the running test of this task, which lives until the case returns;
    // only this task writes its status while the case runs (as `kunit_mark_skipped()` does).
    let comment = unsafe { &mut (*test).status_comment };
    let bytes = reason.to_bytes();
    let n = bytes.len().min(comment.len() - 1);
    for (d, s) in comment.iter_mut().zip(&bytes[..n]) {
        *d = *s as crate::ffi::c_char;
    }
    comment[n] = 0;
    // SAFETY: As above; `status` is read by KUnit after the case returned.
    unsafe {
        core::ptr::write_volatile(
            &raw mut (*test).status,
            bindings::kunit_status_KUNIT_SKIPPED,
        )
    };
}

/// Returns whether lockdep is still running (it turns itself off after its first report), or
/// `true` without lockdep.
///
/// A suite whose cases provoke lock dependencies on purpose ends with a case asserting this, so
/// that a report that switched lockdep off fails the suite that caused it.
///
/// # Examples
///
/// ```
/// use kernel::kunit::lockdep_enabled;
///
/// assert!(lockdep_enabled());
/// ```
pub fn lockdep_enabled() -> bool {
    #[cfg(CONFIG_LOCKDEP)]
    {
        // SAFETY: `debug_locks` is a plain global int that lockdep only ever clears; a racy
        // read is fine for a test assertion.
        unsafe { core::ptr::read_volatile(&raw const bindings::debug_locks) != 0 }
    }
    #[cfg(not(CONFIG_LOCKDEP))]
    {
        true
    }
}

/// Per-task fault injection (`/proc/thread-self/fail-nth`, the syzkaller technique): the `n`-th
/// fault-injection point the task passes next fails.
///
/// Which allocations count is failslab's and fail_page_alloc's choice: by default
/// (`ignore-gfp-wait=Y`) they ignore allocations that may sleep, so a `GFP_KERNEL` allocation
/// neither fails nor counts. [`fail_nth::gfp_kernel_injectable`] tells whether it does; a test
/// that claims to see every allocation must skip when it does not.
#[cfg(CONFIG_FAULT_INJECTION)]
pub mod fail_nth {
    use super::*;

    /// Arms this task's countdown: its `n`-th fault-injection point from now fails (0 disarms).
    pub fn arm(n: u32) {
        // SAFETY: Only this task's own countdown is written.
        unsafe { bindings::set_current_fail_nth(n) };
    }

    /// Reads this task's countdown: 0 once the armed point was reached (or if never armed),
    /// else the number of points still to pass.
    pub fn remaining() -> u32 {
        // SAFETY: Reads this task's own countdown.
        unsafe { bindings::current_fail_nth() }
    }

    /// Disarms this task's countdown; returns what [`remaining`] read before.
    pub fn disarm() -> u32 {
        let left = remaining();
        arm(0);
        left
    }

    /// Runs `f` with this task's `n`-th fault-injection point armed, then disarms it. Returns
    /// `f`'s result and whether the armed point was reached (the fault injected).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::kunit::fail_nth;
    ///
    /// let (r, hit) = fail_nth::with(1, || KBox::new(0u64, GFP_ATOMIC));
    /// assert!(hit && r.is_err());
    /// ```
    pub fn with<T>(n: u32, f: impl FnOnce() -> T) -> (T, bool) {
        arm(n);
        let r = f();
        (r, disarm() == 0)
    }

    /// Whether a `GFP_KERNEL` allocation counts (and fails) as a fault-injection point, that
    /// is whether failslab's `ignore-gfp-wait` is off.
    ///
    /// It looks at whether the allocation failed, not at whether the countdown ran out: with
    /// `ignore-gfp-wait=Y` the allocator can consume the countdown on an internal attempt that
    /// may not sleep and then succeed on its retry.
    pub fn gfp_kernel_injectable() -> bool {
        let (r, _) = with(1, || KBox::new(0u64, GFP_KERNEL));
        r.is_err()
    }
}

/// Code running on another thread (a worker of the default workqueue), from [`spawn`].
pub struct Spawned(Arc<Completion>);

impl Spawned {
    /// Waits until the code returned.
    pub fn join(&self) {
        self.0.wait_for_completion();
    }
}

/// Moves the calling thread to `cpu`, or lets it run on any CPU again with `None`.
///
/// A race test that needs its two sides on two CPUs at once pins each; a CPU that is not
/// possible selects none, and the call fails.
///
/// # Examples
///
/// ```
/// use kernel::kunit::move_to_cpu;
///
/// move_to_cpu(Some(0))?;
/// move_to_cpu(None)?;
/// # Ok::<(), Error>(())
/// ```
pub fn move_to_cpu(cpu: Option<u32>) -> Result {
    let mut mask = crate::cpumask::CpumaskVar::new_zero(GFP_KERNEL)?;
    match cpu {
        Some(n) => mask.set(crate::cpu::CpuId::from_u32(n).ok_or(EINVAL)?),
        None => mask.setall(),
    }
    // SAFETY: The current task is alive, and `mask` is a valid cpumask for the call.
    crate::error::to_result(unsafe {
        bindings::set_cpus_allowed_ptr(crate::task::Task::current_raw(), mask.as_raw())
    })
}

/// Runs `f` on a worker of the default (unbound) workqueue, usually on another CPU; returns a
/// handle to [`join`](Spawned::join) it.
///
/// # Examples
///
/// ```
/// use kernel::{kunit::spawn, sync::{atomic::{Atomic, Relaxed}, Arc}};
///
/// let n = Arc::new(Atomic::<u32>::new(0), GFP_KERNEL)?;
/// let m = n.clone();
/// let t = spawn(move || m.store(1, Relaxed))?;
/// t.join();
/// assert_eq!(n.load(Relaxed), 1);
/// # Ok::<(), Error>(())
/// ```
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<Spawned> {
    let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
    let d = done.clone();
    crate::workqueue::system_dfl().try_spawn(GFP_KERNEL, move || {
        f();
        d.complete_all();
    })?;
    Ok(Spawned(done))
}
