"""The shape of the source: short functions, short positional calls, and tests that mirror it.

Parsed with `ast`, no import: every function (def and async def, methods and nested functions
included) of src/spurlab is at most MAX_LINES long, counted from its `def` line to its last line
(`end_lineno - lineno + 1`; decorators are not counted), and no call passes more than
MAX_POSITIONAL positional arguments (`*args` counts as one): past that, name them. Every module has
its test module (tests/<pkg>/test_<name>.py) or an entry in COVERED_BY naming the stage test that
imports it (the rule in full above `COVERED_BY`).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "spurlab"
MAX_LINES = 80
MAX_POSITIONAL = 5


def long_functions(tree: ast.AST, where: str = "<string>") -> list[str]:
    """'where:line name (n lines)' for every function longer than MAX_LINES."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_LINES:
                out.append(f"{where}:{node.lineno} {node.name} ({n} lines)")
    return out


def long_positional_calls(tree: ast.AST, where: str = "<string>") -> list[str]:
    """'where:line callee (n positional)' for every call with more than MAX_POSITIONAL positional
    arguments."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) > MAX_POSITIONAL:
            out.append(f"{where}:{node.lineno} {ast.unparse(node.func)} ({len(node.args)} positional)")
    return out


def _sources():
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no sources under {SRC}"
    for path in files:
        yield path.relative_to(SRC.parent), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_no_function_longer_than_80_lines():
    found = [f for rel, tree in _sources() for f in long_functions(tree, str(rel))]
    assert found == [], f"split these into named helpers (at most {MAX_LINES} lines each):\n" + "\n".join(found)


def test_no_call_with_more_than_5_positional_arguments():
    found = [c for rel, tree in _sources() for c in long_positional_calls(tree, str(rel))]
    assert found == [], f"pass these by keyword (at most {MAX_POSITIONAL} positional):\n" + "\n".join(found)


def test_the_checks_find_what_they_look_for():
    """Self-check on synthetic source: each rule fires on a violation, and only there."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))  # def line + 79 = 80 lines: allowed
    source = (
        f"def fits():\n{body}\n\n"
        f"def too_long():\n{body}\n    x = 0\n\n"  # 81 lines
        f"class C:\n    def method(self):\n        def nested():\n"
        + "\n".join(f"        {ln}" for ln in body.splitlines())
        + "\n"
        "            return 1\n"  # nested: 82 lines; method: 83
        "\n"
        "f(1, 2, 3, 4, 5)\n"  # 5 positional: allowed
        "f(1, 2, 3, 4, 5, 6)\n"  # 6: refused
        "g(1, 2, 3, 4, *rest, key=1)\n"  # *rest counts as one: 5
        "g(1, 2, 3, 4, 5, *rest)\n"  # 6: refused
    )
    tree = ast.parse(source)
    assert [f.split()[1] for f in long_functions(tree)] == sorted(["too_long", "method", "nested"], key=source.index)
    assert [c.split(" (")[1] for c in long_positional_calls(tree)] == ["6 positional)", "6 positional)"]
    assert len(long_functions(ast.parse(f"def fits():\n{body}\n"))) == 0


# --- tests mirror src/ ------------------------------------------------------------------------
#
# The rule: every module src/spurlab/<pkg>/<name>.py has tests/<pkg>/test_<name>.py (a top-level
# module src/spurlab/<name>.py: tests/test_<name>.py), unless COVERED_BY maps it to the stage test
# that covers it. `__init__.py` and `__main__.py` are exempt unless they hold logic (a function or
# class at their top level): a package's `__init__.py` then has tests/<pkg>/test_<pkg>.py (today
# only spurlab.cli's: make_parser, main), a `__main__.py` tests/<pkg>/test_main.py. More test
# files than modules are fine (themes, stages, reliability).

TESTS = SRC.parents[1] / "tests"

# Modules whose tests live in a stage's test, where a file of their own would be artificial (module
# -> that test file, relative to the repository root). Each test file must import the module.
COVERED_BY = {
    # the interventional checks' summary and its figure: run on the stage's hand-built tables,
    # whose figure the test redraws from the summary
    "measure/interventions_summary.py": "tests/measure/test_interventions.py",
    "measure/interventions_figures.py": "tests/measure/test_interventions.py",
    # the mitigation summary: the stage test checks it reaches the metrics table and summary.md
    "mitigate/mitigation_summary.py": "tests/mitigate/test_group_robustness.py",
    # the D(i, j) subsets stage: run here on real images with an empty class group, and on a seeded
    # toy model by the salient stages' test (through tests/conftest.py's salient_stages)
    "discover/subsets.py": "tests/discover/test_importance_empty_groups.py",
}


def _holds_logic(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)


def mirror_test(rel: Path) -> Path | None:
    """The test file of module `rel` (relative to the package directory), None when exempt."""
    parent, stem = rel.parent, rel.stem
    if stem == "__init__":
        return parent / f"test_{parent.name or 'spurlab'}.py"
    if stem == "__main__":
        return parent / "test_main.py"
    return parent / f"test_{stem}.py"


def imports_module(test: Path, module: str) -> bool:
    """Whether test file `test` imports dotted `module` (`import m`, `from m import x`, or `from
    package import name`), at its top or inside a function."""
    package, _, name = module.rpartition(".")
    for node in ast.walk(ast.parse(test.read_text(encoding="utf-8"), filename=str(test))):
        if isinstance(node, ast.Import) and any(
            a.name == module or a.name.startswith(module + ".") for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == module or node.module.startswith(module + "."):
                return True
            if node.module == package and any(a.name == name for a in node.names):
                return True
    return False


def untested_modules(src: Path, tests: Path, covered: dict[str, str]) -> list[str]:
    """'module: wanted test' for every module of package directory `src` without its mirror test
    under `tests` or a COVERED_BY entry, and 'module: ...' for every stale or wrong entry."""
    out, seen = [], set()
    root = tests.parent
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts:
            continue
        key = rel.as_posix()
        seen.add(key)
        if rel.stem in ("__init__", "__main__") and not _holds_logic(path):
            continue
        want = tests / mirror_test(rel)
        if want.is_file():
            if key in covered:
                out.append(f"{key}: has {want.relative_to(root)}; remove it from COVERED_BY")
            continue
        if key not in covered:
            out.append(f"{key}: add {want.relative_to(root)} (or a COVERED_BY entry)")
            continue
        test = root / covered[key]
        module = ".".join((src.name, *rel.with_suffix("").parts))
        if not test.is_file():
            out.append(f"{key}: COVERED_BY names {covered[key]}, which does not exist")
        elif not imports_module(test, module):
            out.append(f"{key}: COVERED_BY names {covered[key]}, which does not import {module}")
    out += [f"{key}: in COVERED_BY but no such module" for key in sorted(set(covered) - seen)]
    return out


def test_every_module_has_its_test():
    assert untested_modules(SRC, TESTS, COVERED_BY) == []


def test_mirror_checker_on_a_synthetic_tree(tmp_path):
    src, tests = tmp_path / "src" / "spurlab", tmp_path / "tests"
    for rel, text in {
        "__init__.py": "__version__ = '1'\n",  # no logic: exempt
        "errors.py": "",
        "io/__init__.py": "from .files import f\n",
        "io/files.py": "",
        "io/figures.py": "",
        "cli/__init__.py": "def main():\n    pass\n",  # logic: tests/cli/test_cli.py
        "cli/__main__.py": "main()\n",
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    (tests / "io").mkdir(parents=True)
    (tests / "test_errors.py").write_text("")
    (tests / "io" / "test_files.py").write_text("from spurlab.io import figures\n")
    covered = {"io/figures.py": "tests/io/test_files.py"}
    assert untested_modules(src, tests, covered) == [
        "cli/__init__.py: add tests/cli/test_cli.py (or a COVERED_BY entry)"
    ]
    (tests / "cli").mkdir()
    (tests / "cli" / "test_cli.py").write_text("import spurlab.cli\n")
    assert untested_modules(src, tests, covered) == []
    # a new module without a test fails
    (src / "io" / "hdf5.py").write_text("")
    assert untested_modules(src, tests, covered) == ["io/hdf5.py: add tests/io/test_hdf5.py (or a COVERED_BY entry)"]
    (tests / "io" / "test_hdf5.py").write_text("")
    assert untested_modules(src, tests, covered) == []
    # COVERED_BY entries: the test must import the module, exist, and the module must need the entry
    (tests / "io" / "test_files.py").write_text("from spurlab.io.files import x\n")
    bad = {"io/figures.py": "tests/io/test_files.py", "io/files.py": "tests/io/test_files.py",
           "gone.py": "tests/test_errors.py"}  # fmt: skip
    assert untested_modules(src, tests, bad) == [
        "io/figures.py: COVERED_BY names tests/io/test_files.py, which does not import spurlab.io.figures",
        "io/files.py: has tests/io/test_files.py; remove it from COVERED_BY",
        "gone.py: in COVERED_BY but no such module",
    ]
    assert untested_modules(src, tests, {"io/figures.py": "tests/io/test_nothing.py"}) == [
        "io/figures.py: COVERED_BY names tests/io/test_nothing.py, which does not exist"
    ]
    for line in ("import spurlab.io.figures\n", "from spurlab.io.figures import save\n"):
        (tests / "io" / "test_files.py").write_text(f"def test():\n    {line}")
        assert untested_modules(src, tests, covered) == []
