"""Structure facts of a zoomdream checkout, read from its source (nothing is imported or run):
import cycles, the longest class, the largest module, the module that imports the most others,
imports inside functions, and how many files sit at the top of the package.

    python scripts/structure.py                 # this checkout
    python scripts/structure.py --root ../old   # another checkout, to compare

An import counts wherever it is written: at the top, inside a function, or under
`if TYPE_CHECKING:` (a cycle hidden in a function is still a cycle a reader must follow)."""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)  # package modules it imports, anywhere
    in_functions: int = 0  # import statements inside a function body
    classes: list[tuple[str, int]] = field(default_factory=list)  # (name, lines)


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read(package: Path) -> dict[str, Module]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        modules[module_name(path, package)] = Module(module_name(path, package), path, len(text.splitlines()))
    for m in modules.values():
        tree = ast.parse(m.path.read_text(encoding="utf-8"))
        is_package = m.path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                m.classes.append((node.name, node.end_lineno - node.lineno + 1))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                m.in_functions += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(node)
                                      if n is not node and not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
            for target in _targets(node, m.name, is_package):
                # `from pkg import name`: the module pkg.name if there is one, else pkg itself.
                found = next((t for t in (target, target.rpartition(".")[0]) if t in modules), None)
                if found and found != m.name:
                    m.imports.add(found)
    return modules


def _targets(node: ast.AST, here: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" for a in node.names]


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(modules[v].imports):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return out


def facts(package: Path) -> dict[str, object]:
    modules = read(package)
    classes = [(n, name, m.name) for m in modules.values() for name, n in m.classes]
    longest = max(classes)
    largest = max(modules.values(), key=lambda m: m.lines)
    hub = max(modules.values(), key=lambda m: len(m.imports))
    return {
        "modules": len(modules),
        "lines": sum(m.lines for m in modules.values()),
        "top-level files": len(list(package.glob("*.py"))),
        "import cycles": [" <-> ".join(c) for c in cycles(modules)] or "none",
        "longest class": f"{longest[2]}.{longest[1]} ({longest[0]} lines)",
        "largest module": f"{largest.name} ({largest.lines} lines)",
        "most imports": f"{hub.name} ({len(hub.imports)} of the other {len(modules) - 1} modules)",
        "imports inside functions": sum(m.in_functions for m in modules.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the zoomdream checkout to read")
    args = ap.parse_args()
    for key, value in facts(args.root / "zoomdream").items():
        for i, line in enumerate(value if isinstance(value, list) else [value]):
            print(f"{key if i == 0 else '':<26} {line}")


if __name__ == "__main__":
    main()
