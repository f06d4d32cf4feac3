# SPDX-License-Identifier: GPL-2.0
# The kernel build and boot steps shared by dev/test, dev/run, dev/stress and
# dev/bench, for every arch: UML, and x86_64 / arm64 under QEMU. Sourced after
# lib.sh, with TREE set (dev/prepare) and RUSTUP_TOOLCHAIN exported
# (dev/setup).
#
# Kconfig comes only from fragment files: the KUnit config
# (rust/kernel/drm/jobqueue/.kunitconfig), dev/config/sample.config, the
# arch's dev/config/uml.config or dev/config/{smp,wait-context,lean}.config,
# and the named extra fragments (dev/config/NAME.config). kunit.py fails the build if one of
# their options does not make it into .config.

# kernel_build ARCH NAME [FRAGMENT...]
# ARCH: um, x86_64 or arm64. Builds in $CACHE/build-<tree>-NAME and sets
# BUILD and KARCH. On failure prints the tail of the build log and returns 1.
kernel_build() {
	local arch=$1 name=$2 f
	shift 2
	KARCH=$arch
	BUILD="$CACHE/build-${TREE##*/tree-}-$name"
	mkdir -p "$BUILD" "$CCACHE_DIR"
	local args=(--kunitconfig="$TREE/rust/kernel/drm/jobqueue"
		--kunitconfig="$REPO/dev/config/sample.config"
		--build_dir="$BUILD" --jobs="$(nproc)"
		--make_options LLVM=1
		--make_options "RUST_LIB_SRC=$RUST_LIB_SRC"
		--make_options "CC=ccache clang")
	case "$arch" in
	um) args+=(--arch=um --kunitconfig="$REPO/dev/config/uml.config") ;;
	x86_64|arm64) args+=(--qemu_config="$REPO/dev/qemu/$arch.py"
		--kunitconfig="$REPO/dev/config/smp.config"
		--kunitconfig="$REPO/dev/config/wait-context.config"
		--kunitconfig="$REPO/dev/config/lean.config") ;;
	*) die "unknown arch $arch (um, x86_64, arm64)" ;;
	esac
	for f in "$@"; do
		[ -f "$REPO/dev/config/$f.config" ] || die "no dev/config/$f.config"
		args+=(--kunitconfig="$REPO/dev/config/$f.config")
	done
	log "building the $arch kernel in $BUILD"
	if ! (cd "$TREE" && python3 tools/testing/kunit/kunit.py build "${args[@]}") \
		> "$BUILD/build.out" 2>&1; then
		tail -60 "$BUILD/build.out"
		echo "build log: $BUILD/build.out"
		return 1
	fi
	[ -f "$BUILD/samples/rust/dummy_gpu/rust_dummy_gpu.ko" ] ||
		{ echo "the sample driver module was not built"; return 1; }
	# What the leg claims to check must really be in the kernel.
	if [ "$arch" != um ]; then
		grep -qx CONFIG_PROVE_RAW_LOCK_NESTING=y "$BUILD/.config" ||
			{ echo "CONFIG_PROVE_RAW_LOCK_NESTING is not set in $BUILD/.config"; return 1; }
	fi
}

# build_client: installs the kernel's uapi headers into $BUILD/usr/include
# and builds the userspace client against them through its kselftest
# Makefile, with gcc (for the host: UML and x86_64 only); sets CLIENT. The
# objects are rebuilt every time: a changed uapi header must reach them.
build_client() {
	local dir="$TREE/tools/testing/selftests/drivers/gpu/dummy_gpu"
	make -s -C "$TREE" O="$BUILD" ARCH="$KARCH" LLVM=1 headers > "$BUILD/headers.out" 2>&1 ||
		{ cat "$BUILD/headers.out"; return 1; }
	rm -rf "$BUILD/client"
	mkdir -p "$BUILD/client"
	CLIENT="$BUILD/client/dummy_gpu_client"
	make -C "$dir" CC=gcc OUTPUT="$BUILD/client" KHDR_INCLUDES="-I$BUILD/usr/include" \
		> "$BUILD/client.out" 2>&1 || { cat "$BUILD/client.out"; return 1; }
}

# qemu_env ARCH: puts the QEMU wrapper (dev/qemu/qemu-system-jq-*) on PATH
# and picks its accelerator: KVM only for x86_64 on an x86_64 host, and only
# if a KVM guest really boots this kernel (on some hosts it hangs right after
# the firmware; the answer is cached per host); else multi-threaded TCG.
qemu_env() {
	export PATH="$REPO/dev/qemu:$PATH"
	export JQ_QEMU_SMP="${JQ_QEMU_SMP:-2}"
	export JQ_QEMU_ACCEL="tcg,thread=multi"
	[ "$1" = x86_64 ] && [ "$(uname -m)" = x86_64 ] && [ -w /dev/kvm ] || return 0
	local probe="$CACHE/kvm-probe-$(uname -n)"
	if [ ! -f "$probe" ]; then
		log "probing KVM (30 s at most)"
		if JQ_QEMU_ACCEL=kvm timeout 30 qemu-system-jq-x86_64 -nodefaults -nographic \
			-no-reboot -serial stdio -bios qboot.rom -kernel "$BUILD/arch/x86/boot/bzImage" \
			-append "console=ttyS0 kunit.enable=0 panic=-1 rdinit=/jq-no-init" \
			< /dev/null 2>&1 | grep -q "Linux version"; then
			echo kvm > "$probe"
		else
			echo "tcg,thread=multi" > "$probe"
		fi
	fi
	JQ_QEMU_ACCEL=$(cat "$probe")
	log "QEMU accelerator: $JQ_QEMU_ACCEL, $JQ_QEMU_SMP vCPUs"
}

# kunit_exec LOG JSON [kernel args...]
# Boots the KUnit kernel through kunit.py, then re-parses its console log
# with dev/kunit-log.py (SMP consoles replay and interleave lines) into LOG
# and JSON.
kunit_exec() {
	local log=$1 json=$2 a
	shift 2
	local args=(--build_dir="$BUILD" --timeout=3600)
	# GFP_KERNEL allocations count for fail-nth from boot on (dev/patches/0004):
	# the no-allocation checks and sweeps then test what they claim, not skip.
	grep -qx CONFIG_FAULT_INJECTION=y "$BUILD/.config" &&
		args+=(--kernel_args=failslab.ignore_gfp_wait=0
			--kernel_args=fail_page_alloc.ignore_gfp_wait=0)
	rm -f "$BUILD/retries"
	case "$KARCH" in
	um) args+=(--arch=um) ;;
	*) args+=(--qemu_config="$REPO/dev/qemu/$KARCH.py"); qemu_env "$KARCH" ;;
	esac
	for a in "$@"; do args+=(--kernel_args="$a"); done
	[ -n "${FILTER:-}" ] && args+=("$FILTER")
	local try why
	for try in 1 2; do
		rm -f "$BUILD/test.log"
		# Its own verdict does not count: dev/check-log.py judges.
		(cd "$TREE" && timeout 5400 python3 tools/testing/kunit/kunit.py exec "${args[@]}") \
			> "$BUILD/kunit-exec.out" 2>&1 || true
		python3 "$REPO/dev/kunit-log.py" "$BUILD/test.log" > "$log"
		# A QEMU boot can hang bringing up CPUs on a loaded host, and 7.3 on
		# TCG once hit a KASAN report in an interrupt during early boot
		# (identify_cpu): neither is a test result. Boot once more, and say so.
		[ "$KARCH" = um ] && break
		why=$(python3 "$REPO/dev/check-log.py" --boot-ok "$log") && break
		log "KUnit boot $try on $KARCH failed before the tests: $why"
		cp "$log" "$log.boot$try"
		[ "$try" = 1 ] && echo "boot retried: $why" >> "$BUILD/retries"
	done
	python3 "$TREE/tools/testing/kunit/kunit.py" parse --json="$json" "$log" \
		> "$BUILD/kunit-parse.out" 2>&1 || true
}

# boot_userspace LOG SCRIPT [kernel args...]
# Boots $BUILD's kernel with the host's / as a read-only root (UML: hostfs;
# QEMU: virtio-9p) and KUnit off unless the args say otherwise;
# dev/guest-init runs SCRIPT with sh and prints "jq-run: exit RC".
boot_userspace() {
	local out=$1 script=$2
	shift 2
	local common=(kunit.enable=0 "init=$REPO/dev/guest-init" "jq_cmd=$script")
	grep -qx CONFIG_FAULT_INJECTION=y "$BUILD/.config" &&
		common+=(failslab.ignore_gfp_wait=0 fail_page_alloc.ignore_gfp_wait=0)
	case "$KARCH" in
	um)
		timeout 3600 "$BUILD/linux" mem=1G rootfstype=hostfs rootflags=/ ro \
			"${common[@]}" "$@" < /dev/null > "$out" 2>&1 || true
		;;
	x86_64)
		qemu_env x86_64
		timeout 5400 qemu-system-jq-x86_64 -nodefaults -nographic -no-reboot \
			-serial stdio -bios qboot.rom -kernel "$BUILD/arch/x86/boot/bzImage" \
			-fsdev local,id=root,path=/,security_model=none,readonly=on \
			-device virtio-9p-pci,fsdev=root,mount_tag=/dev/root \
			-append "console=ttyS0 root=/dev/root rootfstype=9p rootflags=trans=virtio,version=9p2000.L ro jq_off=reboot ${common[*]} $*" \
			< /dev/null > "$out" 2>&1 || true
		;;
	*) die "no userspace boot on $KARCH (its client would need a $KARCH root)" ;;
	esac
}

# The client's exit status from a boot_userspace log (1 if it never ran).
run_status() {
	sed -n 's/.*jq-run: exit \([0-9]*\).*/\1/p' "$1" | tail -1 | grep . || echo 1
}
