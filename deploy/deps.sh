#!/usr/bin/env bash
# Installs the Debian packages Switchboard needs, only those missing: one script for README, CI and the Dockerfile.
#
#   deploy/deps.sh runtime the shared libraries the switchboard binary needs (container images)
#   deploy/deps.sh build   compiler, CMake and the libraries (enough for `make run`)
#   deploy/deps.sh container  podman and what it needs here to build and run the image
#                          (`make image`, deploy/container/): runc, netavark, aardvark-dns, iptables,
#                          catatonit (pods), debootstrap (the locally made base image)
#   deploy/deps.sh test    build + container + what the tests use (clang/libFuzzer, redis-server,
#                          HAProxy, openssl for test keys and certificates, python3-websockets,
#                          Chromium, Node.js for playwright-core and kubernetes-models)
#   deploy/deps.sh bench   build + what `make bench` uses (redis-server, gnuplot for the plots)
set -euo pipefail

what=${1:-build}

runtime_pkgs=(libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 libssl3
              libcjson1 libhiredis0.14
              ca-certificates)
build_pkgs=(build-essential cmake pkg-config libevent-dev libssl-dev libcjson-dev libhiredis-dev check)
test_pkgs=(clang libclang-rt-dev redis-server haproxy openssl python3 python3-websockets python3-prometheus-client
           chromium nodejs npm
           procps iproute2)
container_pkgs=(podman runc netavark aardvark-dns iptables catatonit debootstrap)
bench_pkgs=(redis-server gnuplot-nox python3 procps)

case "$what" in
runtime) pkgs=("${runtime_pkgs[@]}") ;;
build) pkgs=("${build_pkgs[@]}") ;;
container) pkgs=("${container_pkgs[@]}") ;;
test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${container_pkgs[@]}") ;;
bench) pkgs=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
*)
    echo "usage: $0 runtime|build|container|test|bench" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "deps: this script installs Debian/Ubuntu packages with apt-get; install these by hand:" >&2
    echo "  ${pkgs[*]}" >&2
    exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
    # A command already on PATH from elsewhere (for example Node.js from another source) is enough.
    case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
    esac
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "deps: missing packages, and not root and no sudo: run as root:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
