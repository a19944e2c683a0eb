#!/usr/bin/env bash
# Sourced by the GPU benches: builds build-cuda/ with -DGV_CUDA=ON into the bench's output folder's logs.
# cJSON: if .deps/*.deb exist (Debian's libcjson1/libcjson-dev, carried to a machine without it), they are
# unpacked into /tmp/cj and used. Expects $out (log folder). Exits the bench on a failed build.
cmake_args=()
if ls .deps/*.deb >/dev/null 2>&1; then
    for f in .deps/*.deb; do dpkg -x "$f" /tmp/cj; done
    cmake_args=(-DCMAKE_PREFIX_PATH=/tmp/cj/usr -DCMAKE_LIBRARY_PATH=/tmp/cj/usr/lib/x86_64-linux-gnu
                -DCMAKE_INCLUDE_PATH=/tmp/cj/usr/include)
    export LD_LIBRARY_PATH=/tmp/cj/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DGV_CUDA=ON "${cmake_args[@]}" >"$out/cmake.log" 2>&1 &&
    cmake --build build-cuda -j"$(nproc)" >>"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
