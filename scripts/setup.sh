#!/usr/bin/env bash
# Installs the Debian packages the project needs (if missing) and builds it into build/.
# Where nvcc is present, also builds the CUDA backend into build-cuda/ (compiled, run only with a GPU).
# CI=true turns warnings into errors.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libopenblas-dev libcjson-dev libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGV_WERROR=$werror >/dev/null
cmake --build build -j"$jobs"

if [ "${GV_NO_CUDA:-}" != "1" ] && command -v nvcc >/dev/null 2>&1; then
    cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DGV_CUDA=ON -DGV_WERROR=$werror >/dev/null
    cmake --build build-cuda -j"$jobs"
fi
