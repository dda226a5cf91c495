#!/usr/bin/env bash
# The node's parts must not depend on each other in a circle (issue 17).
# Usage: scripts/check-includes.sh [SRC_DIR [OBJ_DIR]]
#   SRC_DIR  default src/core/node: every #include "node/..." between its files
#            (recursively) is an edge; any cycle of includes fails.
#   OBJ_DIR  the compiled objects of SRC_DIR (the ddkv_node target's, e.g.
#            build-asan/CMakeFiles/ddkv_node.dir/src/core/node): file A calls file
#            B when A's object uses a global symbol B's object defines (nm).
#            Any circle of calls fails: two files calling each other, or a
#            longer loop (a part calls another back only through hooks, the
#            function pointers of module.h).
# Exit 0 clean, 1 a cycle found, 2 bad usage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../src/core/node}
obj=${2:-}
[ -d "$src" ] || { echo "check-includes: no directory $src" >&2; exit 2; }
[ -z "$obj" ] || [ -d "$obj" ] || { echo "check-includes: no directory $obj" >&2; exit 2; }
exec python3 - "$src" "$obj" <<'PY'
import collections, glob, os, re, subprocess, sys

src, obj = sys.argv[1], sys.argv[2]
root = os.path.dirname(os.path.abspath(src.rstrip('/')))  # the dir that "node/..." is relative to
sys.setrecursionlimit(100000)

def cycles(nodes, edges):
    """Strongly connected components of more than one node, or with a self edge."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out

def path_in(comp, edges):
    """One circle through a component, for the message."""
    start = comp[0]; seen = {start: None}; queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                p = [v]
                while seen[p[-1]] is not None:
                    p.append(seen[p[-1]])
                return ' -> '.join(reversed(p)) + ' -> ' + start
            if w in comp and w not in seen:
                seen[w] = v; queue.append(w)
    return ' <-> '.join(comp)

failed = False
files = sorted(glob.glob(os.path.join(src, '**', '*.[ch]'), recursive=True))
inc = re.compile(r'^\s*#\s*include\s+"(node/[^"]+)"', re.M)
names = {os.path.relpath(f, root): f for f in files}
edges = collections.defaultdict(set)
for name, path in names.items():
    with open(path, encoding='utf-8', errors='replace') as fh:
        for target in inc.findall(fh.read()):
            if target in names:
                edges[name].add(target)
hc = cycles(names, edges)
nedges = sum(len(v) for v in edges.values())
print(f'includes: {len(names)} files, {nedges} edges, {len(hc)} cycle(s)')
for comp in hc:
    print(f'  include cycle of {len(comp)} ({" ".join(comp)}), e.g. ' + path_in(comp, edges))
    failed = True

if obj:
    # The object of each source file (objects of removed files may linger).
    objs = {}
    for f in files:
        if f.endswith('.c'):
            rel = os.path.relpath(f, src)
            o = next((p for p in (os.path.join(obj, rel + '.o'), os.path.join(obj, rel[:-2] + '.o'))
                      if os.path.exists(p)), None)
            if o is None:
                print(f'check-includes: no object for {rel} under {obj} (build first)', file=sys.stderr)
                sys.exit(2)
            objs[rel] = o
    defs, uses = {}, {}
    for n, o in sorted(objs.items()):
        out = subprocess.run(['nm', '-g', o], capture_output=True, text=True, check=True).stdout
        d, u = set(), set()
        for line in out.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] == 'U':
                u.add(f[1])
            elif len(f) == 3 and f[1] in 'TDBRCV':
                d.add(f[2])
        defs[n], uses[n] = d, u
    owner = {s: n for n, d in defs.items() for s in d}
    calls = collections.defaultdict(set)
    for n, u in uses.items():
        for s in u:
            if s in owner and owner[s] != n:
                calls[n].add(owner[s])
    mutual = sorted({tuple(sorted((a, b))) for a in list(calls) for b in calls[a] if a in calls.get(b, ())})
    sccs = cycles(defs, calls)
    print(f'calls: {len(defs)} objects, {sum(len(v) for v in calls.values())} edges, '
          f'{len(mutual)} pair(s) calling each other, {len(sccs)} circle(s) of calls')
    for a, b in mutual:
        print(f'  calls each other: {a} <-> {b}')
    for comp in sccs:
        print(f'  circle of {len(comp)} ({" ".join(comp)}), e.g. ' + path_in(comp, calls))
        failed = True
sys.exit(1 if failed else 0)
PY
