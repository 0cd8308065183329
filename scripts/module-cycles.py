#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a circle.

An edge a -> b is a `crate::b::...` path in a's non-test code (also inside `use crate::{b::X, ...}`),
resolved to the longest module file that exists. Test modules (`tests/`, `tests.rs`, anything
after `#[cfg(test)]`) are left out: tests may reach anywhere. Prints every circle found, one per
line, and exits 1 if there is any. Usage: module-cycles.py [WORKSPACE_ROOT]
"""
import os
import re
import sys

PATH = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)")
GROUP = re.compile(r"use\s+crate::\{([^;]*)\}")
FIRST = re.compile(r"(?:^|[,{]\s*)([a-z_][a-z0-9_]*)::")


def module_file(src, parts):
    """The file that defines the longest prefix of `parts` as a module."""
    for n in range(len(parts), 0, -1):
        base = os.path.join(src, *parts[:n])
        for f in (base + ".rs", os.path.join(base, "mod.rs")):
            if os.path.isfile(f):
                return f
    return None


def non_test_code(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return re.sub(r"//[^\n]*", "", text)


def edges_of(src):
    files = []
    for d, _, names in os.walk(src):
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".rs") and "/tests/" not in p and n != "tests.rs":
                files.append(p)
    edges = {f: set() for f in files}
    for f in files:
        text = non_test_code(f)
        targets = [m.group(1).split("::") for m in PATH.finditer(text)]
        for m in GROUP.finditer(text):
            targets += [[t] for t in FIRST.findall(m.group(1))]
        for parts in targets:
            t = module_file(src, parts)
            if t and t != f:
                edges[f].add(t)
    return edges


def circles(edges):
    """Strongly connected components with more than one file (iterative Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    found = 0
    crates = os.path.join(root, "crates")
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        if not os.path.isdir(src):
            continue
        for comp in circles(edges_of(src)):
            found += 1
            names = ", ".join(os.path.relpath(p, src) for p in comp)
            print(f"import circle in {crate}: {names}")
    if found:
        print(f"{found} import circle(s): give the shared types a leaf module so imports run one way")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
