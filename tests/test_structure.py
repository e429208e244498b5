"""The package's shape: no import cycles among modules (function-local imports included), in-package
imports at module level outside the command line, every project error an OASISError."""
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


# The only modules whose in-package imports may sit inside functions: the command line's, which
# import the library when a command runs, so that `oasis --help` stays free of torch
# (tests/test_cli_help.py).
LAZY_IMPORTS_ALLOWED = ("oasisgan.cli", "oasisgan.commands")


def _lazy_allowed(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in LAZY_IMPORTS_ALLOWED)


def _imports(name: str, path: Path, known) -> dict:
    """In-package modules `name` imports -> whether only inside functions. Imports under
    TYPE_CHECKING are not counted. Importing a.b.c imports the packages a and a.b too; a module's
    own packages are already being imported when it is, so they count only when named explicitly
    (`from . import name` reads a name the package's __init__ must already have defined)."""
    is_pkg = path.name == "__init__.py"
    out = {}

    def add(target, local):
        out[target] = out.get(target, True) and local

    def visit(node, local):
        for ch in ast.iter_child_nodes(node):
            inner = local or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(ch, ast.If) and "TYPE_CHECKING" in ast.unparse(ch.test):
                continue
            if isinstance(ch, ast.Import):
                for a in ch.names:
                    if a.name in known:
                        add(a.name, local)
            elif isinstance(ch, ast.ImportFrom):
                if ch.level:
                    parts = name.split(".")[: len(name.split(".")) - (ch.level - 1) - (0 if is_pkg else 1)]
                    base = ".".join(parts + ([ch.module] if ch.module else []))
                else:
                    base = ch.module or ""
                for a in ch.names:
                    sub = f"{base}.{a.name}"
                    add(sub if sub in known else base, local)
            else:
                visit(ch, inner)

    visit(ast.parse(path.read_text()), False)
    edges = {}
    for t, local in out.items():
        if t not in known:
            continue
        parts = t.split(".")
        for i in range(2, len(parts) + 1):
            q = ".".join(parts[:i])
            implicit_own_package = q != t and (name + ".").startswith(q + ".")
            if q in known and q != name and not implicit_own_package:
                edges[q] = edges.get(q, True) and local
    return edges


def _graph():
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def test_no_import_cycles():
    """Function-local imports count: a cycle closed only by importing inside a function is a cycle."""
    graph = _graph()
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


def test_in_package_imports_are_at_module_level():
    """Outside the command line (LAZY_IMPORTS_ALLOWED), the package's own modules are imported at the
    top of a module, where a reader sees them (optional third-party packages may stay local)."""
    lazy = sorted(f"{m} -> {t}" for m, edges in _graph().items() for t, local in edges.items()
                  if local and not _lazy_allowed(m))
    assert not lazy, "in-package imports inside functions: " + "; ".join(lazy)


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
