#!/usr/bin/env bash
# ctest's fixture container.images: builds, once per test run, the images that the container and
# Kubernetes suites run: the node image, through the very script `make image` runs
# (deploy/container/image.sh: switchboard:dev, on the base image made once with debootstrap), and
# a test-only Redis image (redis.Containerfile). Cold (no build-image/ yet): 1-2 minutes;
# after that, seconds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the container suites run podman as root (its store is the build tree's, its base image made with debootstrap); run them as root, as CI does"
    exit 77
fi

# At a lower priority: other suites run beside this one, and some of them measure timing.
renice -n 10 $$ >/dev/null 2>&1 || true
t0=$SECONDS
SB_ENGINE=podman bash "$root/deploy/container/image.sh" "${SB_TEST_IMAGE:-switchboard:dev}"
dir=${SB_IMAGE_DIR:-$root/build-image}
(
    flock 9
    "$root/deploy/container/podman.sh" build --pull=never --format docker --layers \
        -t localhost/switchboard-test-redis:7.0 -f "$here/redis.Containerfile" "$here"
) 9>"$dir/.build.lock"
"$root/deploy/container/podman.sh" image prune -f >/dev/null
echo "images ready in $((SECONDS - t0)) s"
