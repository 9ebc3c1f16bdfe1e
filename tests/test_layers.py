"""The architecture the folders promise, checked on the source: the serving core (engine/ minus
training/), lsp_server/ and http_server/ import nothing from training or evaluation, engine/
never imports a server or the CLI, the two servers never import each other, no module reaches
into a package above it, and there is no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "lsp_server", "http_server", "diffill")


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every diffill module `name` imports, at the top or inside a function; names imported
    for type hints only (under `if TYPE_CHECKING:`) are not dependencies."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*kept, base] if base else kept)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
            found |= submodules or {base}
    return {m for m in found if m in modules and m != name}


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer(module: str) -> str:
    prefixes = ("engine.training", "diffill.evaluation", "engine", "lsp_server", "http_server")
    for prefix in (*prefixes, "diffill"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    raise AssertionError(module)


ALLOWED = {  # what each layer may import, besides itself
    "engine": {"engine"},
    "engine.training": {"engine", "engine.training"},
    "lsp_server": {"engine", "lsp_server"},
    "http_server": {"engine", "http_server"},
    "diffill.evaluation": {
        "engine",
        "engine.training",
        "lsp_server",
        "http_server",
        "diffill",
        "diffill.evaluation",
    },
    "diffill": {
        "engine",
        "engine.training",
        "lsp_server",
        "http_server",
        "diffill",
        "diffill.evaluation",
    },
}


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if layer(target) not in ALLOWED[layer(module)]
    )
    assert wrong == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checker_sees_upward_imports_and_cycles(tmp_path: Path) -> None:
    """The two checks above would fail on a tree that breaks the rules."""
    modules = {name: tmp_path / f"{name}.py" for name in ("engine.a", "engine.b", "diffill.c")}
    modules["engine.a"].write_text("from engine.b import x\nimport diffill.c\n")
    modules["engine.b"].write_text(
        "def f():\n    from engine import a\nif TYPE_CHECKING:\n    import diffill.c\n"
    )
    found = imports_of("engine.a", modules["engine.a"], modules)
    assert found == {"engine.b", "diffill.c"} and layer("diffill.c") not in ALLOWED["engine"]
    assert imports_of("engine.b", modules["engine.b"], modules) == {"engine.a"}


def test_the_server_and_serving_core_load_no_torch_training_or_evaluation() -> None:
    core = sorted(
        name
        for name in module_files()
        if (layer(name) == "engine" and not name.startswith("engine.families"))
        or layer(name) in ("lsp_server", "http_server")
    )
    torch_by_design = {"engine.model", "engine.runtime_torch", "engine.inference"}
    imported = [n for n in core if n not in torch_by_design and not n.endswith("__main__")]
    script = (
        "import importlib, sys\n"
        f"for name in {imported!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith("
        "('torch.', 'engine.training', 'diffill.evaluation')))\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
    assert len(imported) > 20  # the whole core and server, not a handful
