"""The package's shape, checked from its source: no import circle inside the library (a function-level import
included: it only hides a circle from Python, not from a reader) and no import from the library to the app."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "talking_head"
#: What only the app (app.py, talking_head_app/) may import.
APP_NAMES = ("talking_head_app", "gradio", "spaces", "app")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """``talking_head.models.personal`` -> its file, for every module of ``package`` under ``root``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Every name ``path`` imports, anywhere in it (module level, in functions, under ``TYPE_CHECKING``):
    ``from a.b import c`` gives ``a.b.c`` (a module or a name in ``a.b``); relative imports made absolute."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of ``package`` it imports (a name in a module counts as that module)."""
    modules = module_files(root, package)
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(path, module):
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (``a -> b -> ... -> a``) through each group of modules that import each other."""
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                cycle = path[path.index(target):] + [target]
                if not set(cycle) <= done:
                    found.append(cycle)
                    done.update(cycle)
            elif target not in done and target not in visited:
                visited.add(target)
                visit(target, path + [target])

    for start in sorted(graph):
        visited = {start}
        visit(start, [start])
    return found


def test_no_import_circle_inside_the_library() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert len(graph) > 50 and {"talking_head.avatar", "talking_head.render"} <= graph["talking_head.pipeline"]
    assert circles(graph) == []


def test_the_library_imports_nothing_of_the_app() -> None:
    modules = module_files(ROOT, PACKAGE)
    found = {f"{module}: {name}" for module, path in modules.items() for name in imported_names(path, module)
             if name.split(".")[0] in APP_NAMES}
    assert found == set()


def test_the_walk_finds_a_circle_closed_inside_a_function_and_a_relative_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub.b import thing\n")
    (package / "sub" / "b.py").write_text("def thing():\n    from ..c import other\n    return other\n")
    (package / "c.py").write_text("import gradio\n\ndef other():\n    from pkg import a\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    assert "gradio" in imported_names(package / "c.py", "pkg.c")


#: The longest function a reader should meet, in lines from ``def`` to its last line (docstring included).
MAX_FUNCTION_LINES = 60


def long_functions(paths: list[Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line name (N lines)`` of every function or method in ``paths`` longer than ``limit`` lines."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_of_the_library_or_the_app_is_longer_than_60_lines() -> None:
    paths = [*sorted((ROOT / PACKAGE).rglob("*.py")), *sorted((ROOT / "talking_head_app").rglob("*.py")),
             ROOT / "app.py"]
    assert len(paths) > 60
    assert long_functions(paths) == []
    assert long_functions([Path(__file__)], limit=8)  # the count sees a long function (circles, above)


def test_every_command_lives_in_the_commands_package_and_only_there() -> None:
    from talking_head.cli import COMMANDS

    assert all(module.startswith("talking_head.commands.") for module, _ in COMMANDS.values()), COMMANDS
    outside = [f"{path.relative_to(ROOT)}: {node.name}" for path in sorted((ROOT / PACKAGE).rglob("*.py"))
               if path.parent.name != "commands" and path.name != "cli.py"
               for node in ast.parse(path.read_text()).body
               if isinstance(node, ast.FunctionDef) and node.name in ("add_arguments", "main")]
    assert outside == []


def test_the_network_class_lives_with_the_networks() -> None:
    from talking_head.models.talking_head_model import TalkingHeadModel

    assert TalkingHeadModel.__module__.startswith("talking_head.models.")
    assert "class TalkingHeadModel" not in (ROOT / PACKAGE / "hub.py").read_text()
