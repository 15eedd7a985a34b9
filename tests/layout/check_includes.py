#!/usr/bin/python3
"""Checks node/'s layering from its #include lines: no module includes another that includes it
back (directly or in a circle), and a module includes only its own folder or a folder below it
(base < net, cluster < app < main.c; net and cluster know nothing of each other). A module is a
header and the source files that implement it (node/README.md). Usage: check_includes.py NODE_DIR"""

import os
import re
import sys

# Which folders each folder may include, besides itself (proto/ headers are always allowed).
BELOW = {"base": set(), "net": {"base"}, "cluster": {"base"}, "app": {"base", "net", "cluster"},
         "": {"base", "net", "cluster", "app"}}
# Source files that implement a module whose header has another name.
PARTS = {"app/peers": "app/relay", "app/rooms": "app/relay", "app/relaying": "app/relay",
         "app/relay_int": "app/relay", "cluster/bus_memory": "cluster/bus",
         "cluster/dir_memory": "cluster/dir", "base/stream_bev": "base/stream"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module(path):
    stem = os.path.splitext(path)[0]
    return PARTS.get(stem, stem)


def main():
    root = sys.argv[1]
    edges, problems = {}, []
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith((".c", ".h")):
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                text = f.read()
            src, src_folder = module(rel), os.path.dirname(rel)
            for inc in INCLUDE.findall(text):
                if "/" not in inc:
                    if os.path.exists(os.path.join(root, inc)):
                        problems.append(f"{rel}: includes {inc} without its folder")
                    continue  # a proto/ header
                dst = module(inc)
                dst_folder = os.path.dirname(inc)
                if not os.path.exists(os.path.join(root, inc)):
                    problems.append(f"{rel}: includes {inc}, which does not exist")
                elif dst_folder != src_folder and dst_folder not in BELOW[src_folder]:
                    problems.append(f"{rel}: includes {inc}, a folder above or beside {src_folder}/")
                if dst != src:
                    edges.setdefault(src, set()).add(dst)
    # A cycle between modules, found by depth-first search.
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                problems.append("modules include each other: " + " -> ".join(stack + [m, n]))
            elif n not in state:
                visit(n, stack + [m])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    for p in problems:
        print(p)
    print(f"{len(edges)} modules checked; {len(problems)} problems")
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
