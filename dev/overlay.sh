# SPDX-License-Identifier: GPL-2.0
# Staging the overlay, shared by dev/prepare (the test tree) and dev/series
# (the upstream series). Sourced after lib.sh.

# The top-level directories whose files the overlay adds to the kernel tree.
OVERLAY_DIRS=(rust samples include Documentation drivers tools)

# stage_overlay STAGE PRISTINE [PATCH...]
# Empties STAGE and writes into it the desired state of every file the
# overlay owns: the overlay's files (tracked and untracked-but-not-ignored:
# what a commit would hold) at their kernel paths, then the PATCHes applied
# in order, each to the pristine copies of the upstream files it touches.
# dev/prepare passes patches/*.patch and dev/patches/*.patch, dev/series
# patches/*.patch only (dev/patches/ holds test-environment fixes). Dies if
# an overlay file exists upstream or a patch does not apply.
stage_overlay() {
	local stage=$1 pristine=$2 p out
	shift 2
	rm -rf "$stage"; mkdir -p "$stage"
	(
		cd "$REPO"
		for d in "${OVERLAY_DIRS[@]}"; do
			[ -d "$d" ] || continue
			git ls-files -co --exclude-standard -- "$d" 2>/dev/null || find "$d" -type f
		done
	) | sort -u | while read -r f; do
		[ -f "$REPO/$f" ] || continue
		if [ -e "$pristine/$f" ]; then
			die "overlay file $f exists upstream; change it with a patch in patches/"
		fi
		mkdir -p "$stage/$(dirname "$f")"
		cp "$REPO/$f" "$stage/$f"
	done
	for p in "$@"; do
		# Seed the stage with the pristine copies of files the patch touches.
		grep -E '^(\+\+\+|---) [ab]/' "$p" | sed -E 's#^(\+\+\+|---) [ab]/##; s#\t.*##' |
		sort -u | while read -r f; do
			if [ ! -e "$stage/$f" ] && [ -e "$pristine/$f" ]; then
				mkdir -p "$stage/$(dirname "$f")"
				cp "$pristine/$f" "$stage/$f"
			fi
		done
		if ! out=$(patch -p1 -d "$stage" --forward --fuzz=0 --no-backup-if-mismatch \
				-r - < "$p" 2>&1); then
			printf '%s\n' "$out" >&2
			die "patch ${p#"$REPO"/} does not apply to $(basename "$pristine")"
		fi
	done
}
