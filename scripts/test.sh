#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the real tools the tests drive (Debian's
# docker-registry, skopeo, umoci, …) when missing, installs the npm dependencies, builds, runs vitest.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A NEED=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [umoci]=umoci
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [pigz]=pigz
  [zstd]=zstd
  [setfattr]=attr
  [jq]=jq
  [oci-image-tool]=oci-image-tool
  [buildah]=buildah
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# A static busybox: the one program the buildah test runs inside an image (chroot isolation).
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker-registry package may start a system registry on :5000; the tests start their own.

npm ci --no-audit --no-fund
npm run typecheck
npx vitest run "$@"
