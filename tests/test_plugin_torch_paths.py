"""Every plugin path into the engine's torch side calls ``load_torch()`` first (an AST scan, no import).

Triton loaded after napari's GL context exists crashes the viewer under Mesa llvmpipe; the plugin keeps it
out only by importing torch through :func:`napari_medseg._torch_guard.load_torch`
(tests/test_plugin_triton_guard.py shows that it works for the paths it drives). This scan covers the
paths no test drives: in every ``napari_medseg`` module, each function (and the module level) that imports
the torch side -- torch, torchvision, timm, smp, the engine's ``inference``, ``models``, ``training``,
``qc.ranking``, ``qc.oof``, ``qc.suspicion``, or any module whose imports reach one of them -- must call
``load_torch()`` before the import, in a block that encloses it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"medseg": ROOT / "src" / "medseg", "napari_medseg": ROOT / "napari_medseg"}

TORCH_PACKAGES = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "triton")
TORCH_ENGINE = (
    "medseg.inference",
    "medseg.models",
    "medseg.training",
    "medseg.qc.ranking",
    "medseg.qc.oof",
    "medseg.qc.suspicion",
)
GUARD = "load_torch"

# "module:function" -> why it may import the torch side without load_torch(). Only code that never runs in
# the viewer process (a training child's) or that loads torch for load_torch belongs here.
ALLOWED = {
    "napari_medseg._torch_guard:load_torch": "the guard itself: it imports torch with triton hidden",
}


# ----------------------------------------------------------------------------------------- the scanner
def modules(package: str, root: Path) -> Iterator[tuple[str, Path]]:
    """(dotted name, file) of every module of ``package`` under ``root``."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join((package, *parts)), path


def imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement (or ``importlib.import_module("...")``) may load. ``from a
    import b`` gives ``a`` and ``a.b`` (b may be a submodule); relative imports are resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, *([base] if base else [])])
        return [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
    if (
        isinstance(node, ast.Call)
        and _called(node) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def import_time_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """What importing the module itself imports: its statements outside functions (class bodies run at
    import time) and outside ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or _is_type_checking(child):
                continue
            found.update(imported(child, module, is_package))
            walk(child)

    walk(tree)
    return found


def _with_parents(name: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts) + 1)]


def torch_side(trees: dict[str, tuple[ast.Module, bool]]) -> set[str]:
    """The modules (of ``trees``) whose import loads the torch side, given their import-time imports."""
    graph = {name: import_time_imports(tree, name, is_package) for name, (tree, is_package) in trees.items()}
    side = {name for name in graph if loads_torch(name, set())}
    changed = True
    while changed:
        changed = False
        for name, imports in graph.items():
            if name not in side and any(loads_torch(i, side) for i in imports):
                side.add(name)
                changed = True
    return side


def loads_torch(name: str, side: set[str]) -> bool:
    """Whether importing ``name`` loads the torch side (``side``: the modules known to)."""
    return any(part in side or part in TORCH_PACKAGES or part in TORCH_ENGINE for part in _with_parents(name))


def unguarded(tree: ast.Module, module: str, is_package: bool, side: set[str]) -> list[str]:
    """``module:function:line: name`` of each torch-side import not preceded by ``load_torch()`` in a block
    that encloses it (a branch or a loop that calls it guards only what follows inside it). A function
    defined after the call is guarded too: it cannot run before its definition."""
    found: list[str] = []

    def block(statements: Iterable[ast.stmt], scope: str, guarded: bool) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and _called(stmt.value) == GUARD:
                guarded = True
            if _is_type_checking(stmt):
                continue
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = stmt.name if scope == "<module>" else f"{scope}.{stmt.name}"
                for deco in getattr(stmt, "decorator_list", []):
                    expressions(deco, scope, guarded)
                block(stmt.body, inner, guarded)
                continue
            expressions(stmt, scope, guarded, shallow=True)
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(stmt, field, None)
                if children:
                    block([c for c in children if isinstance(c, ast.stmt)], scope, guarded)
                    for c in children:  # except handlers and match cases hold statement lists
                        if not isinstance(c, ast.stmt):
                            block(c.body, scope, guarded)

    def expressions(node: ast.AST, scope: str, guarded: bool, shallow: bool = False) -> None:
        """The statement's own imports and ``import_module`` calls (not those of the blocks it holds)."""
        todo = [node]
        while todo:
            current = todo.pop()
            names = imported(current, module, is_package)
            if not guarded and any(loads_torch(n, side) for n in names):
                where = f"{module}:{scope}"
                if where not in ALLOWED:
                    first = next(n for n in names if loads_torch(n, side))
                    found.append(f"{where}:{current.lineno}: imports {first} without load_torch() first")
            for field, value in ast.iter_fields(current):
                if shallow and current is node and field in ("body", "orelse", "finalbody", "handlers", "cases"):
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, ast.AST) and not isinstance(child, ast.stmt):
                        todo.append(child)

    block(tree.body, "<module>", False)
    return found


def parse_sources() -> dict[str, tuple[ast.Module, bool]]:
    trees = {}
    for package, root in SOURCES.items():
        for name, path in modules(package, root):
            trees[name] = (ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), path.name == "__init__.py")
    return trees


def plugin_offenders(trees: dict[str, tuple[ast.Module, bool]]) -> list[str]:
    side = torch_side(trees)
    return [
        line
        for name, (tree, is_package) in sorted(trees.items())
        if name.split(".")[0] == "napari_medseg"
        for line in unguarded(tree, name, is_package, side)
    ]


# ------------------------------------------------------------------------------------------- the tests
def test_every_plugin_path_into_the_torch_side_loads_torch_first():
    trees = parse_sources()
    offenders = plugin_offenders(trees)
    assert not offenders, "call load_torch() before these imports (or list them in ALLOWED, with why):\n" + "\n".join(
        offenders
    )
    assert all(where.split(":")[0] in trees for where in ALLOWED)  # no stale entries


def test_the_torch_side_is_what_the_engine_imports_say():
    side = torch_side(parse_sources())
    assert {
        "medseg.inference.predictor",
        "medseg.models",
        "medseg.training.runner",
        "medseg.qc.ranking",
        "medseg.qc.suspicion",
    } <= side
    # the viewer's own light engine modules stay outside (the startup test keeps torch out of them)
    assert not {"medseg.jobs", "medseg.errors", "medseg.workspace", "medseg.io", "medseg.choices"} & side


def test_light_engine_modules_load_no_torch_later():
    """The plugin calls the engine's light modules (QC, workspace, export...) without load_torch(): none of
    their functions may import the torch side on the way. The CLI is left out: it runs in its own process
    (a terminal's, or the Fine-tune dock's training child), never in the viewer's."""
    trees = parse_sources()
    side = torch_side(trees)
    light = [
        name
        for name in trees
        if name.split(".")[0] == "medseg"
        and name not in side
        and not (name == "medseg.cli" or name.startswith("medseg.cli."))
    ]
    lazy = [line for name in sorted(light) for line in unguarded(trees[name][0], name, trees[name][1], side)]
    assert not lazy, "a light engine module imports the torch side when called:\n" + "\n".join(lazy)


PLANTED = """
from typing import TYPE_CHECKING

from medseg.jobs import Result  # light: fine anywhere
from ._torch_guard import load_torch

if TYPE_CHECKING:
    from medseg.models import ModelSpec  # never runs


def guarded(path):
    load_torch()
    from medseg.models import load_checkpoint
    return load_checkpoint(path)


def too_late():
    from medseg.training.runner import TrainingProcess
    load_torch()
    return TrainingProcess


def only_in_a_branch(flag):
    if flag:
        load_torch()
    import segmentation_models_pytorch as smp
    return smp


def through_a_light_looking_module():
    from medseg.qc import heavy  # heavy imports torch when it is imported


def by_name():
    import importlib
    return importlib.import_module("medseg.inference")


class Dock:
    def start(self):
        load_torch()

        def worker():
            from medseg.qc import ranking  # defined after the guard ran
            return ranking
        return worker

    def score(self):
        from medseg.qc.ranking import iter_score_checkpoint
        return iter_score_checkpoint
"""


def test_planted_offenders_are_reported_with_their_place():
    trees = {
        "medseg.qc.heavy": (ast.parse("import torch\n"), False),
        "medseg.qc": (ast.parse("from medseg.qc.findings import Finding\n"), True),
    }
    side = torch_side(trees)
    assert side == {"medseg.qc.heavy"}
    found = unguarded(ast.parse(PLANTED), "napari_medseg._planted", False, side)
    assert found == [
        "napari_medseg._planted:too_late:18: imports medseg.training.runner without load_torch() first",
        "napari_medseg._planted:only_in_a_branch:26: imports segmentation_models_pytorch without load_torch() first",
        "napari_medseg._planted:through_a_light_looking_module:31: imports medseg.qc.heavy without load_torch() first",
        "napari_medseg._planted:by_name:36: imports medseg.inference without load_torch() first",
        "napari_medseg._planted:Dock.score:49: imports medseg.qc.ranking without load_torch() first",
    ], found
    relative = unguarded(
        ast.parse("def f():\n    from .x import y\n"), "napari_medseg._planted", False, {"napari_medseg.x"}
    )
    assert relative == ["napari_medseg._planted:f:2: imports napari_medseg.x without load_torch() first"]
