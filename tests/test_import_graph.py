"""The shape of the package: no import circles, and every import runs down the floors.

The graph is read from the source with ``ast`` (nothing is imported). Every import statement counts as an
edge, wherever it stands: at module level, inside a function (a lazy import) or under
``if TYPE_CHECKING:``; each is one module depending on another, and a lazy import that hides a circle is
still a circle. ``from package import name`` is an edge to the package's ``__init__`` unless ``name`` is
a submodule; ``from package.module import name`` is an edge to ``package.module`` only (Python runs the
package's ``__init__`` first, but that is how packages work, not a dependency of the importer on it).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Top to bottom. A module may import from its own floor or any floor below, never from one above.
FLOORS = (
    ("srlab", "srlab.__main__", "srlab.cli"),  # the entry points: the public API's facade, the CLI
    ("srlab.report", "srlab.demo", "srlab.mos", "srlab.nas"),  # mos, nas: above train (a trial trains), beside report
    ("srlab.train", "srlab.profile", "srlab.unsupervised"),
    ("srlab.inference", "srlab.adaptive", "srlab.export"),
    ("srlab.models", "srlab.losses", "srlab.lut"),
    ("srlab.metrics",),
    ("srlab.data",),
    ("srlab.layers",),
    ("srlab.errors", "srlab.fileio", "srlab.machine"),
)


def module_names(src: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``src`` (a package is named by its ``__init__.py``)."""
    names = {}
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, source: str, known: set[str], *, is_package: bool = False) -> set[str]:
    """The modules of ``known`` that module ``name`` imports anywhere in ``source``."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: set[str | None] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else resolve(base))
    return {m for m in found if m is not None and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names(SRC)
    known = set(modules)
    return {
        name: imported_modules(name, path.read_text(), known, is_package=path.name == "__init__.py")
        for name, path in modules.items()
    }


def floor_of(module: str) -> int | None:
    matches = [
        (len(prefix), level)
        for level, prefixes in enumerate(FLOORS)
        for prefix in prefixes
        if module == prefix or (prefix != "srlab" and module.startswith(prefix + "."))
    ]
    return max(matches)[1] if matches else None


GRAPH = import_graph()


def test_the_graph_sees_every_kind_of_import():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import srlab.models.registry\n"
        "from srlab.losses import pixel, LossInputs\n"
        "from . import base\n"
        "if TYPE_CHECKING:\n"
        "    from srlab.report.result import BenchmarkResult\n"
        "def lazy():\n"
        "    from srlab.metrics.psnr import psnr\n"
    )
    known = {"srlab.models", "srlab.models.registry", "srlab.losses", "srlab.losses.pixel", "srlab.losses.base",
             "srlab.losses.weighted", "srlab.report.result", "srlab.metrics.psnr"}
    assert imported_modules("srlab.losses.weighted", source, known) == {
        "srlab.models.registry", "srlab.losses.pixel", "srlab.losses", "srlab.losses.base", "srlab.report.result",
        "srlab.metrics.psnr",
    }
    # and on the real package: a loss importing the contract, the package importing its losses
    assert "srlab.losses.base" in GRAPH["srlab.losses.pixel"]
    assert {"srlab.losses.pixel", "srlab.losses.contrastive"} <= GRAPH["srlab.losses"]


def test_every_module_stands_on_a_floor():
    homeless = sorted(m for m in GRAPH if floor_of(m) is None)
    assert not homeless, f"place these modules' package in FLOORS: {homeless}"
    order = ["srlab.cli.main", "srlab.report.html", "srlab.profile.report", "srlab.inference.upscale",
             "srlab.models.complexity", "srlab.metrics.psnr", "srlab.data.io", "srlab.layers.swin", "srlab.errors"]
    assert [floor_of(m) for m in order] == list(range(len(FLOORS)))
    assert floor_of("srlab") == floor_of("srlab.cli") and floor_of("srlab.losses.base") == floor_of("srlab.models")


@pytest.mark.parametrize("package", ["srlab.losses", "srlab.models", "srlab.report", "srlab"])
def test_no_import_circles(package):
    inside = {m: {t for t in targets if t == package or t.startswith(package + ".")}
              for m, targets in GRAPH.items() if m == package or m.startswith(package + ".")}
    try:
        graphlib.TopologicalSorter(inside).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}", pytrace=False)


def test_imports_run_down_the_floors():
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if floor_of(target) < floor_of(module)
    )
    assert not upward, "imports from a higher floor:\n" + "\n".join(upward)
