#!/usr/bin/env bash
# Makes the Dockerfile's base image, Debian bookworm minbase, locally with debootstrap and imports
# it into deploy/container/podman.sh's store as docker.io/library/debian:bookworm-slim, so that
# the Dockerfile stays the standard one and builds without any registry. Once made, the image
# stays in the store (build-image/ by default) and this script returns at once.
#
#   deploy/container/base-image.sh          make it if missing
#   deploy/container/base-image.sh --force  make it again (e.g. for newer Debian packages)
#
# SB_DEBIAN_MIRROR chooses the Debian mirror; by default the host's own (from its apt sources).
# Needs root (debootstrap), and `deploy/deps.sh container`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
podman=("$here/podman.sh")
BASE=${SB_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}
SUITE=bookworm

say() { printf 'base-image: %s\n' "$*" >&2; }

if [ "${1:-}" != --force ] && "${podman[@]}" image exists "$BASE"; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    say "debootstrap needs root: run this as root (or with sudo)"
    exit 1
fi
command -v debootstrap >/dev/null || {
    say "debootstrap is not installed: run 'bash deploy/deps.sh container'"
    exit 1
}

# The host's Debian mirror, when the host is Debian: the first URIs of a deb822 source for our
# suite, or the first 'deb URL SUITE' line.
host_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            /^[[:space:]]*$/ { if (uris != "" && suites ~ ("(^| )" suite "( |$)")) { print uris; exit }
                               uris = ""; suites = ""; next }
            /^URIs:/   { uris = $2 }
            /^Suites:/ { $1 = ""; suites = $0 }
            END { if (uris != "" && suites ~ ("(^| )" suite "( |$)")) print uris }' "$f" | head -n1
    done | head -n1
    if [ -f /etc/apt/sources.list ]; then
        awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list
    fi
}
mirror=${SB_DEBIAN_MIRROR:-$(host_mirror | head -n1)}
if [ -z "$mirror" ]; then
    say "no Debian mirror in this host's apt sources: set SB_DEBIAN_MIRROR to one (its URL)"
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-base.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs=$work/rootfs

say "debootstrap --variant=minbase $SUITE from $mirror (about 30 s)"
t0=$SECONDS
if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    say "debootstrap failed"
    exit 1
fi

# Apt sources: the host's own on a Debian bookworm host (same mirror, same security archive),
# else the suite and its updates from the mirror used here.
rm -f "$rootfs/etc/apt/sources.list"
# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = "$SUITE" ] &&
    [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
else
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi

# Slim, as Debian's own -slim images: no documentation, manuals or translations now or from later
# installs (copyright files stay), no recommended packages, no package lists or downloaded .debs.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old "$rootfs"/debootstrap
find "$rootfs/var/log" -type f -delete
# The container engine provides these at run time.
: >"$rootfs/etc/resolv.conf"
echo localhost >"$rootfs/etc/hostname"

say "importing $(du -sm "$rootfs" | cut -f1) MB as $BASE"
tar --numeric-owner -C "$rootfs" -cf - . |
    "${podman[@]}" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $SUITE $mirror" - "$BASE" >/dev/null
say "made $BASE in $((SECONDS - t0)) s"
