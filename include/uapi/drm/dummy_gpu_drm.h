/* SPDX-License-Identifier: MIT */
/*
 * Userspace interface of the dummy GPU sample driver (samples/rust/dummy_gpu).
 *
 * The "GPU" has several rings per open file. A job is a short list of commands
 * operating on 32-bit words of GEM shmem buffer objects; the ring executes the
 * commands in order and raises a completion interrupt. Jobs wait for input
 * fences (sync_file fds) and produce an out-fence (a sync_file fd, optionally
 * also stored in a DRM syncobj).
 *
 * Copyright (C) 2026 The rust-jobqueue authors.
 */
#ifndef _DUMMY_GPU_DRM_H_
#define _DUMMY_GPU_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define DRM_DUMMY_GPU_GET_PARAM		0x00
#define DRM_DUMMY_GPU_BO_CREATE		0x01
#define DRM_DUMMY_GPU_BO_MMAP_OFFSET	0x02
#define DRM_DUMMY_GPU_SUBMIT		0x03

/* Limits; exceeding one fails with -E2BIG. */
#define DUMMY_GPU_MAX_CMDS		64
#define DUMMY_GPU_MAX_IN_FENCES		32
#define DUMMY_GPU_MAX_BO_SIZE		0x1000000	/* 16 MiB */
#define DUMMY_GPU_MAX_BUSY_US		1000000

/* Parameters for &drm_dummy_gpu_get_param.param. */
/* Number of rings of each open file. */
#define DUMMY_GPU_PARAM_NUM_RINGS	0
/* Credit capacity of each ring. */
#define DUMMY_GPU_PARAM_RING_CREDITS	1
/* Job timeout of each ring, in milliseconds. */
#define DUMMY_GPU_PARAM_TIMEOUT_MS	2

/**
 * struct drm_dummy_gpu_get_param - argument of DRM_IOCTL_DUMMY_GPU_GET_PARAM
 *
 * Fails with -EINVAL for an unknown @param or a nonzero @pad.
 */
struct drm_dummy_gpu_get_param {
	/** @param: one of DUMMY_GPU_PARAM_* */
	__u32 param;
	/** @pad: must be zero */
	__u32 pad;
	/** @value: out: the value */
	__u64 value;
};

/**
 * struct drm_dummy_gpu_bo_create - argument of DRM_IOCTL_DUMMY_GPU_BO_CREATE
 *
 * Creates a zero-filled shmem buffer object of @size bytes (rounded up to a
 * page). Fails with -EINVAL if @size is zero or @flags is nonzero, -E2BIG if
 * @size exceeds %DUMMY_GPU_MAX_BO_SIZE, -ENOMEM when out of memory; also
 * -ENOSPC when out of memory for the shmem inode (shmem reports a failed
 * inode allocation that way).
 */
struct drm_dummy_gpu_bo_create {
	/** @size: size in bytes */
	__u64 size;
	/** @flags: must be zero */
	__u32 flags;
	/** @handle: out: GEM handle */
	__u32 handle;
};

/**
 * struct drm_dummy_gpu_bo_mmap_offset - argument of DRM_IOCTL_DUMMY_GPU_BO_MMAP_OFFSET
 *
 * Returns the fake offset to pass to mmap() on the DRM fd. Fails with -ENOENT
 * for an unknown handle.
 */
struct drm_dummy_gpu_bo_mmap_offset {
	/** @handle: GEM handle */
	__u32 handle;
	/** @pad: must be zero */
	__u32 pad;
	/** @offset: out: mmap offset */
	__u64 offset;
};

/*
 * Command opcodes. All offsets and sizes are in bytes and must be multiples
 * of 4; the commands operate on native-endian 32-bit words.
 */
/* dst[i] = value */
#define DUMMY_GPU_OP_FILL		1
/* dst[i] = src[i], for increasing i (overlapping copies run forward) */
#define DUMMY_GPU_OP_COPY		2
/* dst[i] += value (wrapping) */
#define DUMMY_GPU_OP_ADD		3

/**
 * struct drm_dummy_gpu_cmd - one command of a job
 */
struct drm_dummy_gpu_cmd {
	/** @op: one of DUMMY_GPU_OP_* */
	__u32 op;
	/** @dst_handle: GEM handle of the destination */
	__u32 dst_handle;
	/** @dst_offset: byte offset in the destination */
	__u64 dst_offset;
	/** @size: number of bytes */
	__u64 size;
	/** @src_handle: GEM handle of the source (COPY only, else zero) */
	__u32 src_handle;
	/** @value: the value of FILL and ADD (else zero) */
	__u32 value;
	/** @src_offset: byte offset in the source (COPY only, else zero) */
	__u64 src_offset;
};

/* Also store the out-fence in the syncobj @out_syncobj. */
#define DUMMY_GPU_SUBMIT_OUT_SYNCOBJ	1
/* Test hook: the job never completes; the ring's timeout recovers it. */
#define DUMMY_GPU_SUBMIT_HANG		2
/* Test hook: the job faults on the GPU; its out-fence signals -EIO. */
#define DUMMY_GPU_SUBMIT_FAULT		4
/* Wait for the fences of the buffers at &drm_dummy_gpu_submit.bos (implicit sync). */
#define DUMMY_GPU_SUBMIT_IMPLICIT_SYNC	8
#define DUMMY_GPU_SUBMIT_FLAGS		15

#define DUMMY_GPU_MAX_IN_SYNCOBJS	32
#define DUMMY_GPU_MAX_BOS		64

/* The job writes the buffer (else it only reads it). */
#define DUMMY_GPU_BO_WRITE		1

/**
 * struct drm_dummy_gpu_syncobj_point - a syncobj in-fence
 *
 * The fence of a binary syncobj (@point 0) or of a timeline point. A
 * timeline point that has not materialised yet (no fence was added at or
 * after it) fails the submission with -EINVAL: there is no wait-for-submit.
 */
struct drm_dummy_gpu_syncobj_point {
	/** @handle: syncobj handle */
	__u32 handle;
	/** @pad: must be zero */
	__u32 pad;
	/** @point: timeline point, or 0 for a binary syncobj */
	__u64 point;
};

/**
 * struct drm_dummy_gpu_bo_ref - a buffer the job accesses
 *
 * The job's out-fence is added to the buffer's reservation object (a
 * write or a read fence), so that implicitly synchronized users of the
 * buffer (a dma-buf importer, poll(), DMA_BUF_IOCTL_EXPORT_SYNC_FILE) wait
 * for it. With %DUMMY_GPU_SUBMIT_IMPLICIT_SYNC, the job also waits for the
 * buffer's fences: a write for all of them, a read for the writes.
 */
struct drm_dummy_gpu_bo_ref {
	/** @handle: GEM handle */
	__u32 handle;
	/** @flags: %DUMMY_GPU_BO_WRITE or 0 */
	__u32 flags;
};

/**
 * struct drm_dummy_gpu_submit - argument of DRM_IOCTL_DUMMY_GPU_SUBMIT
 *
 * Queues a job on ring @ring. It runs once every fence in @in_fences and
 * @in_syncobjs (and, with %DUMMY_GPU_SUBMIT_IMPLICIT_SYNC, of the buffers at
 * @bos) has signalled and the ring has @credits free credits; it occupies the ring for
 * at least @busy_us microseconds. Its out-fence signals when the ring finished
 * it: with 0, or with the error of a failed input fence, -EIO if it faulted,
 * -ETIMEDOUT if it hung, -ECANCELED if the file was closed before it
 * finished. Jobs behind a hung one on its ring run again after the reset.
 *
 * Errors (nothing is queued, no fd is created):
 *
 * - -ENXIO: @ring is not a ring of this device
 * - -EINVAL: @credits is zero or above the ring's capacity; unknown @flags;
 *   nonzero @out_syncobj or @out_point without %DUMMY_GPU_SUBMIT_OUT_SYNCOBJ;
 *   a command with nonzero fields its opcode does not use; unknown flags or
 *   nonzero padding in @bos or @in_syncobjs; a buffer twice in @bos; a
 *   syncobj in-fence without a fence, or at a timeline point that has not
 *   materialised
 * - -E2BIG: @cmd_count above %DUMMY_GPU_MAX_CMDS, @in_fence_count above
 *   %DUMMY_GPU_MAX_IN_FENCES, @in_syncobj_count above
 *   %DUMMY_GPU_MAX_IN_SYNCOBJS, @bo_count above %DUMMY_GPU_MAX_BOS, @busy_us
 *   above %DUMMY_GPU_MAX_BUSY_US
 * - -EFAULT: @cmds, @in_fences, @in_syncobjs or @bos cannot be read
 * - -EOPNOTSUPP: a command has an unknown opcode
 * - -ENOENT: a command or @bos names an unknown GEM handle, or @out_syncobj
 *   or an entry of @in_syncobjs is not a syncobj of this file
 * - -ERANGE: a command's range is outside its buffer object or misaligned
 * - -EBADF: an entry of @in_fences is not a sync_file fd
 * - -ENODEV: the ring is dead (its hardware could not be recovered)
 * - -EINTR, -ERESTARTSYS: a signal arrived while locking the buffers at @bos
 * - -ENOMEM, -EMFILE: out of memory or of file descriptors
 */
struct drm_dummy_gpu_submit {
	/** @ring: ring index, below %DUMMY_GPU_PARAM_NUM_RINGS */
	__u32 ring;
	/** @credits: ring credits the job occupies while it runs */
	__u32 credits;
	/** @cmds: user pointer to @cmd_count &struct drm_dummy_gpu_cmd */
	__u64 cmds;
	/** @in_fences: user pointer to @in_fence_count __s32 sync_file fds */
	__u64 in_fences;
	/** @cmd_count: number of commands (may be zero) */
	__u32 cmd_count;
	/** @in_fence_count: number of input fences */
	__u32 in_fence_count;
	/** @flags: DUMMY_GPU_SUBMIT_* */
	__u32 flags;
	/** @out_syncobj: syncobj handle, with %DUMMY_GPU_SUBMIT_OUT_SYNCOBJ */
	__u32 out_syncobj;
	/** @busy_us: minimum execution time of the job, in microseconds */
	__u32 busy_us;
	/** @out_fence: out: sync_file fd of the job's out-fence (O_CLOEXEC) */
	__s32 out_fence;
	/** @seqno: out: the out-fence's seqno on its ring's timeline */
	__u64 seqno;
	/** @in_syncobjs: user pointer to @in_syncobj_count &struct drm_dummy_gpu_syncobj_point */
	__u64 in_syncobjs;
	/** @in_syncobj_count: number of syncobj in-fences */
	__u32 in_syncobj_count;
	/** @bo_count: number of buffers at @bos */
	__u32 bo_count;
	/** @bos: user pointer to @bo_count &struct drm_dummy_gpu_bo_ref */
	__u64 bos;
	/**
	 * @out_point: with %DUMMY_GPU_SUBMIT_OUT_SYNCOBJ, the timeline point at
	 * which the out-fence is added; 0 replaces a binary syncobj's fence
	 */
	__u64 out_point;
};

/* Note: this is an enum so that Rust bindgen can resolve it. */
enum {
	DRM_IOCTL_DUMMY_GPU_GET_PARAM =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_DUMMY_GPU_GET_PARAM,
			 struct drm_dummy_gpu_get_param),
	DRM_IOCTL_DUMMY_GPU_BO_CREATE =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_DUMMY_GPU_BO_CREATE,
			 struct drm_dummy_gpu_bo_create),
	DRM_IOCTL_DUMMY_GPU_BO_MMAP_OFFSET =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_DUMMY_GPU_BO_MMAP_OFFSET,
			 struct drm_dummy_gpu_bo_mmap_offset),
	DRM_IOCTL_DUMMY_GPU_SUBMIT =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_DUMMY_GPU_SUBMIT,
			 struct drm_dummy_gpu_submit),
};

#if defined(__cplusplus)
}
#endif

#endif /* _DUMMY_GPU_DRM_H_ */
