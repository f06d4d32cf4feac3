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
