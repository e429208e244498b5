"""The package's shape: no import cycles among modules, every project error an OASISError."""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import oasisgan
from oasisgan.errors import OASISError

ROOT = Path(oasisgan.__file__).resolve().parent


def _modules():
    return {".".join(("oasisgan",) + p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in ROOT.rglob("*.py")}


def _module_level_imports(name: str, path: Path, known) -> set:
    """In-package modules `name` imports when it is imported (not inside functions; not under
    TYPE_CHECKING). Importing a.b.c imports the package a.b too."""
    is_pkg = path.name == "__init__.py"
    out = set()

    def visit(node):
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(ch, ast.If) and "TYPE_CHECKING" in ast.unparse(ch.test):
                continue
            if isinstance(ch, ast.Import):
                out.update(a.name for a in ch.names if a.name in known)
            elif isinstance(ch, ast.ImportFrom):
                if ch.level:
                    parts = name.split(".")[: len(name.split(".")) - (ch.level - 1) - (0 if is_pkg else 1)]
                    base = ".".join(parts + ([ch.module] if ch.module else []))
                else:
                    base = ch.module or ""
                for a in ch.names:
                    sub = f"{base}.{a.name}"
                    out.add(sub if sub in known else base)
            else:
                visit(ch)

    visit(ast.parse(path.read_text()))
    with_parents = set()
    for t in out:
        if t not in known:
            continue
        parts = t.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    # a module's own packages are already being imported when it is: not an edge
    return {t for t in with_parents if t in known and not (name + ".").startswith(t + ".") and t != name}


def test_no_import_cycles_at_module_level():
    mods = _modules()
    graph = {m: _module_level_imports(m, p, mods) for m, p in mods.items()}
    state, stack, cycles = {}, [], []

    def walk(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                walk(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            walk(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_module_imports_and_every_error_is_an_oasis_error():
    """(Private control-flow exceptions, `_Name`, never reach the user and are not counted.)"""
    errors = []
    for info in pkgutil.walk_packages(oasisgan.__path__, "oasisgan."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and not cls.__name__.startswith("_") and issubclass(cls, BaseException) and not issubclass(cls, OASISError):
                errors.append(f"{info.name}.{cls.__name__}")
    assert not errors, f"error classes that are not OASISError subclasses: {errors}"


def test_errors_module_imports_nothing_of_the_package():
    tree = ast.parse((ROOT / "errors.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or "oasisgan" in (n.module or ""))]
