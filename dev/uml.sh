# SPDX-License-Identifier: GPL-2.0
# The UML kernel and userspace steps shared by dev/test and dev/run.
# Sourced after lib.sh, with TREE set (dev/prepare) and RUSTUP_TOOLCHAIN
# exported (dev/setup).

# uml_build VARIANT [kunit.py build options...]
# Builds the UML kernel (the KUnit config plus dev/sample.config, the sample
# driver as a module) in $CACHE/build-<tree>-VARIANT and sets BUILD. On
# failure prints the tail of the build log and returns 1.
uml_build() {
	local variant=$1 opt
	shift
	BUILD="$CACHE/build-${TREE##*/tree-}-$variant"
	mkdir -p "$BUILD" "$CCACHE_DIR"
	local args=(--kunitconfig="$TREE/rust/kernel/drm/jobqueue"
		--build_dir="$BUILD" --arch=um --jobs="$(nproc)"
		--make_options LLVM=1
		--make_options "RUST_LIB_SRC=$RUST_LIB_SRC"
		--make_options "CC=ccache clang")
	while read -r opt; do
		case "$opt" in CONFIG_*) args+=(--kconfig_add "$opt") ;; esac
	done < "$REPO/dev/sample.config"
	log "building the UML kernel in $BUILD"
	if ! (cd "$TREE" && python3 tools/testing/kunit/kunit.py build "${args[@]}" "$@") \
		> "$BUILD/build.out" 2>&1; then
		tail -60 "$BUILD/build.out"
		echo "build log: $BUILD/build.out"
		return 1
	fi
	[ -f "$BUILD/samples/rust/dummy_gpu/rust_dummy_gpu.ko" ] ||
		{ echo "the sample driver module was not built"; return 1; }
}

# build_client: installs the kernel's uapi headers into $BUILD/usr/include
# and builds the userspace client against them; sets CLIENT.
build_client() {
	local src="$TREE/tools/testing/selftests/drivers/gpu/dummy_gpu/dummy_gpu_client.c"
	make -s -C "$TREE" O="$BUILD" ARCH=um LLVM=1 headers > "$BUILD/headers.out" 2>&1 ||
		{ cat "$BUILD/headers.out"; return 1; }
	mkdir -p "$BUILD/client"
	CLIENT="$BUILD/client/dummy_gpu_client"
	gcc -O2 -Wall -Werror -I"$BUILD/usr/include" -o "$CLIENT" "$src"
}

# boot_userspace LOG SCRIPT [kernel args...]
# Boots $BUILD/linux with the host's / as a read-only hostfs root and KUnit
# off; dev/uml-run-init runs SCRIPT with sh and prints "jq-run: exit RC".
boot_userspace() {
	local out=$1 script=$2
	shift 2
	timeout 3600 "$BUILD/linux" mem=1G rootfstype=hostfs rootflags=/ ro \
		kunit.enable=0 "init=$REPO/dev/uml-run-init" "jq_cmd=$script" "$@" \
		< /dev/null > "$out" 2>&1 || true
}

# The client's exit status from a boot_userspace log (1 if it never ran).
run_status() {
	sed -n 's/.*jq-run: exit \([0-9]*\).*/\1/p' "$1" | tail -1 | grep . || echo 1
}
