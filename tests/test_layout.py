"""The package's layers, read from the code: nothing imports upward, and there is no import cycle.

Layers, bottom to top: the core (``labels``, ``samplers``, ``features``, ``palette``, ``io``,
``dip``), ``baselines``, ``api``, ``eval``, and the interfaces ``cli`` and ``web``. A module
may import its own layer and the ones below; ``cli`` may start ``web`` (``dipseg serve``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dipseg

PACKAGE = Path(dipseg.__file__).resolve().parent

LAYER = {
    "dipseg": 0, "dipseg.labels": 0, "dipseg.samplers": 0, "dipseg.features": 0, "dipseg.palette": 0,
    "dipseg.io": 0, "dipseg.uncertainty": 0, "dipseg.graphcut": 0, "dipseg.dip": 0, "dipseg.boxes": 0,
    "dipseg.boxio": 0, "dipseg.clicks": 0,
    "dipseg.baselines": 1,
    "dipseg.api": 2,
    "dipseg.eval": 3,
    "dipseg.web": 4,
    "dipseg.cli": 5,
    "dipseg.__main__": 5,  # ``python -m dipseg`` runs the command line
}  # fmt: skip
# The package's __init__ re-exports the public API (dipseg.segment etc.), like numpy's.
ALLOWED = {("dipseg", "dipseg.api"), ("dipseg", "dipseg.samplers")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """dipseg modules imported anywhere in ``path`` (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t.startswith("dipseg") and t != name:
                found.add(t)
    # strings naming modules that are imported lazily (the METHODS registry)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("dipseg."):
            t = node.value.split(":")[0]
            if t in modules and t != name:
                found.add(t)
    return found


def _layer(name: str) -> int:
    while name not in LAYER:
        name = name.rpartition(".")[0]
    return LAYER[name]


def _top(name: str) -> str:
    return ".".join(name.split(".")[:2])


GRAPH = {name: _imports(name, path, _modules()) for name, path in _modules().items()}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(name):
    upward = sorted(t for t in GRAPH[name]
                    if _layer(t) > _layer(name) and (_top(name), _top(t)) not in ALLOWED)
    assert not upward, f"{name} imports {upward} from a higher layer"


def test_the_core_never_imports_baselines_eval_or_interfaces():
    core = [n for n in GRAPH if _layer(n) == 0 and n != "dipseg"]
    assert "dipseg.dip.fit" in core and "dipseg.io" in core
    for name in core:
        bad = [t for t in GRAPH[name] if _top(t) in ("dipseg.baselines", "dipseg.eval", "dipseg.cli", "dipseg.web")]
        assert not bad, f"core module {name} imports {bad}"


def test_no_import_cycle():
    # Package __init__ modules re-export their children; an edge from a package to its own
    # child is not a dependency of the child on the package.
    def edges(n):
        return {t for t in GRAPH[n] if not (n == "dipseg" or t.startswith(n + "."))}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(edges(n)):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[n] = 2

    for n in sorted(GRAPH):
        if n not in state:
            visit(n)


def test_importing_the_library_does_not_load_torch_or_the_interfaces():
    import subprocess
    import sys

    code = ("import sys, dipseg; heavy = [m for m in ('torch', 'cv2', 'fastapi', 'typer', 'dipseg.eval') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
