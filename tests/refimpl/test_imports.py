"""The import graph of refimpl: imports flow one way (app -> model -> backends -> ops), with no cycle, and
`import refimpl` loads none of the optional or outer packages.

Would catch: an import moved back inside a function to dodge a cycle (the graph is read from every import
statement, top level or not), a module of refimpl importing gpu/ or viz_app/, numba loaded by `import refimpl`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import refimpl

PACKAGE = Path(refimpl.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every refimpl module that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = {t for t in imports_of(path) if t in modules and t != name}
        # a package's __init__ re-exports its children; a child importing a sibling through the package is fine,
        # but the package itself is not an edge back into the child
        edges[name] = {t for t in targets if not name.startswith(t + ".")}
    return edges


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node, stack):
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert len(edges) > 10  # the graph was actually read


def test_the_package_never_imports_the_outer_packages():
    """Nothing in refimpl imports the app, the benchmarks, the GPU package or transformers, anywhere in a file
    (the registry names "gpu.backend:CupyBackend" as a string, imported only when chosen). torch is read only
    inside the one function that needs it (a pytorch_model.bin), never at a module's top."""
    outer = ("gpu", "viz_app", "benchmarks", "streamlit", "plotly", "transformers", "cupy")
    for path in PACKAGE.rglob("*.py"):
        bad = {t for t in imports_of(path) if t.split(".")[0] in outer}
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert "torch" not in top, f"{path.relative_to(PACKAGE.parent)} imports torch at its top"


def test_import_refimpl_loads_no_optional_package():
    code = ("import sys, refimpl; print(sorted(m for m in ('gpu', 'viz_app', 'benchmarks', 'streamlit', 'torch', "
            "'numba', 'cupy', 'transformers', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_paper_files_import_only_numpy_and_each_other():
    """attention.py is the algorithm: it imports numpy and the standard library, nothing of the project's seams or
    files."""
    imported = {t.split(".")[0] for t in imports_of(PACKAGE / "attention.py")}
    assert imported - {"numpy"} <= set(sys.stdlib_module_names), imported
