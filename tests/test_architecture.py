"""The shape of the code: every module imports on its own, imports form layers without cycles,
and no module reaches for another module's private names.

Layers (README; /work/shared/STYLE.md "Layers that only look down"):

* ``dilution`` (the engine) imports no other first-party package;
* ``analysis`` imports ``dilution``;
* ``studies`` imports ``dilution`` and ``analysis``;
* ``benchmarks`` measures the engine: it may import the three packages above, nothing imports it;
* ``paper_figures`` only reads the datasets that studies wrote and draws them: besides numpy,
  xarray, matplotlib and the standard library it may import ``dilution.io`` (the netCDF reader
  and the atomic writer) and nothing else first-party; nothing imports it.

The import graph is read from the sources with ``ast`` (relative imports resolved, imports inside
functions included: a lazy import that dodges a cycle still is one). Each check is run first on
a small synthetic package in ``tmp_path`` that breaks its rule, so a checker that finds nothing
cannot pass.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dilution", "analysis", "studies", "benchmarks", "paper_figures")
# first-party packages each package may import (itself always)
ALLOWED = {
    "dilution": set(),
    "analysis": {"dilution"},
    "studies": {"dilution", "analysis"},
    "benchmarks": {"dilution", "analysis", "studies"},
    "paper_figures": set(),
}
# first-party modules allowed beyond ALLOWED (the readers paper_figures may use)
ALLOWED_MODULES = {"paper_figures": {"dilution.io"}}


# --------------------------------------------------------------------------- the checkers


def find_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of ``packages`` under ``root``
    (a package's ``__init__.py`` is the package itself)."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _package_of(name: str, modules: dict[str, Path]) -> str:
    return name if _is_package(name, modules) else name.rpartition(".")[0]


def _from_base(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` statement imports from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports_of(name: str, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """First-party imports of module ``name``: (imported module, imported name or "", line).

    ``from X import a`` gives module ``X.a`` when that is a module, else ``X`` with name ``a``.
    """
    tree = ast.parse(modules[name].read_text(), filename=str(modules[name]))
    package = _package_of(name, modules)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    out.append((target, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, package)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                if sub in modules:
                    out.append((sub, "", node.lineno))
                elif base in modules:
                    out.append((base, alias.name, node.lineno))
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: {target for target, _, _ in imports_of(name, modules) if target != name} for name in modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(modules: dict[str, Path], allowed=ALLOWED, allowed_modules=ALLOWED_MODULES) -> list[str]:
    out = []
    for name in modules:
        pkg = name.split(".")[0]
        for target, _, line in imports_of(name, modules):
            target_pkg = target.split(".")[0]
            if target_pkg == pkg or target_pkg in allowed.get(pkg, set()):
                continue
            if target in allowed_modules.get(pkg, set()):
                continue
            out.append(f"{modules[name]}:{line}: {name} ({pkg}) imports {target}")
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_bindings(name: str, tree: ast.AST, modules: dict[str, Path]) -> dict[str, str]:
    """Local names that module ``name`` binds to first-party modules (``import a.b`` binds ``a``)."""
    package = _package_of(name, modules)
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.name if alias.asname else alias.name.split(".")[0]
                if bound in modules:
                    out[alias.asname or bound] = bound
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, package)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                if sub in modules:
                    out[alias.asname or alias.name] = sub
    return out


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def private_imports(modules: dict[str, Path]) -> list[str]:
    """``from other import _name`` and ``other._name``, with ``other`` another first-party module."""
    out = []
    for name in modules:
        for target, attr, line in imports_of(name, modules):
            if attr and _private(attr) and target != name:
                out.append(f"{modules[name]}:{line}: {name} imports {attr} from {target}")
        tree = ast.parse(modules[name].read_text())
        bindings = _module_bindings(name, tree, modules)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            dotted = _dotted(node.value)
            if dotted is None or dotted.split(".")[0] not in bindings:
                continue
            head, _, rest = dotted.partition(".")
            owner = bindings[head] + ("." + rest if rest else "")
            if owner in modules and owner != name:
                out.append(f"{modules[name]}:{node.lineno}: {name} uses {owner}.{node.attr}")
    return out


_IMPORT_EACH = textwrap.dedent(
    """
    import importlib, os, sys, traceback
    # Third-party packages are loaded once; each first-party module is then imported in a fork
    # of this interpreter, which holds none of them yet: as fresh as a new interpreter for the
    # question asked (does the module import on its own?) and a hundred times cheaper.
    for dep in sys.argv[2].split(","):
        if dep:
            try:
                importlib.import_module(dep)
            except ImportError:
                pass
    failed = 0
    for name in sys.argv[1].split(","):
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(name)
            except BaseException:
                sys.stderr.write(f"--- import {name} failed:\\n{traceback.format_exc()}")
                sys.stderr.flush()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        failed += status != 0
    sys.exit(1 if failed else 0)
    """
)
_PRELOAD = ("numpy", "scipy.special", "scipy.stats", "scipy.io", "scipy.linalg.cython_blas", "numba", "xarray",
            "matplotlib.pyplot", "netCDF4", "tqdm.auto")


def import_failures(root: Path, names) -> str:
    """stderr of importing each module of ``names`` alone (empty when all import)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, "-c", _IMPORT_EACH, ",".join(names), ",".join(_PRELOAD)], cwd=root,
                         env=env, capture_output=True, text=True, timeout=600)
    return res.stderr if res.returncode else ""


# --------------------------------------------------------------------------- the checkers can fail


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_checkers_find_a_cycle_through_the_package_root_and_a_relative_import(tmp_path):
    _write(tmp_path, {
        "dilution/__init__.py": "from . import a\n__version__ = '1'\n",
        "dilution/a.py": "def f():\n    from . import __version__\n",  # lazy, still a cycle
        "dilution/b.py": "from .c import g\n",
        "dilution/c.py": "from dilution import b\ng = 1\n",
        "dilution/d.py": "from . import a\n",
    })
    found = cycles(import_graph(find_modules(tmp_path, ("dilution",))))
    assert sorted(found) == [["dilution", "dilution.a"], ["dilution.b", "dilution.c"]]


def test_checkers_find_layer_violations(tmp_path):
    _write(tmp_path, {
        "dilution/__init__.py": "",
        "dilution/x.py": "import analysis.m\n",
        "analysis/__init__.py": "",
        "analysis/m.py": "from dilution import x\nfrom studies import s\n",
        "studies/__init__.py": "",
        "studies/s.py": "from analysis.m import y\n",
        "paper_figures/fig.py": "from dilution.io import load\nfrom dilution.x import z\n",
    })
    found = layer_violations(find_modules(tmp_path, ("dilution", "analysis", "studies", "paper_figures")))
    assert sorted(v.split(": ", 1)[1] for v in found) == [
        "analysis.m (analysis) imports studies.s",
        "dilution.x (dilution) imports analysis.m",
        "paper_figures.fig (paper_figures) imports dilution.x",
    ]


def test_checkers_find_private_imports_and_private_attributes(tmp_path):
    _write(tmp_path, {
        "dilution/__init__.py": "from .version import __version__\n",
        "dilution/version.py": "__version__ = '1'\n",
        "dilution/a.py": "def _helper(): pass\n_CONST = 1\ndef ok(): pass\n",
        "dilution/b.py": "from .a import _helper, ok\nfrom . import version\n",
        "dilution/c.py": "from dilution import a\nx = a._CONST\ny = a.ok\n",
        "dilution/d.py": "from . import a as alias\nz = alias._helper\n",
    })
    found = [v.split(": ", 1)[1] for v in private_imports(find_modules(tmp_path, ("dilution",)))]
    assert found == [
        "dilution.b imports _helper from dilution.a",
        "dilution.c uses dilution.a._CONST",
        "dilution.d uses dilution.a._helper",
    ]


def test_import_check_finds_a_module_that_needs_another_imported_first(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "VALUE = 1\n",
        "pkg/b.py": "import pkg\nVALUE = pkg.a.VALUE\n",  # works only after someone imported pkg.a
        "pkg/c.py": "import pkg.a\nimport pkg.b\n",  # c imports a first, so importing c alone works
    })
    err = import_failures(tmp_path, ["pkg.a", "pkg.c", "pkg.b"])
    assert "import pkg.b failed" in err and "import pkg.c failed" not in err and "import pkg.a failed" not in err


# --------------------------------------------------------------------------- the packages


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    found = find_modules(ROOT)
    assert {"dilution.gibbs", "dilution.validation", "analysis", "studies"} <= set(found)
    return found


def test_every_module_imports_on_its_own(modules):
    assert import_failures(ROOT, sorted(modules)) == ""


def test_no_import_cycles(modules):
    assert cycles(import_graph(modules)) == []


def test_layers_only_look_down(modules):
    assert layer_violations(modules) == []


def test_no_module_imports_private_names_of_another(modules):
    assert private_imports(modules) == []
