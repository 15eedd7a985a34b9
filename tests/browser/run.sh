#!/bin/sh
# Runs one browser test file against a switchboard binary: tests/browser/run.sh TESTFILE BINARY [ARGS...]
# TESTFILE is a name in tests/browser (test_ws.mjs) or a path; BINARY may be relative to the caller.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 TESTFILE BINARY [ARGS...]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
test=$1
binary=$2
shift 2

if [ -f "$here/$test" ]; then
    test=$here/$test
elif [ -f "$test" ]; then
    test=$(cd "$(dirname "$test")" && pwd)/$(basename "$test")
else
    echo "$0: no test file $test (looked in $here and $(pwd))" >&2
    exit 2
fi
case $binary in
/*) ;;
*) binary=$(pwd)/$binary ;;
esac
if [ ! -x "$binary" ] || [ -d "$binary" ]; then
    echo "$0: $binary is not an executable file (build it first)" >&2
    exit 2
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    echo "$0: $here/node_modules is missing: run 'npm ci --prefix tests/browser --no-audit --no-fund' (make does this)" >&2
    exit 2
fi

# WebRTC gathers ICE candidates on every network interface. Where we may (root, unshare), run the
# browser and the node in a network namespace of their own whose only interface is loopback, so
# no packet of a test call can leave this machine.
if [ -z "${SB_NETNS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
    command -v ip >/dev/null && unshare --net true 2>/dev/null; then
    SB_NETNS=1 exec unshare --net -- "$0" "$test" "$binary" "$@"
fi
if [ -n "${SB_NETNS:-}" ]; then
    ip link set lo up
fi

cd "$here"
exec node "$test" "$binary" "$@"
