#!/usr/bin/env bash
# The newcomer's path, measured: clones this repository's HEAD into an empty temporary
# directory (nothing beside it, so no ../shared), with cold caches of its own (our build
# cache, Go's build and module caches, the cargo target directory; only cargo's download
# cache of crates is shared), no nats-server on PATH and no upstream examples, and runs the
# README's test command there. Prints the wall time of the whole run.
#
# Usage: e2e/fresh-clone.sh [--keep]   (takes the better part of an hour on 2 cores)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keep=0
[ "${1:-}" = "--keep" ] && keep=1

work="$(mktemp -d /tmp/nats-operator-fresh.XXXXXX)"
# The Go module cache is read-only by design.
cleanup() { [ "$keep" = 1 ] || { chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; }; }
trap cleanup EXIT

git clone --quiet --no-local "$repo" "$work/nats-operator"
cd "$work/nats-operator"

# No nats-server from anywhere but the clone's own build.
path=""
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -x "$d/nats-server" ] || path="${path:+$path:}$d"
done

start=$(date +%s)
set +e
env -u NATS_OPERATOR_UPSTREAM_EXAMPLES -u NATS_SERVER_BINS -u NATS_OPERATOR_TESTPLANE_DIR \
  -u KUBECONFIG -u E2E_KUBECONFIG -u CI \
  PATH="$path" \
  NATS_OPERATOR_CACHE="$work/cache" \
  GOCACHE="$work/go-build" \
  GOMODCACHE="$work/go-mod" \
  CARGO_TARGET_DIR="$work/target" \
  CARGO_INCREMENTAL=0 \
  cargo test --workspace 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
echo "fresh clone: cargo test --workspace exited $status after $(( $(date +%s) - start )) s (log: $work/test.log)"
exit "$status"
