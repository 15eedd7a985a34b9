#!/usr/bin/env bash
# Runs podman with Switchboard's own configuration and image store, both kept in the build tree,
# so that nothing system-wide is read or changed:
#
#   deploy/container/podman.sh images
#   deploy/container/podman.sh run --rm -p 127.0.0.1:8080:8080 switchboard:dev
#   deploy/container/podman.sh push switchboard:dev registry.example.com/switchboard:0.1.0
#
# SB_IMAGE_DIR (default: build-image/ at the top of the checkout) holds the rendered
# containers.conf and storage.conf (from containers.conf.in and storage.conf.in beside this
# script), the image store (storage/), the networks that tests create (networks/) and podman's
# runtime state (run-BOOT/: one per boot, since it describes running containers, so a restarted
# machine starts clean). `deploy/deps.sh container` installs podman and what it needs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if ! command -v podman >/dev/null; then
    echo "podman.sh: podman is not installed: run 'bash deploy/deps.sh container'" >&2
    exit 127
fi

dir=${SB_IMAGE_DIR:-$root/build-image}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
boot=$(tr -dc '0-9a-f' </proc/sys/kernel/random/boot_id 2>/dev/null | cut -c1-8 || true)
run=$dir/run-${boot:-0}
mkdir -p "$run" "$dir/networks"

# Runtime state of earlier boots describes containers that no longer run: drop it (unless
# something is still mounted under it, which only a live podman of this boot would have done).
for old in "$dir"/run-*; do
    [ "$old" = "$run" ] || [ ! -d "$old" ] && continue
    grep -qF " $old/" /proc/mounts 2>/dev/null || rm -rf "$old"
done

# Renders a template (@DIR@, @RUN@) only when the result differs, atomically, so that concurrent
# callers never see a half-written file.
render() {
    local tmp
    tmp=$(mktemp "$2.XXXXXX")
    sed -e "s|@DIR@|$dir|g" -e "s|@RUN@|$run|g" "$1" >"$tmp"
    if cmp -s "$tmp" "$2"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$2"
    fi
}
render "$here/containers.conf.in" "$dir/containers.conf"
render "$here/storage.conf.in" "$dir/storage.conf"

export CONTAINERS_CONF=$dir/containers.conf
export CONTAINERS_STORAGE_CONF=$dir/storage.conf
exec podman "$@"
