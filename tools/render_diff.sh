#!/bin/bash
# Render every stack at two revisions and write the unified diff of what the stack would run.
#
#   tools/render_diff.sh BASE HEAD OUT        (BASE, HEAD: any git revision; OUT: the diff file)
#
# Each revision is checked out in its own temporary git worktree and rendered with its own
# `python -m tools.render` (under mocks: no Pulumi CLI, no hypervisor; a revision from before
# tools/render/ was a package runs its tools/render.py the same way). Stacks: every Pulumi.<stack>.yaml
# in either revision, or those named in $STACKS. Generated keys and stdin files (secrets/) are
# left out of the diff. A revision that fails to render leaves RENDER-FAILED in its tree, so the
# failure shows in the diff too; the exit status is 1 when HEAD failed, else 0 (with or without
# differences). $PYTHON picks the interpreter (default: python3).
set -euo pipefail

usage() { echo "usage: $0 BASE HEAD OUT" >&2; exit 2; }
[ $# -eq 3 ] || usage
base=$1 head=$2 out=$3
python=${PYTHON:-python3}
# A relative interpreter path (the Makefile's .venv/bin/python) must hold in the worktrees too.
case $python in */*) python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python") ;; esac
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)

# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  for side in base head; do
    [ -d "$work/src-$side" ] && git -C "$repo" worktree remove --force "$work/src-$side" >/dev/null 2>&1
  done
  rm -rf "$work"
  git -C "$repo" worktree prune
}
trap cleanup EXIT

stacks_of() {  # the stack names a revision has a Pulumi.<stack>.yaml for
  git -C "$repo" ls-tree --name-only "$1" | sed -n 's/^Pulumi\.\(.*\)\.yaml$/\1/p'
}

# The engine registers resources concurrently: order the manifest so only real changes show.
sort_manifest() {
  "$python" - "$1" <<'PY'
import json, sys
path = sys.argv[1]
manifest = json.load(open(path))
for resource in manifest["resources"]:
    for key in ("depends_on", "waits_for"):
        resource[key] = sorted(resource[key])
manifest["resources"].sort(key=lambda r: r["name"])
open(path, "w").write(json.dumps(manifest, indent=2) + "\n")
PY
}

# render SIDE REV: renders every stack into $work/rendered/SIDE/<stack>; fails if any stack did.
render() {
  local side=$1 rev=$2 stack status=0
  git -C "$repo" worktree add --detach --quiet "$work/src-$side" "$rev"
  mkdir -p "$work/rendered/$side"
  for stack in $stacks; do
    [ -f "$work/src-$side/Pulumi.$stack.yaml" ] || continue
    local target="$work/rendered/$side/$stack"
    if ! (cd "$work/src-$side" && "$python" -m tools.render --stack "$stack" --out "$target") \
        >"$work/$side-$stack.log" 2>&1; then
      mkdir -p "$target"
      { echo "python -m tools.render --stack $stack failed at $rev:"; cat "$work/$side-$stack.log"; } \
        >"$target/RENDER-FAILED"
      cat "$target/RENDER-FAILED" >&2
      status=1
    fi
    rm -rf "$target/secrets"
    [ -f "$target/manifest.json" ] && sort_manifest "$target/manifest.json"
  done
  return $status
}

base_rev=$(git -C "$repo" rev-parse --verify "$base^{commit}")
head_rev=$(git -C "$repo" rev-parse --verify "$head^{commit}")
stacks=${STACKS:-$( { stacks_of "$base_rev"; stacks_of "$head_rev"; } | sort -u)}

render base "$base_rev" || echo "note: BASE $base did not render everything (see the diff)" >&2
head_status=0
render head "$head_rev" || head_status=1

# diff exits 1 when the trees differ: that is the expected outcome, not an error.
# Without the file times in the ---/+++ lines, the same change gives the same diff.
(cd "$work/rendered" && diff -ruN base head) | sed -E 's/^((---|\+\+\+) [^\t]*)\t.*$/\1/' >"$out" \
  || [ "${PIPESTATUS[0]}" -eq 1 ]
changed=$(grep -c '^diff ' "$out" || true)
echo "render diff ${base_rev:0:12}..${head_rev:0:12}: $changed file(s) differ -> $out"
exit $head_status
