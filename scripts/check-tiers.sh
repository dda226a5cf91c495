#!/usr/bin/env bash
# The source tree's tiers (ARCHITECTURE.md, "Tiers"): src/core is the
# replicated service, src/lib/client is libddkv, src/apps the programs on it,
# and every include points down. Usage:
#   scripts/check-tiers.sh [SRC_DIR [ALLOWLIST]]
#     SRC_DIR    default src (this checkout's)
#     ALLOWLIST  default scripts/long-functions.txt
# Fails when
#   a. a file includes a header of a component above its own. The components,
#      lowest first: core/util < core/proto < core/consensus < core/kv <
#      core/node < lib/client < apps/jobs < apps/agent < apps/hub < apps/cli.
#      A file may include its own component's headers and those of the
#      components before it; include/ddkv/wire.h counts as core/proto's,
#      include/ddkv's other headers (ddkv.h) as lib/client's. An include that
#      names no component ("../x.h", "core/node/x.h"), a header of another
#      folder named by its bare name, or a folder in no tier fails too;
#   b. a .c or .h file under SRC_DIR is over 2,000 lines;
#   c. a function is over 150 lines (from the line of its name to its closing
#      brace, as ctags counts) and ALLOWLIST has no line for it with a reason;
#      a line of ALLOWLIST for a function that is not over 150 lines fails too;
#   d. two .c or .h files under SRC_DIR share a name;
#   e. a part's private state is seen outside the part: a struct listed in
#      PRIVATE below is defined in a file other than its owner's, or a
#      private header is included by a file that is not one of its part's;
#   f. headers include each other in a cycle.
# ALLOWLIST: "PATH:FUNCTION REASON" a line, PATH under SRC_DIR; # comments.
# Exit 0 clean, 1 a rule broken, 2 bad usage or a file the scanner cannot read.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../src}
allow=${2:-$here/long-functions.txt}
[ -d "$src" ] || { echo "check-tiers: no directory $src" >&2; exit 2; }
[ -f "$allow" ] || { echo "check-tiers: no allowlist $allow" >&2; exit 2; }
exec python3 - "$src" "$allow" <<'PY'
import collections, os, re, sys

src, allow_path = sys.argv[1], sys.argv[2]
MAX_FILE_LINES = 2000
MAX_FUNCTION_LINES = 150
ORDER = ['core/util', 'core/proto', 'core/consensus', 'core/kv', 'core/node',
         'lib/client',
         'apps/jobs', 'apps/agent', 'apps/hub', 'apps/cli']
RANK = {c: i for i, c in enumerate(ORDER)}
BY_NAME = {c.split('/')[1]: c for c in ORDER}  # "node" -> "core/node": the include roots
PUBLIC = {'ddkv/wire.h': 'core/proto'}         # include/ddkv/*; any other: lib/client
# The node's parts (ARCHITECTURE.md, "The node's parts"): each struct's
# definition lives in one file, and only the part's files include it.
PRIVATE_STRUCTS = {'replica': 'core/node/replica.c', 'cluster': 'core/node/cluster.c',
                   'conn_server': 'core/node/conn_int.h'}
PRIVATE_HEADERS = {'core/node/conn_int.h': {'core/node/conn.c', 'core/node/node_tls.c',
                                            'core/node/addrtab.c'}}
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)

def blank(s):
    return ''.join(ch if ch == '\n' else ' ' for ch in s)

def strip(text):
    """The text with comments, string and character literals and preprocessor
    lines blanked (line breaks kept, so line numbers hold)."""
    out, i, n, bol = [], 0, len(text), True
    while i < n:
        c = text[i]
        if bol:
            j = i
            while j < n and text[j] in ' \t':
                j += 1
            if j < n and text[j] == '#':  # a directive, with its continuation lines
                while j < n and not (text[j] == '\n' and text[j - 1] != '\\'):
                    if text.startswith('/*', j):
                        k = text.find('*/', j + 2)
                        j = n if k < 0 else k + 2
                    else:
                        j += 1
                out.append(blank(text[i:j]))
                i, bol = j, False
                continue
        bol = False
        if text.startswith('/*', i):
            k = text.find('*/', i + 2)
            k = n if k < 0 else k + 2
        elif text.startswith('//', i):
            k = text.find('\n', i)
            k = n if k < 0 else k
        elif c in '"\'':
            k = i + 1
            while k < n and text[k] != c and text[k] != '\n':
                k += 2 if text[k] == '\\' else 1
            k = min(k + 1, n)
        else:
            bol = c == '\n'
            out.append(c)
            i += 1
            continue
        out.append(blank(text[i:k]))
        i = k
    return ''.join(out)

NOT_NAMES = {'if', 'for', 'while', 'switch', 'return', 'sizeof', '__attribute__', '__typeof__', 'typeof',
             '_Alignas', '_Alignof', '_Static_assert', '_Generic'}

def head_name(head):
    """The name a file-scope head before '{' defines as a function, or None
    (a struct, union or enum body, an initializer)."""
    h = head.strip()
    if not h.endswith(')'):
        return None
    depth = 0
    for m in re.finditer(r'[()=]', h):
        ch = m.group()
        if ch == '=' and depth == 0:
            return None
        if ch == '(':
            if depth == 0:
                name = re.search(r'([A-Za-z_]\w*)\s*$', h[:m.start()])
                if name and name.group(1) not in NOT_NAMES:
                    return name.group(1), name.start(1)
            depth += 1
        elif ch == ')':
            depth -= 1
    return None

def functions(text):
    """(name, first line, last line) of each function defined at file scope."""
    s = strip(text)
    res, depth, head_start, opened = [], 0, 0, None
    for i, c in enumerate(s):
        if c == '{':
            if depth == 0:
                head = s[head_start:i]
                found = head_name(head)
                if found:
                    lead = len(head) - len(head.lstrip())
                    opened = (found[0], head_start + lead + found[1])
            depth += 1
        elif c == '}':
            depth -= 1
            if depth < 0:
                raise ValueError('a } without its { at line %d' % (s.count('\n', 0, i) + 1))
            if depth == 0:
                if opened:
                    res.append((opened[0], s.count('\n', 0, opened[1]) + 1, s.count('\n', 0, i) + 1))
                    opened = None
                head_start = i + 1
        elif c == ';' and depth == 0:
            head_start = i + 1
    if depth:
        raise ValueError('%d { without their } at the end' % depth)
    return res

def component(rel):
    parts = rel.split('/')
    return '/'.join(parts[:2]) if len(parts) > 2 else None

problems = collections.defaultdict(list)
files = []
for d, dirs, names in os.walk(src):
    dirs.sort()
    for f in sorted(names):
        if f.endswith(('.c', '.h')):
            files.append(os.path.relpath(os.path.join(d, f), src))
texts = {}
for rel in files:
    with open(os.path.join(src, rel), encoding='utf-8', errors='replace') as fh:
        texts[rel] = fh.read()

# a. includes point down
nincludes = 0
basenames = collections.defaultdict(list)
for rel in files:
    basenames[os.path.basename(rel)].append(rel)
for rel in files:
    comp = component(rel)
    if comp not in RANK:
        problems['a'].append('%s: in no tier (the components are %s)' % (rel, ', '.join(ORDER)))
        continue
    for m in INCLUDE.finditer(texts[rel]):
        target = m.group(1)
        nincludes += 1
        line = texts[rel].count('\n', 0, m.start()) + 1
        where = '%s:%d: #include "%s"' % (rel, line, target)
        if '/' not in target:
            here_file = os.path.join(os.path.dirname(rel), target)
            if here_file not in texts and target in basenames:
                problems['a'].append('%s: another folder\'s header by its bare name (%s)'
                                     % (where, ', '.join(basenames[target])))
            continue  # its own folder's, or generated (ddkv_git_rev.h)
        first = target.split('/')[0]
        if first == 'ddkv':
            to = PUBLIC.get(target, 'lib/client')
        elif first in BY_NAME and '..' not in target.split('/'):
            to = BY_NAME[first]
        else:
            problems['a'].append('%s: names no component (include "%s/...": one of %s)'
                                 % (where, 'COMPONENT', ', '.join(sorted(BY_NAME))))
            continue
        if RANK[to] > RANK[comp]:
            problems['a'].append('%s: %s includes %s, a tier above it' % (where, comp, to))

# b. file length
for rel in files:
    n = len(texts[rel].splitlines())
    if n > MAX_FILE_LINES:
        problems['b'].append('%s: %d lines (at most %d)' % (rel, n, MAX_FILE_LINES))

# c. function length
allowed, bad_allow = {}, []
with open(allow_path, encoding='utf-8') as fh:
    for k, raw in enumerate(fh, 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        m = re.match(r'^(\S+):([A-Za-z_]\w*)(?:\s+(.*))?$', line)
        if not m or not (m.group(3) or '').strip():
            bad_allow.append('%s:%d: "%s": want PATH:FUNCTION and the reason it may be long'
                             % (allow_path, k, line))
            continue
        allowed[(m.group(1), m.group(2))] = k
nfunctions, seen_long = 0, set()
for rel in files:
    try:
        fns = functions(texts[rel])
    except ValueError as e:
        print('check-tiers: %s: cannot scan: %s' % (rel, e), file=sys.stderr)
        sys.exit(2)
    nfunctions += len(fns)
    for name, a, b in fns:
        n = b - a + 1
        if n > MAX_FUNCTION_LINES:
            if (rel, name) in allowed:
                seen_long.add((rel, name))
            else:
                problems['c'].append('%s:%d: %s is %d lines (at most %d, or a line in %s saying why)'
                                     % (rel, a, name, n, MAX_FUNCTION_LINES, os.path.basename(allow_path)))
problems['c'] += bad_allow
for key, k in sorted(allowed.items(), key=lambda kv: kv[1]):
    if key not in seen_long:
        problems['c'].append('%s:%d: %s:%s is not over %d lines (or is gone): remove the line'
                             % (allow_path, k, key[0], key[1], MAX_FUNCTION_LINES))

# d. one name, one file
for base, where in sorted(basenames.items()):
    if len(where) > 1:
        problems['d'].append('%s: %d files of that name (%s)' % (base, len(where), ', '.join(where)))

# e. private state stays in its part
def resolve(rel, target):
    """The file under SRC_DIR an include names, or None (a system or generated one)."""
    if '/' not in target:
        cand = os.path.join(os.path.dirname(rel), target)
        return cand if cand in texts else None
    first = target.split('/')[0]
    if first in BY_NAME:
        cand = BY_NAME[first].split('/')[0] + '/' + target
        return cand if cand in texts else None
    return None
includes = {rel: [(resolve(rel, m.group(1)), texts[rel].count('\n', 0, m.start()) + 1)
                  for m in INCLUDE.finditer(texts[rel])] for rel in files}
for rel in files:
    stripped = strip(texts[rel])
    for name, owner in sorted(PRIVATE_STRUCTS.items()):
        for m in re.finditer(r'\bstruct\s+%s\s*\{' % name, stripped):
            if rel != owner:
                problems['e'].append('%s:%d: defines struct %s, private to %s'
                                     % (rel, stripped.count('\n', 0, m.start()) + 1, name, owner))
    for target, line in includes[rel]:
        if target in PRIVATE_HEADERS and rel not in PRIVATE_HEADERS[target]:
            problems['e'].append('%s:%d: includes %s, private to %s'
                                 % (rel, line, target, ', '.join(sorted(PRIVATE_HEADERS[target]))))
for name, owner in sorted(PRIVATE_STRUCTS.items()):
    if owner not in texts or not re.search(r'\bstruct\s+%s\s*\{' % name, strip(texts[owner])):
        problems['e'].append('%s: should define struct %s (or PRIVATE in this script is stale)' % (owner, name))

# f. no include cycles among headers
graph = {rel: sorted({t for t, _ in includes[rel] if t and t.endswith('.h')}) for rel in files if rel.endswith('.h')}
state, stack = {}, []
def visit(h):
    state[h] = 1
    stack.append(h)
    for t in graph.get(h, []):
        if state.get(t) == 1:
            cyc = stack[stack.index(t):] + [t]
            problems['f'].append('headers include each other: %s' % ' -> '.join(cyc))
        elif t not in state:
            visit(t)
    stack.pop()
    state[h] = 2
for h in sorted(graph):
    if h not in state:
        visit(h)

RULES = {'a': 'includes point down', 'b': 'files of at most %d lines' % MAX_FILE_LINES,
         'c': 'functions of at most %d lines' % MAX_FUNCTION_LINES, 'd': 'one file per name',
         'e': 'private state stays in its part', 'f': 'no include cycles'}
for r in 'abcdef':
    for p in problems[r]:
        print('%s (%s): %s' % (r, RULES[r], p))
if problems['a']:
    print('   the order, lowest first: %s; include/ddkv/wire.h is core/proto\'s, include/ddkv/ddkv.h '
          'lib/client\'s' % ' < '.join(ORDER))
total = sum(len(v) for v in problems.values())
print('tiers: %d files, %d includes, %d functions (%d allowed over %d lines): %s'
      % (len(files), nincludes, nfunctions, len(seen_long), MAX_FUNCTION_LINES,
         'clean' if not total else '%d problem(s)' % total))
sys.exit(1 if total else 0)
PY
