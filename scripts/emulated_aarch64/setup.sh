#!/usr/bin/env bash
# Idempotent setup of an emulated aarch64 TVM RPC server environment (qemu user-mode, no binfmt_misc).
# Usage: scripts/emulated_aarch64/setup.sh DEST [PIP]  (make emulator runs it; see autocomp/measure/emulator.py)
#   DEST  directory to fill: DEST/sysroot (aarch64 Debian libs + python3.11), DEST/site (aarch64 wheels),
#         DEST/python-aarch64 (wrapper), DEST/start_server.py (launcher, copied if next to this script)
#   PIP   pip executable used for `pip download` (default: pip3 / pip on PATH); any x86 pip works,
#         it only downloads wheels for another platform.
# Needs root (apt-get, dpkg --add-architecture) and network to Debian apt + PyPI.
set -euo pipefail

DEST=${1:?usage: $0 DEST [PIP]}
PIP=${2:-$(command -v pip3 || command -v pip)}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYSROOT=$DEST/sysroot
SITE=$DEST/site
T0=$(date +%s)
log() { echo "[setup +$(( $(date +%s) - T0 ))s] $*"; }

export DEBIAN_FRONTEND=noninteractive

# 1. host tools: qemu user-mode emulator + aarch64 cross compiler (for export_library(cc=...))
need_host=()
command -v qemu-aarch64-static >/dev/null || need_host+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need_host+=(gcc-aarch64-linux-gnu)
# crti.o etc. for linking shared objects (a Recommends of gcc-aarch64-linux-gnu, so ask for it by name)
[ -f /usr/aarch64-linux-gnu/lib/crti.o ] || need_host+=(libc6-dev-arm64-cross)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "adding dpkg architecture arm64"
  dpkg --add-architecture arm64
  NEED_UPDATE=1
fi
if [ ${#need_host[@]} -gt 0 ] || [ -n "${NEED_UPDATE:-}" ] || [ ! -f "$DEST/.apt-updated" ]; then
  log "apt-get update"
  apt-get update -qq
  touch "$DEST/.apt-updated"
fi
if [ ${#need_host[@]} -gt 0 ]; then
  log "apt-get install ${need_host[*]}"
  apt-get install -y -qq --no-install-recommends "${need_host[@]}" >/dev/null
fi

# 2. aarch64 sysroot with python3.11 (apt-get download + dpkg -x; nothing installed system-wide)
ARM_PKGS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libffi8
  libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 libgcc-s1
  libstdc++6 libdb5.3 libgdbm6 libnsl2 libtirpc3 libcrypt1 libgssapi-krb5-2 libkrb5-3 libk5crypto3
  libcom-err2 libkrb5support0 libkeyutils1)
if [ ! -x "$SYSROOT/usr/bin/python3.11" ] || [ ! -f "$DEST/.sysroot-done" ]; then
  mkdir -p "$DEST/debs" "$SYSROOT"
  pushd "$DEST/debs" >/dev/null
  missing=()
  for p in "${ARM_PKGS[@]}"; do ls "${p}"_*_arm64.deb >/dev/null 2>&1 || missing+=("$p:arm64"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get download ${#missing[@]} arm64 packages"
    # -o APT::Sandbox::User=root: avoids the "_apt couldn't access" warning when DEST is root-only
    apt-get download -qq -o APT::Sandbox::User=root "${missing[@]}"
  fi
  for d in *.deb; do dpkg -x "$d" "$SYSROOT"; done
  popd >/dev/null
  touch "$DEST/.sysroot-done"
fi

# 3. aarch64 wheels unpacked into DEST/site
WHEELS=(apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post1 "numpy<2.3" ml_dtypes typing_extensions
  psutil cloudpickle)
if [ ! -f "$DEST/.site-done" ]; then
  mkdir -p "$DEST/wheels" "$SITE"
  log "pip download aarch64 wheels"
  "$PIP" download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
    --platform manylinux_2_17_aarch64 --platform linux_aarch64 \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    -d "$DEST/wheels" "${WHEELS[@]}"
  for w in "$DEST"/wheels/*.whl; do
    python3 -c 'import sys,zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$SITE"
  done
  # zipfile does not keep the executable bit; shared libraries do not need it, scripts are unused.
  touch "$DEST/.site-done"
fi

# 4. wrapper: lets sys.executable re-exec work without binfmt_misc
cat > "$DEST/python-aarch64" <<WRAP
#!/bin/sh
# aarch64 python3.11 under qemu user-mode emulation
export PYTHONPATH="$SITE\${PYTHONPATH:+:\$PYTHONPATH}"
export PYTHONNOUSERSITE=1
exec qemu-aarch64-static -L "$SYSROOT" "$SYSROOT/usr/bin/python3.11" "\$@"
WRAP
chmod +x "$DEST/python-aarch64"
if [ -f "$HERE/start_server.py" ] && [ "$HERE" != "$DEST" ]; then cp "$HERE/start_server.py" "$DEST/"; fi

# 5. smoke test
log "smoke test"
tmpc=$(mktemp -d); echo 'int f(void){return 42;}' > "$tmpc/t.c"
aarch64-linux-gnu-gcc -shared -fPIC -o "$tmpc/t.so" "$tmpc/t.c" && echo "cross-link ok"; rm -rf "$tmpc"
"$DEST/python-aarch64" -c 'import platform,sys; print(platform.machine(), sys.version.split()[0])'
TVM_USE_RUNTIME_LIB=1 "$DEST/python-aarch64" -c 'import tvm, numpy, cloudpickle, psutil; print("tvm", tvm.__version__, "numpy", numpy.__version__)'
log "done: $(du -sh "$SYSROOT" | cut -f1) sysroot, $(du -sh "$SITE" | cut -f1) site"
