"""The package's own source as provenance (docs/architecture.md#code-provenance).

Every table, HDF5 file and JSON file spurlab writes records `spurlab_version` and `code_sha256`
(`code_provenance`), and every Snakemake rule gets the same hash as a param, so a change of that
code reruns the rule. The hash is not the whole package's: it covers the source files the command
that writes the output can run (`command_files`), found on the source with `ast`:

- the command line (`spurlab.cli`, every module of it), without what the other commands' handlers
  import inside themselves;
- every spurlab module that is imported from there, at a module's top or inside a function, and
  its parent packages (Python runs a package's `__init__` before any module of it), to the end;
- the package files a module reads (`DATA_DIRS`: the config schema, the HTML templates).

Outside a command (library use, tests) and for a rule that runs no spurlab command, the hash is
the whole package's. Files are hashed by relative path and bytes, in sorted order: the same source
tree gives the same hash on any machine. The import graph is also what tests/test_architecture.py
checks the layers on.

Parsing every module takes about 0.3 s, which each job that writes an output would pay; the graph is
kept in a cache file named by the hash of every module's path and bytes (`graph_key`), under
$SPURLAB_CACHE_DIR, else $XDG_CACHE_HOME/spurlab, else ~/.cache/spurlab. Any edit of a module names
another file, so a stale graph is never read (the 16 newest are kept); where the folder cannot be
written, the graph is parsed every time.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .. import __version__
from ..errors import SpurlabError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CODE_KEYS = ("spurlab_version", "code_sha256")
# Package files other than modules: folder -> the module that reads them (SCHEMA_PATH, TEMPLATES).
# Any other non-module file is no source (tests/io/test_code.py checks there is none).
DATA_DIRS = {"schemas": "spurlab.config", "templates": "spurlab.io.render"}
# `spurlab <command>` in a rule's shell command
_COMMAND = re.compile(r"(?:^|[\s;&|(])spurlab\s+([a-z][a-z0-9-]*)")


class Import(NamedTuple):
    source: str  # importing module
    target: str  # imported spurlab module, or the top-level name of a third-party package
    local: bool  # inside a function
    line: int
    function: str = ""  # the top-level function (or method) it is in; "" at module level


def module_names(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package (a package is its __init__)."""
    root = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of `from <node.level dots><node.module> import ...` in module `name`."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(target: str, modules: dict[str, Path]) -> str:
    """The longest prefix of `target` that is a module (an imported name resolves to its module)."""
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def _type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`): imports for annotations, never run."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")  # fmt: skip


def imports_of(name: str, path: Path, modules: dict[str, Path], package: str = "spurlab") -> list[Import]:
    """Every import in the module: spurlab targets as module names, others as their top-level package.
    Under `if TYPE_CHECKING:` only spurlab targets count (a dependency all the same, but nothing loads)."""
    is_package = path.name == "__init__.py"
    found = []

    def add(target: str, function: str, line: int, typing_only: bool):
        if target == package or target.startswith(package + "."):
            found.append(Import(name, _owner(target, modules), bool(function), line, function))
        elif target and not typing_only:
            found.append(Import(name, target.split(".")[0], bool(function), line, function))

    def visit(node: ast.AST, function: str, typing_only: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, function, child.lineno, typing_only)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(name, is_package, child)
                for alias in child.names:  # `from pkg import mod` imports the module pkg.mod
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in modules else base, function, child.lineno, typing_only)
            is_def = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            visit(child, function or (child.name if is_def else ""), typing_only or _type_checking(child))

    visit(ast.parse(path.read_bytes(), str(path)), "", False)
    return found


def all_imports(package_dir: Path = PACKAGE_DIR) -> tuple[dict[str, Path], list[Import]]:
    modules = module_names(package_dir)
    package = package_dir.name
    return modules, [imp for name, path in modules.items() for imp in imports_of(name, path, modules, package)]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _table_entry(call: ast.Call) -> tuple[str, str, str | None] | None:
    """(command, handler, settings module) of a `Command(name, stage, help, handler, ...,
    settings="module:Class")` entry of the command table (spurlab.cli.table), else None."""
    if not (isinstance(call.func, ast.Name) and call.func.id == "Command"):
        return None
    kw = {k.arg: k.value for k in call.keywords}
    name = call.args[0] if call.args else kw.get("name")
    handler = call.args[3] if len(call.args) > 3 else kw.get("handler")
    if not (isinstance(name, ast.Constant) and isinstance(handler, ast.Name)):
        return None
    spec = call.args[5] if len(call.args) > 5 else kw.get("settings")
    settings = spec.value.partition(":")[0] if isinstance(spec, ast.Constant) and ":" in str(spec.value) else None
    return name.value, handler.id, settings


def command_handlers(package_dir: Path = PACKAGE_DIR) -> dict[str, tuple[str, str, str | None]]:
    """{command: (cli module, handler function, settings module or None)}, read from the cli code:
    the command table's `Command(...)` entries, and for registrar modules each
    `sub.add_parser("<command>", ...)` with the `p.set_defaults(func=<handler>)` after it."""
    cli = f"{package_dir.name}.cli"
    out = {}
    for name, path in module_names(package_dir).items():
        if not _in(name, cli):
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_bytes(), str(path))) if isinstance(n, ast.Call)]
        command = None
        for call in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
            entry = _table_entry(call)
            if entry:
                out[entry[0]] = (name, entry[1], entry[2])
            elif not isinstance(call.func, ast.Attribute):
                continue
            elif call.func.attr == "add_parser" and call.args and isinstance(call.args[0], ast.Constant):
                command = call.args[0].value
            elif call.func.attr == "set_defaults" and command is not None:
                for kw in call.keywords:
                    if kw.arg == "func" and isinstance(kw.value, ast.Name):
                        out[command] = (name, kw.value.id, None)
    return out


CACHE_ENV = "SPURLAB_CACHE_DIR"
CACHE_KEEP = 16  # graphs kept per package name (the newest written): a few source trees in use


def cache_dir() -> Path:
    """Where the import graph is cached: $SPURLAB_CACHE_DIR, else $XDG_CACHE_HOME/spurlab, else
    ~/.cache/spurlab."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spurlab"


def graph_key(modules: dict[str, Path]) -> str:
    """sha256 over (module name, size, bytes) of every module: what the import graph is made of
    (this module, which builds it, included)."""
    h = hashlib.sha256()
    for name, path in sorted(modules.items()):
        data = path.read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _parse_graph(package_dir: Path) -> tuple[list[Import], dict[str, tuple[str, str, str | None]]]:
    _, imports = all_imports(package_dir)
    return [imp for imp in imports if _in(imp.target, package_dir.name)], command_handlers(package_dir)


def _write_cache(path: Path, text: str) -> None:
    """`text` to `path` through a temporary file beside it and a rename (concurrent jobs write the
    same bytes); nothing where the folder cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        older = sorted(path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.json"), key=lambda p: p.stat().st_mtime)
        for stale in older[:-CACHE_KEEP]:  # the graphs of trees edited since
            stale.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def _cached_graph(package_dir: Path, modules: dict[str, Path]):
    """`_parse_graph(package_dir)`, read from the cache file of the modules' `graph_key` if there
    is one, else parsed and written there."""
    path = cache_dir() / f"import-graph-{package_dir.name}-{graph_key(modules)}.json"
    try:
        text = path.read_text()
    except OSError:  # not cached yet, or the folder is not readable
        imports, handlers = _parse_graph(package_dir)
        _write_cache(path, json.dumps({"imports": imports, "handlers": handlers}))
        return imports, handlers
    try:
        cached = json.loads(text)
        return [Import(*imp) for imp in cached["imports"]], {c: tuple(h) for c, h in cached["handlers"].items()}
    except (ValueError, TypeError, KeyError):
        raise SpurlabError(f"{path}: not an import-graph cache file; delete it") from None


@functools.lru_cache(maxsize=8)
def _graph(package_dir: Path) -> tuple[dict[str, Path], tuple[Import, ...], dict[str, tuple[str, str, str | None]]]:
    modules = module_names(package_dir)
    imports, handlers = _cached_graph(package_dir, modules)
    return modules, tuple(imports), handlers


def command_modules(command: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The spurlab modules `spurlab <command>` can run (see the module docstring)."""
    modules, imports, handlers = _graph(package_dir)
    if command not in handlers:
        raise SpurlabError(f"'{command}' is not a spurlab command (see spurlab --help)")
    own = handlers[command][:2]
    other_handlers = {h[:2] for h in handlers.values()} - {own}
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if (imp.source, imp.function) not in other_handlers:
            edges.setdefault(imp.source, set()).add(imp.target)
    settings = handlers[command][2]  # imported by name when the command runs (spurlab.cli.table)
    todo = [m for m in modules if _in(m, f"{package_dir.name}.cli")] + ([settings] if settings in modules else [])
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parents = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]
        todo += [p for p in parents if p in modules] + sorted(edges.get(m, ()))
    return seen


def _data_files(package_dir: Path, folder: str) -> list[Path]:
    return [p for p in (package_dir / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")]  # fmt: skip


def source_files(package_dir: Path = PACKAGE_DIR, command: str | None = None) -> list[str]:
    """The relative paths ('spurlab/io/code.py') of the package's source files, sorted: every
    module and data file, or with `command` those that command can run and read."""
    modules = module_names(package_dir)
    owners = {folder: module.replace("spurlab", package_dir.name, 1) for folder, module in DATA_DIRS.items()}
    if command is None:
        paths = list(modules.values()) + [p for folder in owners for p in _data_files(package_dir, folder)]
    else:
        ran = command_modules(command, package_dir)
        paths = [modules[m] for m in ran]
        paths += [p for folder, owner in owners.items() if owner in ran for p in _data_files(package_dir, folder)]
    return sorted(p.relative_to(package_dir.parent).as_posix() for p in paths)


@functools.lru_cache(maxsize=256)
def code_sha256(command: str | None = None, package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over (relative path, size, bytes) of `source_files(package_dir, command)`."""
    h = hashlib.sha256()
    for rel in source_files(package_dir, command):
        data = (package_dir.parent / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def rule_code_sha256(rule: str, shellcmd: str | None, package_dir: Path = PACKAGE_DIR) -> str:
    """The code hash of a Snakemake rule: its `spurlab <command>`'s, or the whole package's for a
    rule that runs none (targets). A rule runs one spurlab command at most."""
    commands = sorted(set(_COMMAND.findall(shellcmd or "")))
    if len(commands) > 1:
        raise SpurlabError(f"rule {rule}: runs {len(commands)} spurlab commands ({', '.join(commands)}); one per rule")
    try:
        return code_sha256(commands[0] if commands else None, package_dir)
    except SpurlabError as e:
        raise SpurlabError(f"rule {rule}: {e}") from None


_running: list[str | None] = [None]


@contextlib.contextmanager
def running(command: str | None) -> Iterator[None]:
    """Within the block, outputs record the code hash of `command` (the command line sets it)."""
    _running.append(command)
    try:
        yield
    finally:
        _running.pop()


def code_provenance() -> dict[str, str]:
    """{'spurlab_version', 'code_sha256'} of the running command (the whole package outside one)."""
    return {"spurlab_version": __version__, "code_sha256": code_sha256(_running[-1])}
