# SPDX-License-Identifier: GPL-2.0
# Common settings for the dev/ harness. Sourced, not executed.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${JQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-jobqueue}"
KVER_WANT="7.3"
LLVM_VER=19
LLVM_BIN="/usr/lib/llvm-${LLVM_VER}/bin"
export LIBCLANG_PATH="/usr/lib/llvm-${LLVM_VER}/lib"
export RUST_LIB_SRC="${RUST_LIB_SRC:-/usr/lib/rustlib/src/rust/library}"
export PATH="$LLVM_BIN:$HOME/.cargo/bin:$PATH"
export CCACHE_DIR="${CCACHE_DIR:-$CACHE/ccache}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Timer helpers: record and print wall-clock phases.
phase_start() { PHASE_T0=$(date +%s); }
phase_end() { log "$1 took $(( $(date +%s) - PHASE_T0 ))s"; }

# Setup and prepare, once per invocation: dev/jq runs them before its
# command, and the command's own calls below are then no-ops. A command run
# directly (dev/cmd/NAME) runs them itself.
#
# jq_setup: dev/setup, unless JQ_SETUP=1 says it ran; exports
# RUSTUP_TOOLCHAIN (the toolchain it picked) and JQ_SETUP=1.
jq_setup() {
	[ "${JQ_SETUP:-}" = 1 ] && [ -n "${RUSTUP_TOOLCHAIN:-}" ] && return 0
	phase_start
	RUSTUP_TOOLCHAIN=$("$REPO/dev/setup" | tail -1) || exit
	export RUSTUP_TOOLCHAIN JQ_SETUP=1
	phase_end "setup"
}

# jq_prepare: dev/prepare, unless JQ_PREPARED names this cache (dev/docs
# prepares a tree of its own, in its own cache); exports TREE (the
# prepared tree) and JQ_PREPARED=$CACHE.
jq_prepare() {
	[ "${JQ_PREPARED:-}" = "$CACHE" ] && [ -f "${TREE:-}/.jq-complete" ] && return 0
	phase_start
	TREE=$("$REPO/dev/prepare") || exit
	export TREE JQ_PREPARED="$CACHE"
	phase_end "prepare"
}
