// SPDX-License-Identifier: GPL-2.0

#include <linux/dma-fence.h>
#include <linux/sched/signal.h>

/*
 * Helpers for the static inline functions of <linux/dma-fence.h> that the
 * Rust dma_fence abstractions use. dma_fence_begin_signalling() and
 * dma_fence_end_signalling() are real functions with CONFIG_LOCKDEP and
 * empty inlines without it; the Rust guard calls them only under
 * CONFIG_LOCKDEP (and compiles to nothing otherwise), so they need no
 * helper in either configuration.
 */

__rust_helper struct dma_fence *rust_helper_dma_fence_get(struct dma_fence *fence)
{
	return dma_fence_get(fence);
}

__rust_helper void rust_helper_dma_fence_put(struct dma_fence *fence)
{
	dma_fence_put(fence);
}

__rust_helper bool rust_helper_dma_fence_is_signaled(struct dma_fence *fence)
{
	return dma_fence_is_signaled(fence);
}

__rust_helper bool rust_helper_dma_fence_test_signaled_flag(struct dma_fence *fence)
{
	return dma_fence_test_signaled_flag(fence);
}

__rust_helper void rust_helper_dma_fence_set_error(struct dma_fence *fence, int error)
{
	dma_fence_set_error(fence, error);
}

__rust_helper bool rust_helper_dma_fence_is_later(struct dma_fence *f1,
						  struct dma_fence *f2)
{
	return dma_fence_is_later(f1, f2);
}

/*
 * Whether the current task is being killed, as drm_sched_entity_flush()
 * decides it: exiting because of SIGKILL, or (not exiting yet) with SIGKILL
 * pending. An exiting task always has SIGKILL pending, whatever it exits
 * for. Used by the JobQueue's flush on file close.
 */
__rust_helper bool rust_helper_dma_fence_current_killed(void)
{
	if (current->flags & PF_EXITING)
		return (current->exit_code & 0x7f) == SIGKILL;
	return fatal_signal_pending(current);
}
