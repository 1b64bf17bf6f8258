#!/usr/bin/env bash
# Builds the real test node: kubelet and kube-proxy (the same k8s.io/kubernetes as
# e2e/controlplane), containerd 2.x with its runc shim, runc (with seccomp), the CNI plugins,
# CoreDNS (the plugins cluster DNS needs) and the pod sandbox's pause, and caches them by a
# hash of their inputs under
#   ${NATS_OPERATOR_CACHE:-$HOME/.cache/nats-operator}/node/<hash>/
# A warm run only hashes and prints. The last stdout line is that directory (binaries in bin/,
# CNI plugins in cni/). containerd, runc and the CNI plugins are built with `go install
# <module>@<version>`, so each resolves its dependencies exactly as its release pins them.
#
# Setup it does itself when run as root on Debian: runc needs libseccomp's headers (and
# pkg-config) to build, kube-proxy needs iptables at run time; missing ones are installed
# with apt-get.
#
# Usage: e2e/node/build.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

K8S_VERSION=v1.36.3 # k8s.io/kubernetes in go.mod, as in e2e/controlplane
CONTAINERD_VERSION=v2.2.9
RUNC_VERSION=v1.4.4
CNI_PLUGINS_VERSION=v1.9.1

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
esac

export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null || { echo "build.sh: go not found (need go >= 1.26)" >&2; exit 1; }

# Debian packages the node needs: what is missing, installed once.
need_pkgs=()
[ -f /usr/include/seccomp.h ] || need_pkgs+=(libseccomp-dev)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
command -v gcc >/dev/null || need_pkgs+=(gcc libc6-dev)
command -v iptables-restore >/dev/null || need_pkgs+=(iptables)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build.sh: installing Debian packages: ${need_pkgs[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2; }
  else
    echo "build.sh: missing ${need_pkgs[*]} (install them, or run as root on Debian)" >&2
    exit 1
  fi
fi

hash="$(
  {
    go version
    go env GOOS GOARCH
    echo "$K8S_VERSION $CONTAINERD_VERSION $RUNC_VERSION $CNI_PLUGINS_VERSION"
    for f in go.mod go.sum build.sh */*.go; do
      printf '%s\n' "$f"
      cat "$f"
    done
  } | sha256sum | cut -c1-16
)"
cache_root="${NATS_OPERATOR_CACHE:-$HOME/.cache/nats-operator}/node"
out="$cache_root/$hash"

if [ -f "$out/.complete" ]; then
  if [ "$force" = 0 ]; then
    echo "$out"
    exit 0
  fi
  rm -rf "$out"
fi

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build-$hash.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/cni"

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor}"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done

start=$(date +%s)
echo "build.sh: building the test node into $out (cold: ~10 min on 2 cores)" >&2
CGO_ENABLED=0 go build -trimpath -ldflags "$k8s_ldflags" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/bin/" ./coredns ./pause

# Released modules, each with its own pinned dependencies.
cd "$tmp"
GOFLAGS="-buildvcs=false" GOBIN="$tmp/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
  "github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}"
# runc needs cgo (its nsexec is C) and libseccomp for seccomp profiles (RuntimeDefault).
GOFLAGS="-buildvcs=false" GOBIN="$tmp/bin" CGO_ENABLED=1 go install -trimpath -tags seccomp \
  "github.com/opencontainers/runc@${RUNC_VERSION}"
GOFLAGS="-buildvcs=false" GOBIN="$tmp/cni" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "github.com/containernetworking/plugins/plugins/main/bridge@${CNI_PLUGINS_VERSION}" \
  "github.com/containernetworking/plugins/plugins/main/loopback@${CNI_PLUGINS_VERSION}" \
  "github.com/containernetworking/plugins/plugins/ipam/host-local@${CNI_PLUGINS_VERSION}" \
  "github.com/containernetworking/plugins/plugins/meta/portmap@${CNI_PLUGINS_VERSION}"
cd "$here"

got="$("$tmp/bin/kubelet" --version)"
[ "$got" = "Kubernetes $K8S_VERSION" ] || { echo "build.sh: kubelet reports $got" >&2; exit 1; }
"$tmp/bin/runc" --version | grep -q "libseccomp" || { echo "build.sh: runc built without seccomp" >&2; exit 1; }
touch "$tmp/.complete"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2

chmod 755 "$tmp"
if ! mv -T "$tmp" "$out" 2>/dev/null; then
  [ -f "$out/.complete" ] || { echo "build.sh: cannot publish $out" >&2; exit 1; }
fi
trap - EXIT
rm -rf "$tmp"

# Keep only the 2 most recent builds.
ls -1dt "$cache_root"/*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf --

echo "$out"
