#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs the dummy_gpu client's test mode (bad input, teardown, and, when the
# driver is a module, unloading it with live out-fences).
DIR=$(dirname "$0")
if ! grep -q dummy_gpu /sys/kernel/debug/dri/*/name 2>/dev/null &&
   ! modprobe rust_dummy_gpu 2>/dev/null && ! ls /dev/dri/renderD* >/dev/null 2>&1; then
	echo "SKIP: no dummy_gpu device (CONFIG_SAMPLE_RUST_DUMMY_GPU)"
	exit 4
fi
MOD=
grep -q '^rust_dummy_gpu ' /proc/modules 2>/dev/null && MOD="--module rust_dummy_gpu"
exec "$DIR/dummy_gpu_client" test $MOD
