#!/usr/bin/env bash
# Builds the node image from the Dockerfile at the top of the checkout: `make image` runs this.
#
#   deploy/container/image.sh [TAG]      (default: $IMAGE, else switchboard:dev)
#
# With podman (installed by `deploy/deps.sh container` when neither podman nor a working docker is
# there): the image goes into deploy/container/podman.sh's store in the build tree (build-image/),
# on the base image that deploy/container/base-image.sh makes once with debootstrap; nothing is
# pulled from a registry. With docker (when docker works and podman is not installed), a plain
# `docker build`, whose base comes from Docker Hub. SB_ENGINE=podman|docker chooses.
#
# Prints the image's size at the end. A second build with nothing changed takes seconds (layers
# are cached, the build stage's too: localhost/switchboard-build:cache); images that a rebuild
# left untagged are removed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${1:-${IMAGE:-switchboard:dev}}

say() { printf 'image: %s\n' "$*" >&2; }

engine=${SB_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null; then
        engine=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        engine=docker
    else
        bash "$root/deploy/deps.sh" container
        engine=podman
    fi
fi

t0=$SECONDS
case "$engine" in
docker)
    docker build -t "$tag" -f "$root/Dockerfile" "$root"
    size=$(docker image inspect --format '{{.Size}}' "$tag")
    ;;
podman)
    # Debian/Ubuntu: what podman needs here (runc, netavark, catatonit, debootstrap).
    if command -v apt-get >/dev/null; then
        bash "$root/deploy/deps.sh" container
    fi
    podman=("$here/podman.sh")
    dir=${SB_IMAGE_DIR:-$root/build-image}
    mkdir -p "$dir"
    # One build at a time per store (make image and the test suites may run together).
    exec 9>"$dir/.build.lock"
    flock 9
    "$here/base-image.sh"
    # --format docker: the OCI format has no HEALTHCHECK. --pull=never: no registry. The build
    # stage is tagged too (switchboard-build:cache), so that removing what earlier builds left
    # untagged keeps its cached layers: a rebuild after a source change then only compiles.
    build=("${podman[@]}" build --pull=never --format docker --layers -f "$root/Dockerfile")
    "${build[@]}" --target build -t localhost/switchboard-build:cache "$root"
    "${build[@]}" -t "$tag" "$root"
    "${podman[@]}" image prune -f >/dev/null
    size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
    ;;
*)
    say "SB_ENGINE must be podman or docker, not '$engine'"
    exit 2
    ;;
esac
say "built $tag with $engine in $((SECONDS - t0)) s: $((size / 1000000)) MB"
