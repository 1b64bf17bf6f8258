#!/usr/bin/env bash
# Builds the nats-server releases the tests run (one per line of ./versions) and the `nats`
# CLI from their Go modules, and caches each binary by a hash of its inputs under
#   ${NATS_OPERATOR_CACHE:-$HOME/.cache/nats-operator}/nats/<name>-<version>-<hash>/
# A warm run only hashes and prints. Stdout: one line per binary, "<name> <version> <path>",
# with name `nats-server` or `nats`. Concurrent runs wait for each other (flock).
#
# Usage: e2e/nats/build.sh [--versions "2.10.27 2.15.3"] [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

versions="$(grep -Ev '^\s*(#|$)' "$here/versions" | awk '{print $1}' | tr '\n' ' ')"
NATSCLI_VERSION=v0.5.1 # github.com/nats-io/natscli
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --versions) versions="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "nats/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# -buildvcs=false: the binaries must not depend on the state of a surrounding git checkout.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
command -v go >/dev/null || { echo "nats/build.sh: go not found (need go >= 1.24)" >&2; exit 1; }
command -v flock >/dev/null || { echo "nats/build.sh: flock not found (apt-get install util-linux)" >&2; exit 1; }

cache_root="${NATS_OPERATOR_CACHE:-$HOME/.cache/nats-operator}/nats"
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9

toolchain="$(go version; go env GOOS GOARCH)"

# build NAME MODULE_PACKAGE VERSION: prints "NAME VERSION PATH", building when not cached.
build() {
  local name="$1" pkg="$2" version="$3"
  local hash out
  hash="$(printf '%s\n' "$toolchain" "$pkg" "$version" "$GOFLAGS" "$(cat "$here/build.sh")" | sha256sum | cut -c1-12)"
  out="$cache_root/$name-$version-$hash"
  if [ "$force" = 1 ]; then rm -rf "$out"; fi
  if [ ! -f "$out/.complete" ]; then
    local tmp start
    tmp="$(mktemp -d "$cache_root/.build-$name-$version.XXXXXX")"
    start=$(date +%s)
    echo "nats/build.sh: building $name $version from $pkg (cold: about a minute on 2 cores)" >&2
    if ! GOBIN="$tmp" go install -ldflags "-s -w" "$pkg@v$version" >&2; then
      rm -rf "$tmp"
      echo "nats/build.sh: go install $pkg@v$version failed" >&2
      return 1
    fi
    touch "$tmp/.complete"
    chmod 755 "$tmp"
    rm -rf "$out"
    mv -T "$tmp" "$out"
    echo "nats/build.sh: $name $version built in $(( $(date +%s) - start ))s" >&2
  fi
  echo "$name $version $out/$name"
}

for v in $versions; do
  v="${v#v}"
  build nats-server github.com/nats-io/nats-server/v2 "$v"
done
build nats github.com/nats-io/natscli/nats "${NATSCLI_VERSION#v}"
