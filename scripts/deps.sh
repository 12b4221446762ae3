#!/usr/bin/env bash
# Installs the Debian 12 packages masquant's build, tests and benchmarks need (skips those present).
set -euo pipefail
# python3-*, pybind11-dev: the Python module and its tests (python3-torch: masquant.torch's).
# ocl-icd-opencl-dev: Debian's oneDNN CMake config requires OpenCL, a mere Recommends of libdnnl-dev.
# pkg-config: the installed package's .pc files are tested.
pkgs=(cmake ninja-build pkg-config g++ clang libclang-rt-14-dev clang-tidy valgrind libeigen3-dev
      libboost-test-dev nlohmann-json3-dev libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev
      libopenblas-dev python3-numpy python3-dev python3-pybind11 pybind11-dev python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "masquant: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
