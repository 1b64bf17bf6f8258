#!/usr/bin/env bash
# Builds kube-testplane (embedded etcd + kube-apiserver + kube-controller-manager) and kubectl
# from this Go module, and caches both binaries by a hash of their inputs under
#   ${NATS_OPERATOR_CACHE:-$HOME/.cache/nats-operator}/controlplane/<hash>/
# A warm run only hashes and prints. The last stdout line is the directory of the binaries;
# with --env FILE it also writes NATS_OPERATOR_TESTPLANE_DIR=<dir> (and KUBECTL=...) to FILE.
#
# Usage: e2e/controlplane/build.sh [--env FILE] [--force] [--print-replace]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

K8S_VERSION=v1.36.3 # k8s.io/kubernetes in go.mod; staging modules are v0.${K8S_VERSION#v1.}

env_file=""
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_file="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --print-replace)
      # Regenerate go.mod's replace block for another K8S_VERSION (controlplane.md §1.2).
      gomod="$(GOTOOLCHAIN=local go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@${K8S_VERSION}")"
      sv="v0.${K8S_VERSION#v1.}"
      { grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk '{print $1}'
        sed -n '/^replace (/,/^)/p' "$gomod" | grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' | awk '{print $1}'
      } | sort -u | awk -v v="$sv" '{printf "\t%s => %s %s\n", $1, $1, v}'
      exit 0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# -buildvcs=false: the binaries must not depend on the state of the surrounding git checkout.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null || { echo "build.sh: go not found (need go >= 1.26)" >&2; exit 1; }

# Everything that determines the binaries.
hash="$(
  {
    go version
    go env GOOS GOARCH
    echo "$K8S_VERSION"
    for f in go.mod go.sum build.sh *.go; do
      printf '%s\n' "$f"
      cat "$f"
    done
  } | sha256sum | cut -c1-16
)"
cache_root="${NATS_OPERATOR_CACHE:-$HOME/.cache/nats-operator}/controlplane"
out="$cache_root/$hash"

emit() {
  if [ -n "$env_file" ]; then
    mkdir -p "$(dirname "$env_file")"
    printf 'NATS_OPERATOR_TESTPLANE_DIR=%s\nKUBECTL=%s\n' "$out" "$out/kubectl" >"$env_file"
  fi
  echo "kube-testplane: $out/kube-testplane" >&2
  echo "kubectl:        $out/kubectl" >&2
  echo "$out"
}

if [ -f "$out/.complete" ] && [ -x "$out/kube-testplane" ] && [ -x "$out/kubectl" ]; then
  if [ "$force" = 0 ]; then
    emit
    exit 0
  fi
  rm -rf "$out"
fi

ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=${K8S_VERSION}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor}"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build-$hash.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
echo "build.sh: building kube-testplane and kubectl ${K8S_VERSION} into $out (cold: ~10-20 min on 2 cores)" >&2
go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-testplane" .
go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
got="$("$tmp/kube-testplane" --version)"
[ "$got" = "$K8S_VERSION" ] || { echo "build.sh: kube-testplane reports $got, expected $K8S_VERSION" >&2; exit 1; }
touch "$tmp/.complete"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2

# Publish atomically. A concurrent build of the same hash may have won the race: keep its copy.
chmod 755 "$tmp"
if ! mv -T "$tmp" "$out" 2>/dev/null; then
  [ -f "$out/.complete" ] || { echo "build.sh: cannot publish $out" >&2; exit 1; }
fi
trap - EXIT
rm -rf "$tmp"

# Keep only the 3 most recent builds.
ls -1dt "$cache_root"/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf --

emit
