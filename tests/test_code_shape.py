"""The shape of the source: short functions and short positional calls.

Parsed with `ast`, no import: every function (def and async def, methods and nested functions
included) of src/spurlab is at most MAX_LINES long, counted from its `def` line to its last line
(`end_lineno - lineno + 1`; decorators are not counted), and no call passes more than
MAX_POSITIONAL positional arguments (`*args` counts as one): past that, name them.
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
