"""The package's layout: a light ``import gmm_ppl``, a library that never imports its
application (``gmm_ppl.app``), and no import circle among gmm_ppl's modules.

The import checks read the source with ``ast`` (every import statement, those inside
functions included), so they hold for code paths no test runs.
"""

import ast
import subprocess
import sys
import types
from pathlib import Path

import gmm_ppl as gp

PACKAGE = Path(gp.__file__).resolve().parent
# Imported only when a name that needs them is first used (gmm_ppl/__init__.py): plain
# ``import gmm_ppl`` imports none of them, not even JAX or NumPy.
HEAVY = ("matplotlib", "pandas", "arviz", "xarray", "sklearn", "funsor", "jax", "numpyro", "scipy", "numpy")
# The program behind ``python -m gmm_ppl``: it runs the application and is never imported
# by the library, so it is not part of the library.
ENTRY_POINT = PACKAGE / "__main__.py"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported_modules(name: str) -> set[str]:
    """The gmm_ppl modules that module ``name`` imports, anywhere in its code.

    ``from A import b`` counts as importing ``A.b`` when that is a module, else ``A``;
    ``import A.B`` counts as importing ``A.B`` (not also its parent packages, which every
    submodule imports implicitly). The package's table of lazily imported modules
    (``_MODULE_OF`` in gmm_ppl/__init__.py) counts as imports of the package.
    """
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))
    here = name if is_package(name) else name.rpartition(".")[0]
    found = set()

    def known(target: str) -> str | None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        elif (
            name == "gmm_ppl"
            and isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id in ("_MODULE_OF", "_SUBPACKAGES") for t in node.targets)
        ):
            values = node.value.values if isinstance(node.value, ast.Dict) else node.value.elts
            targets = [f"gmm_ppl.{ast.literal_eval(v)}" for v in values]
        else:
            continue
        found |= {t for t in map(known, targets) if t is not None}
    found.discard(name)
    return found


def is_app(name: str) -> bool:
    return name == "gmm_ppl.app" or name.startswith("gmm_ppl.app.")


def test_import_loads_no_heavy_dependency():
    code = f"import sys, gmm_ppl; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"import gmm_ppl loads {', '.join(loaded)}"


def test_every_public_name_resolves():
    for name in gp.__all__:
        assert getattr(gp, name) is not None
        assert name in dir(gp)
    # Two modules are named after the function they define; the package holds the function.
    assert isinstance(gp.compare, types.FunctionType) and isinstance(gp.kmeans, types.FunctionType)
    assert isinstance(gp.datasets, types.ModuleType)


def test_library_never_imports_the_application():
    library = [m for m in MODULES if not is_app(m) and MODULES[m] != ENTRY_POINT]
    assert "gmm_ppl.app.cli" in MODULES and "gmm_ppl.em" in library
    offenders = {m: sorted(filter(is_app, imported_modules(m))) for m in library}
    offenders = {m: apps for m, apps in offenders.items() if apps}
    assert not offenders, f"library modules import the application: {offenders}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a list that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle():
    graph = {m: imported_modules(m) for m in MODULES}
    assert "gmm_ppl.app.report" in graph["gmm_ppl.app.pipeline"]  # the graph sees imports
    assert "gmm_ppl.saved" in graph["gmm_ppl"]  # and the package's lazy table
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def jit_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call ``jax.jit`` (or a bare ``jit``), as a call or a decorator."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "jit" or isinstance(node, ast.Name) and node.id == "jit":
            lines.append(node.lineno)
    return lines


def test_every_compiled_program_is_made_by_gmm_ppl_programs():
    """One owner of compiled programs: jax.jit appears only in gmm_ppl/programs.py, except
    check_stationarity's per-call program (its data are constants of it; see diagnostics.py)."""
    found = {name: jit_calls(path) for name, path in MODULES.items() if name != "gmm_ppl.programs"}
    found = {name: lines for name, lines in found.items() if lines}
    assert jit_calls(MODULES["gmm_ppl.programs"])  # the check sees jax.jit where it is
    assert set(found) == {"gmm_ppl.diagnostics"}, found
    assert len(found["gmm_ppl.diagnostics"]) == 1
