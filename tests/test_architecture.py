"""The package's import rules (docs/architecture.md#layers), checked on the source with `ast`.

Every module under src/spurlab is parsed (`spurlab.io.code.all_imports`); its imports (top level
and inside functions, relative ones resolved) make a graph of spurlab modules, which must have

(a) no cycle,
(b) no import from a later layer (`LAYERS`: a module may import its own top-level package and
    the layers before its own, nothing beside or after it),
(c) no function-local import of a spurlab module, unless the target is heavy-optional (its import
    pulls in torch, timm or captum: `HEAVY_OPTIONAL`, checked against the graph) or the importer is
    the command line (`LAZY_IMPORTERS`: `spurlab --help` and each command load only what they run);
    and none of a module that the importer imports at its top anyway.

The rules are checked on synthetic graphs too, so a checker that finds nothing fails.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

# The import graph is the one spurlab.io.code hashes each command's source by (a command's code
# is its handler's imports and everything they import).
from spurlab.io.code import Import, all_imports

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "spurlab"

# The layer order, lowest first (docs/architecture.md#layers; keep the two in step). A unit is a
# top-level module or package of spurlab ("spurlab" itself is the root package: its version only).
# Units in one layer are independent of each other. The packages are stages (every paper's modules
# sit in the stage of what they compute), so the order is the pipeline's.
LAYERS = (
    ("spurlab", "errors"),
    ("io",),
    ("config", "device", "shards", "stats", "tensor_ops"),
    ("data",),
    ("models",),
    ("train",),
    ("features",),
    ("attribution",),
    ("discover",),
    ("measure",),
    ("mitigate",),
    ("models_summary", "inspect"),
    ("report",),
    ("cli",),
)

# Third-party packages slow enough to import (seconds) that a light module imports the spurlab
# modules that need them only inside the function that uses them.
HEAVY_THIRD_PARTY = frozenset({"torch", "timm", "captum"})

# The spurlab modules whose import pulls in HEAVY_THIRD_PARTY (directly or through their top-level
# spurlab imports): the only spurlab modules a function may import locally. The test recomputes the
# set from the graph, so a module that starts or stops importing torch must be listed or unlisted.
HEAVY_OPTIONAL = frozenset({
    "spurlab.attribution", "spurlab.attribution.methods", "spurlab.attribution.normalise",
    "spurlab.attribution.regions", "spurlab.attribution.tcav",
    "spurlab.device",
    "spurlab.discover.attack", "spurlab.discover.linear_head", "spurlab.discover.nam", "spurlab.discover.npfv",
    "spurlab.discover.subsets", "spurlab.features",
    "spurlab.measure.attribution_similarity", "spurlab.measure.bam_attributions", "spurlab.measure.bam_summary",
    "spurlab.measure.bam_tcav", "spurlab.measure.bam_verification", "spurlab.measure.core_crop",
    "spurlab.measure.corruptions", "spurlab.measure.iir_delta", "spurlab.measure.influence", "spurlab.measure.noise",
    "spurlab.measure.posthoc_summary", "spurlab.measure.tcav_tests",
    "spurlab.mitigate.head_tuning",
    "spurlab.models", "spurlab.models.cbr", "spurlab.models.checkpoints", "spurlab.models.factory",
    "spurlab.models.resnet_small", "spurlab.models.robust",
    "spurlab.tensor_ops", "spurlab.train",
})  # fmt: skip

# Importers that may import any spurlab module inside a function: the command line's handlers.
LAZY_IMPORTERS = ("spurlab.cli",)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1 or v in graph.get(v, ()):
                    cycles.append(sorted(component))
    return cycles


def unit_of(module: str) -> str:
    """'spurlab.data.imagesets' -> 'data'; the root package is 'spurlab'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_ranks(layers=LAYERS) -> dict[str, int]:
    return {unit: rank for rank, units in enumerate(layers) for unit in units}


def upward_imports(imports: list[Import], layers=LAYERS) -> list[str]:
    """Imports of a unit in the importer's own layer or a later one (its own unit excepted)."""
    rank = layer_ranks(layers)
    bad = []
    for imp in imports:
        if not imp.target.startswith("spurlab"):
            continue
        src, dst = unit_of(imp.source), unit_of(imp.target)
        if src != dst and rank[dst] >= rank[src]:
            bad.append(f"{imp.source}:{imp.line} imports {imp.target} (layer {dst} is not below {src})")
    return bad


def heavy_modules(imports: list[Import], heavy_third_party=HEAVY_THIRD_PARTY) -> set[str]:
    """Modules whose import pulls in a heavy third-party package, through top-level imports only."""
    top: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.local:
            top.setdefault(imp.source, set()).add(imp.target)
    heavy = {m for m, targets in top.items() if targets & heavy_third_party}
    grown = True
    while grown:
        new = {m for m, targets in top.items() if m not in heavy and targets & heavy}
        heavy |= new
        grown = bool(new)
    return heavy


def lazy_imports(imports: list[Import], heavy: set[str] | frozenset[str] = HEAVY_OPTIONAL,
                 lazy_importers=LAZY_IMPORTERS) -> list[str]:  # fmt: skip
    """Function-local imports of a light spurlab module outside the command line, and of a module
    the importer also imports at its top."""
    top = {(imp.source, imp.target) for imp in imports if not imp.local}
    bad = []
    for imp in imports:
        if not imp.local or not imp.target.startswith("spurlab"):
            continue
        lazy_importer = any(imp.source == p or imp.source.startswith(p + ".") for p in lazy_importers)
        if (imp.source, imp.target) in top or (imp.target not in heavy and not lazy_importer):
            bad.append(f"{imp.source}:{imp.line} imports {imp.target} inside a function "
                       "(import it at the top of the module)")  # fmt: skip
    return bad


def spurlab_graph(imports: list[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target.startswith("spurlab"):
            graph.setdefault(imp.source, set()).add(imp.target)
    return graph


# --- the package ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _package() -> tuple[dict[str, Path], list[Import]]:
    return all_imports(PACKAGE_DIR)


def test_no_import_cycle():
    _, imports = _package()
    assert find_cycles(spurlab_graph(imports)) == []


def test_every_unit_has_a_layer():
    modules, _ = _package()
    units = {unit_of(m) for m in modules}
    placed = set(layer_ranks())
    assert units - placed == set(), "add these to LAYERS (and docs/architecture.md#layers)"
    assert placed - units == set(), "these units of LAYERS no longer exist"


def test_layers_are_the_docs():
    """docs/architecture.md#layers lists the same layers, in the same order."""
    text = (PACKAGE_DIR.parents[1] / "docs" / "architecture.md").read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.M)
    assert [int(n) for n, _ in rows] == list(range(len(rows)))
    assert tuple(tuple(re.findall(r"`([a-z_]+)`", units)) for _, units in rows) == LAYERS


def test_no_import_from_a_later_layer():
    _, imports = _package()
    assert upward_imports(imports) == []


def test_heavy_optional_list_is_the_graphs():
    _, imports = _package()
    heavy = heavy_modules(imports)
    assert sorted(heavy - HEAVY_OPTIONAL) == [], "these import torch/timm/captum: add them to HEAVY_OPTIONAL"
    assert sorted(HEAVY_OPTIONAL - heavy) == [], "these no longer import torch/timm/captum: remove them"


def test_function_local_imports_only_of_heavy_modules():
    _, imports = _package()
    assert lazy_imports(imports) == []


# --- the checkers catch real violations ---------------------------------------------------------


def test_find_cycles_on_synthetic_graphs():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    two = find_cycles({"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}})
    assert sorted(two) == [["a", "b"], ["c", "d"]]
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(3000)}  # deep: no recursion limit
    chain["m3000"] = {"m0"}
    assert len(find_cycles(chain)[0]) == 3001


def test_checkers_on_a_synthetic_package(tmp_path):
    pkg = tmp_path / "spurlab"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import torch\n")
    (pkg / "data" / "__init__.py").write_text("")
    # data.a imports report (a later layer) and, inside a function, data.b (light): cycle a <-> b
    (pkg / "data" / "a.py").write_text("import torch\nfrom ..report import x\n\ndef f():\n    from .b import g\n")
    (pkg / "data" / "b.py").write_text("from . import a\nfrom spurlab.errors import E\n")
    (pkg / "report.py").write_text("from .data.a import f\n\ndef g():\n    from spurlab import errors\n")
    modules, imports = all_imports(pkg)
    assert set(modules) == {"spurlab", "spurlab.errors", "spurlab.data", "spurlab.data.a", "spurlab.data.b",
                            "spurlab.report"}  # fmt: skip
    assert Import("spurlab.data.a", "spurlab.data.b", True, 5, "f") in imports
    assert Import("spurlab.report", "spurlab.errors", True, 4, "g") in imports
    assert find_cycles(spurlab_graph(imports)) == [["spurlab.data.a", "spurlab.data.b", "spurlab.report"]]
    layers = (("spurlab", "errors"), ("data",), ("report",))
    assert upward_imports(imports, layers) == [
        "spurlab.data.a:2 imports spurlab.report (layer report is not below data)"
    ]
    # torch under TYPE_CHECKING is never loaded: errors stays light
    assert heavy_modules(imports) == {"spurlab.data.a", "spurlab.data.b", "spurlab.report"}
    assert lazy_imports(imports, heavy=set()) == [
        "spurlab.data.a:5 imports spurlab.data.b inside a function (import it at the top of the module)",
        "spurlab.report:4 imports spurlab.errors inside a function (import it at the top of the module)",
    ]
    assert lazy_imports(imports, heavy={"spurlab.data.b"}, lazy_importers=("spurlab.report",)) == []
    # a module imported at the top need not be imported again inside a function, heavy or not
    (pkg / "data" / "b.py").write_text("from . import a\n\ndef h():\n    from .a import f\n")
    _, imports = all_imports(pkg)
    assert lazy_imports(imports, heavy={"spurlab.data.a"}, lazy_importers=()) == [
        "spurlab.data.a:5 imports spurlab.data.b inside a function (import it at the top of the module)",
        "spurlab.data.b:4 imports spurlab.data.a inside a function (import it at the top of the module)",
        "spurlab.report:4 imports spurlab.errors inside a function (import it at the top of the module)",
    ]
