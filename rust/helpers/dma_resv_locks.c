// SPDX-License-Identifier: GPL-2.0

#include <linux/dma-resv.h>
#include <linux/ww_mutex.h>

__rust_helper void rust_helper_ww_acquire_init(struct ww_acquire_ctx *ctx,
					       struct ww_class *ww_class)
{
	ww_acquire_init(ctx, ww_class);
}

__rust_helper void rust_helper_ww_acquire_done(struct ww_acquire_ctx *ctx)
{
	ww_acquire_done(ctx);
}

__rust_helper void rust_helper_ww_acquire_fini(struct ww_acquire_ctx *ctx)
{
	ww_acquire_fini(ctx);
}

__rust_helper int rust_helper_dma_resv_lock_interruptible(struct dma_resv *obj,
							  struct ww_acquire_ctx *ctx)
{
	return dma_resv_lock_interruptible(obj, ctx);
}

__rust_helper int rust_helper_dma_resv_lock_slow_interruptible(struct dma_resv *obj,
							       struct ww_acquire_ctx *ctx)
{
	return dma_resv_lock_slow_interruptible(obj, ctx);
}

__rust_helper void rust_helper_dma_resv_iter_begin(struct dma_resv_iter *cursor,
						   struct dma_resv *obj,
						   enum dma_resv_usage usage)
{
	dma_resv_iter_begin(cursor, obj, usage);
}
