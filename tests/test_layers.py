"""The package's layers, read from the source: imports point down, names are public.

``course_utils`` is built in layers. A module may import from a lower layer, or from its
own layer inside its own folder, never from above: the algorithms in ``pruning/`` never
depend on the experiments that run them, and ``train`` never depends on ``pruning``.
The checks read every file with :mod:`ast` (nothing is imported), including imports
written inside functions. Each check takes the package folder, so the tests below also
run it on a copy with one bad line added and watch it report that line.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "course_utils"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# (layer, modules, what the layer is for), bottom to top. A module is a path inside the
# package; "pruning/" is every module of that folder. A new top-level module must be
# placed here on purpose.
LAYERS = [
    (0, ["settings.py", "checks.py", "files.py", "seeding.py", "report.py"],
     "the environment, argument checks, atomic writes, seeds, tables"),
    (1, ["text.py", "data.py", "models.py"],
     "chapter 1's pipeline: text to batches, the datasets, the classifier"),
    (2, ["masking.py", "measure.py", "verdicts.py", "plots.py"],
     "what every chapter does with a model: masks, measurements, verdicts, plots"),
    (3, ["train.py", "checkpoints.py"],
     "training and evaluation, saving and loading models"),
    (4, ["pruning/"], "the pruning algorithms, one module per idea (chapters 2-5)"),
    (5, ["deploy/"], "storage formats, export and robustness (chapter 6)"),
    (6, ["experiments/"], "the baseline cache, the method zoo, multi-seed comparisons"),
    (7, ["widgets/", "exercises/"], "what the notebooks show: widgets and exercise checks"),
    (8, ["__init__.py", "__main__.py"],
     "the front door: the names a notebook starts with, `python -m course_utils warm`"),
]  # fmt: skip


def layer_of(module: str) -> int | None:
    """The layer of a module given as a path inside the package (``"pruning/gan.py"``)."""
    for layer, members, _ in LAYERS:
        for member in members:
            if module == member or (member.endswith("/") and module.startswith(member)):
                return layer
    return None


def folder_of(module: str) -> str:
    """``"pruning"`` for ``"pruning/gan.py"``; top-level modules are in ``"course_utils"``."""
    if module in ("__init__.py", "__main__.py"):
        return "course_utils (front door)"  # a node of its own, above every folder
    return module.split("/")[0] if "/" in module else PACKAGE


@dataclass(frozen=True)
class Import:
    """One course import: where it is written and what it reaches."""

    module: str  # the importing file, inside the package
    line: int
    text: str  # the import statement as written
    target: str | None  # the imported module, inside the package (None: no such module)
    name: str | None  # the name taken from it (None for a whole module)
    bound: str | None  # the name a whole module is bound to here (``from . import checks``)

    def where(self) -> str:
        return f"{PACKAGE}/{self.module}:{self.line}: `{self.text}`"


def modules(root: Path) -> list[str]:
    """Every module of the package, as sorted paths inside it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))


def parse(root: Path, module: str) -> ast.Module:
    return ast.parse((root / module).read_text(encoding="utf-8"), filename=module)


def module_path(root: Path, parts: list[str]) -> str | None:
    """The file of dotted ``parts`` below the package (``["pruning", "gan"]``), if any."""
    if not parts:
        return "__init__.py"
    folder = root.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return "/".join(parts) + "/__init__.py"
    if folder.with_suffix(".py").is_file():
        return "/".join(parts) + ".py"
    return None


def course_imports(root: Path, module: str, tree: ast.Module | None = None) -> Iterator[Import]:
    """Every import of a course module written in ``module``, inside functions too."""
    tree = tree or parse(root, module)
    folder = module.split("/")[:-1]  # ["pruning"] for pruning/gan.py, [] at the top
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    target, text = module_path(root, parts[1:]), ast.unparse(node)
                    yield Import(module, node.lineno, text, target, None, alias.asname)
        elif isinstance(node, ast.ImportFrom):
            dotted = (node.module or "").split(".") if node.module else []
            if node.level == 0:
                if not dotted or dotted[0] != PACKAGE:
                    continue  # not a course import
                parts = dotted[1:]
            elif node.level - 1 <= len(folder):
                parts = folder[: len(folder) - (node.level - 1)] + dotted
            else:
                continue  # above the package
            for alias in node.names:
                submodule = None if alias.name == "*" else module_path(root, [*parts, alias.name])
                if submodule is not None:  # from . import checks: a whole module
                    bound = alias.asname or alias.name
                    yield Import(module, node.lineno, ast.unparse(node), submodule, None, bound)
                else:
                    target = module_path(root, parts)
                    yield Import(module, node.lineno, ast.unparse(node), target, alias.name, None)


# --- the checks: each returns a list of messages, empty when all is well --------------


def layer_violations(root: Path) -> list[str]:
    """Modules without a layer, and imports that run up the layers or across folders."""
    found = []
    for module in modules(root):
        layer = layer_of(module)
        if layer is None:
            found.append(f"{PACKAGE}/{module}: no layer; add it to LAYERS in tests/test_layers.py")
            continue
        for imp in course_imports(root, module):
            if imp.target is None:
                found.append(f"{imp.where()} imports a module that does not exist")
                continue
            target_layer = layer_of(imp.target)
            if target_layer is None:
                continue  # reported above, as a module without a layer
            same_folder = folder_of(imp.target) == folder_of(module)
            if target_layer > layer or (target_layer == layer and not same_folder):
                found.append(
                    f"{imp.where()} imports {imp.target} (layer {target_layer}) "
                    f"from layer {layer}: imports must point down"
                )
    return found


def folder_cycles(root: Path) -> list[str]:
    """Cycles in the graph of imports between folders (top level, pruning, deploy...)."""
    edges: dict[str, dict[str, Import]] = {}
    for module in modules(root):
        for imp in course_imports(root, module):
            a, b = folder_of(module), folder_of(imp.target) if imp.target else None
            if b is not None and a != b:
                edges.setdefault(a, {}).setdefault(b, imp)
    found, done = [], set()

    def visit(folder: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(folder, {})):
            if nxt in path:
                loop = path[path.index(nxt) :]
                start = loop.index(min(loop))  # each cycle written once, from its first name
                cycle = loop[start:] + loop[:start] + [min(loop)]
                steps = [edges[x][y].where() for x, y in zip(cycle, cycle[1:], strict=False)]
                found.append(" -> ".join(cycle) + ", through:\n    " + "\n    ".join(steps))
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(folder)

    for folder in sorted(edges):
        if folder not in done:
            visit(folder, [folder])
    return sorted(set(found))


def defined_names(tree: ast.Module) -> set[str]:
    """Names bound at the top of a module (inside top-level if/try/with blocks too)."""
    names: set[str] = set()

    def targets(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)

    def block(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    targets(target)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For):
                targets(node.target)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    names.add(alias.asname or alias.name.split(".")[0])
            for field in ("body", "orelse", "finalbody", "handlers"):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    block(getattr(node, field, []))

    block(tree.body)
    return names


def exported_names(tree: ast.Module) -> list[str] | None:
    """The names in a module's ``__all__``; None when it has none.

    Raises ValueError when ``__all__`` is not a plain list of strings.
    """
    exported = None
    for node in tree.body:
        target = getattr(node, "target", None)
        if isinstance(node, ast.Assign):
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "__all__":
            names = ast.literal_eval(node.value)  # ValueError unless a literal
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                raise ValueError("not a list of strings")
            exported = [*(exported or []), *names] if isinstance(node, ast.AugAssign) else names
    return exported


def all_violations(root: Path) -> list[str]:
    """Modules without an ``__all__``, and names in ``__all__`` that do not exist there."""
    found = []
    for module in modules(root):
        tree = parse(root, module)
        try:
            exported = exported_names(tree)
        except ValueError:
            found.append(f"{PACKAGE}/{module}: __all__ must be a plain list of strings")
            continue
        if exported is None:
            found.append(f"{PACKAGE}/{module}: no __all__ (list the module's public names)")
            continue
        defined = defined_names(tree)
        # a package's __all__ may also list its submodules
        folder = module.split("/")[:-1] if module.endswith("__init__.py") else None
        for name in exported:
            submodule = folder is not None and module_path(root, [*folder, name]) is not None
            if name not in defined and not submodule:
                found.append(
                    f"{PACKAGE}/{module}: __all__ lists {name!r}, which it does not define"
                )
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(root: Path) -> list[str]:
    """Imports of another module's ``_private`` names, and ``module._private`` reads."""
    found = []
    for module in modules(root):
        tree = parse(root, module)
        bound: dict[str, str] = {}  # name in this file -> the course module it is bound to
        for imp in course_imports(root, module, tree):
            if imp.target is not None and imp.target != module:
                if imp.name is not None and is_private(imp.name):
                    found.append(f"{imp.where()} imports the private name {imp.name}")
                if any(is_private(part.removesuffix(".py")) for part in imp.target.split("/")):
                    found.append(f"{imp.where()} imports the private module {imp.target}")
                if imp.bound is not None:
                    bound[imp.bound] = imp.target
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and is_private(node.attr)
            ):
                found.append(
                    f"{PACKAGE}/{module}:{node.lineno}: `{ast.unparse(node)}` reads the private "
                    f"name {node.attr} of {bound[node.value.id]}"
                )
    return found


def star_imports(root: Path) -> list[str]:
    """Every ``from ... import *``: the reader cannot see which names arrive."""
    found = []
    for module in modules(root):
        for node in ast.walk(parse(root, module)):
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                found.append(f"{PACKAGE}/{module}:{node.lineno}: `{ast.unparse(node)}`")
    return found


# --- the package as it is ------------------------------------------------------------


CHECKS = {
    "imports against the layers": layer_violations,
    "cycles between folders": folder_cycles,
    "problems with __all__": all_violations,
    "private imports": private_imports,
    "star imports": star_imports,
}


@pytest.mark.parametrize("what", list(CHECKS))
def test_the_package_passes(what):
    found = CHECKS[what](ROOT)
    assert not found, f"{len(found)} {what}:\n" + "\n".join(found)


def test_the_checks_see_the_whole_package():
    """Guard against a check that passes because it read nothing."""
    found = modules(ROOT)
    assert {"models.py", "pruning/magnitude.py", "experiments/zoo.py"} <= set(found)
    imports = list(course_imports(ROOT, "pruning/magnitude.py"))
    assert any(i.target == "masking.py" for i in imports)
    assert all(layer_of(m) is not None for m in ("pruning/gan.py", "widgets/agp.py"))


# --- each check fails on a copy with one bad line ------------------------------------


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / PACKAGE
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def add_lines(root: Path, module: str, *lines: str) -> int:
    """Append ``lines`` to ``module`` (created if new); the number of the first one."""
    path = root / module
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    old = old if not old or old.endswith("\n") else old + "\n"
    path.write_text(old + "\n".join(lines) + "\n", encoding="utf-8")
    return old.count("\n") + 1


def new_messages(check, root: Path, edit) -> list[str]:
    before = set(check(root))
    edit(root)
    return sorted(set(check(root)) - before)


@pytest.mark.parametrize(
    ("module", "lines", "expected"),
    [
        # masking (layer 2) reaching up to train (layer 3)
        ("masking.py", ["from .train import evaluate"], "imports train.py (layer 3)"),
        # an import inside a function counts too
        ("models.py", ["def f():", "    from .pruning import prune"], "pruning/__init__.py"),
        # pruning (4) reaching up to a driver in experiments (6)
        ("pruning/magnitude.py", ["from ..experiments import zoo"], "experiments/zoo.py"),
        # an absolute import is read the same way
        ("checks.py", ["import course_utils.masking"], "imports masking.py (layer 2)"),
        # same layer, other folder: widgets and exercises do not import each other
        ("widgets/agp.py", ["from ..exercises.common import CheckResult"], "layer 7"),
        ("files.py", ["from .nowhere import thing"], "does not exist"),
    ],
)
def test_layer_check_reports_an_import_up_the_layers(package_copy, module, lines, expected):
    line = []
    found = new_messages(
        layer_violations, package_copy, lambda root: line.append(add_lines(root, module, *lines))
    )
    n = line[0] + len(lines) - 1
    assert len(found) == 1 and f"{PACKAGE}/{module}:{n}:" in found[0], found
    assert lines[-1].strip() in found[0] and expected in found[0]


def test_layer_check_reports_a_module_without_a_layer(package_copy):
    found = new_messages(
        layer_violations, package_copy, lambda root: add_lines(root, "helpers.py", "X = 1")
    )
    assert found == [f"{PACKAGE}/helpers.py: no layer; add it to LAYERS in tests/test_layers.py"]


def test_cycle_check_reports_a_cycle_between_folders(package_copy):
    def edit(root):
        add_lines(root, "experiments/zoo.py", "from ..deploy import compress")
        add_lines(root, "deploy/export.py", "from ..experiments import baseline")

    found = new_messages(folder_cycles, package_copy, edit)
    assert len(found) == 1 and found[0].startswith("deploy -> experiments -> deploy"), found
    assert "`from ..experiments import baseline`" in found[0]
    assert "`from ..deploy" in found[0]  # an experiments -> deploy import (there are several)


def test_all_check_reports_a_missing_all_and_a_missing_name(package_copy):
    def edit(root):
        add_lines(root, "report_extra.py", '"""Docstring."""', "def f():", "    pass")
        add_lines(root, "plots_extra.py", '__all__ = ["ghost"]')
        add_lines(root, "measure_extra.py", '__all__ = ["f"] + []', "def f():", "    pass")

    assert new_messages(all_violations, package_copy, edit) == [
        f"{PACKAGE}/measure_extra.py: __all__ must be a plain list of strings",
        f"{PACKAGE}/plots_extra.py: __all__ lists 'ghost', which it does not define",
        f"{PACKAGE}/report_extra.py: no __all__ (list the module's public names)",
    ]


def test_all_check_accepts_names_bound_in_every_way(package_copy):
    lines = [
        '__all__ = ["A", "B", "C", "D", "E", "F", "G", "compress"]',
        "import os as A",
        "from os import path as B",
        "C, (D, E) = 1, (2, 3)",
        "try:",
        "    F: int = 1",
        "except ImportError:",
        "    class G: ...",
        "from . import compress",
    ]
    found = new_messages(
        all_violations, package_copy, lambda root: add_lines(root, "deploy/__init__.py", *lines)
    )
    assert found == []


def test_private_check_reports_private_names(package_copy):
    def edit(root):
        add_lines(root, "checks.py", "def _helper():", "    pass")
        add_lines(root, "masking.py", "from .checks import _helper")
        add_lines(root, "measure.py", "from . import checks", "def f():", "    checks._helper()")
        add_lines(root, "plots.py", "from .checks import __name__ as checks_name")  # dunder: fine

    found = new_messages(private_imports, package_copy, edit)
    assert len(found) == 2, found
    assert "masking.py" in found[0] and "`from .checks import _helper`" in found[0]
    assert "measure.py" in found[1] and "`checks._helper`" in found[1]


def test_star_check_reports_a_star_import(package_copy):
    found = new_messages(
        star_imports, package_copy, lambda root: add_lines(root, "masking.py", "from os import *")
    )
    assert len(found) == 1 and "masking.py" in found[0] and "from os import *" in found[0]
