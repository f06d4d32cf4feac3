// SPDX-License-Identifier: GPL-2.0

#include <linux/sched.h>

/*
 * Access to current->fail_nth (the per-task fault injection countdown of
 * /proc/thread-self/fail-nth) for KUnit tests that prove a path does not
 * allocate. Through a helper, because task_struct's layout as seen by
 * bindgen does not match C on every architecture (on UML the Rust offset of
 * fail_nth is off by 48 bytes).
 */
#ifdef CONFIG_FAULT_INJECTION
__rust_helper unsigned int rust_helper_current_fail_nth(void)
{
	return READ_ONCE(current->fail_nth);
}

__rust_helper void rust_helper_set_current_fail_nth(unsigned int n)
{
	WRITE_ONCE(current->fail_nth, n);
}
#endif
