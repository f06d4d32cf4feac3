// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for the JobQueue, with mock hardware.
//!
//! The mock hardware follows drm_sched's mock scheduler: a ring that "executes" jobs and
//! raises completions from an hrtimer, or that the test advances by hand. The hrtimer is in
//! the default (not hard) mode: it runs in hard interrupt context without `PREEMPT_RT` and in
//! softirq context with it, which is where [`JobQueue::complete`] may be called from.
//!
//! - `tests/mock.rs`: the mock ring and driver, and the helpers the suites share;
//! - `tests/scenarios.rs` (`rust_jobqueue`): the drm_sched scenarios, and dependency,
//!   timeout, teardown and no-allocation cases;
//! - `tests/stress.rs` (`rust_jobqueue_stress`): 64k jobs in flight and a randomized
//!   dependency DAG of 100k jobs across four queues;
//! - `tests/failnth.rs` (`rust_jobqueue_failnth`): every allocation fails cleanly;
//! - `tests/lifecycle.rs` (`rust_jobqueue_lifecycle`): the lifecycle rules raced on several
//!   CPUs.

use super::*;
use crate::{
    bindings,
    dma_buf::{
        CallbackError,
        DriverFence,
        DriverFenceAllocation,
        FenceCb,
        FenceCbRegistration, //
    },
    kunit::{
        fail_nth,
        lockdep_enabled,
        move_to_cpu,
        spawn, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        new_mutex,
        new_spinlock_irq,
        SpinLock, //
    },
    time::delay::fsleep,
};
use core::{
    pin::Pin,
    ptr, //
};

mod failnth;
mod lifecycle;
mod mock;
mod scenarios;
mod stress;

use mock::*;
