"""The import graph of the qa package has no cycles, lazy imports inside functions included.

Every ``import qa.x`` / ``from qa.x import y`` / ``from .x import y`` anywhere in a module (top level,
function bodies, ``if`` blocks) is an edge from that module to the module it names; ``from qa.x
import y`` also reaches ``qa.x.y`` when that is a module. The implicit import of a parent package
(``import qa.a.b`` runs ``qa/a/__init__.py`` first) is not an edge: a package's ``__init__``
re-exporting its submodules is not a cycle as long as no submodule names the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

QA_DIR = Path(__file__).resolve().parent.parent / "qa"


def module_name(path: Path, root: Path = QA_DIR) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def qa_modules(root: Path = QA_DIR) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The qa modules that module ``name`` (at ``path``) imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()

    def add(dotted: str) -> None:
        # the module itself, or (for a name that is not a module) the closest enclosing module
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        if dotted:
            targets.add(dotted)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "qa" or alias.name.startswith("qa."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != "qa" and not base.startswith("qa."):
                continue
            add(base)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    targets.add(f"{base}.{alias.name}")
    targets.discard(name)
    return targets


def import_graph(root: Path = QA_DIR) -> dict[str, set[str]]:
    modules = qa_modules(root)
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_the_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    """The checker itself: a cycle closed by an import inside a function, a relative import, and
    ``from package import submodule`` are all seen; a package re-exporting its submodules is not one."""
    root = tmp_path / "qa"
    (root / "pkg").mkdir(parents=True)
    (root / "__init__.py").write_text('"""root"""\n')
    (root / "a.py").write_text("from qa.b import thing\n")
    (root / "b.py").write_text("def thing():\n    from qa import a\n    return a\n")
    (root / "c.py").write_text("import qa.a\n")
    (root / "pkg" / "__init__.py").write_text("from qa.pkg.one import x\nfrom .two import y\n")
    (root / "pkg" / "one.py").write_text("x = 1\n")
    (root / "pkg" / "two.py").write_text("from .one import x\ny = x\n")
    graph = import_graph(root)
    assert graph["qa.b"] == {"qa", "qa.a"}
    assert graph["qa.pkg"] == {"qa.pkg.one", "qa.pkg.two"}
    assert graph["qa.pkg.two"] == {"qa.pkg.one"}
    assert import_cycles(graph) == [["qa.a", "qa.b"]]


def test_no_import_cycles_in_qa():
    cycles = import_cycles(import_graph())
    assert cycles == [], f"import cycles among qa modules: {cycles}"


def test_the_embedding_package_imports_only_downwards():
    """model <- onnx <- encoder <- qa.embedding (re-exports); none of them names the package."""
    graph = import_graph()
    embedding = {name: {t for t in targets if t.startswith("qa.embedding")}
                 for name, targets in graph.items() if name.startswith("qa.embedding")}
    assert embedding == {
        "qa.embedding": {"qa.embedding.model", "qa.embedding.onnx", "qa.embedding.encoder"},
        "qa.embedding.model": set(),
        "qa.embedding.onnx": {"qa.embedding.model"},
        "qa.embedding.encoder": {"qa.embedding.model", "qa.embedding.onnx"},
    }
    assert not (QA_DIR / "onnx_embedding.py").exists()


def test_the_web_app_does_not_import_the_cli():
    """The web app and the CLI are two front ends over the same modules (issue 17: the JSON of hits
    and answers moved out of qa/cli.py); neither reaches into the other."""
    graph = import_graph()
    web_to_cli = sorted(name for name, targets in graph.items()
                        if (name == "qa.web" or name.startswith("qa.web.")) and "qa.cli" in targets)
    assert web_to_cli == [], f"qa/web modules importing qa.cli: {web_to_cli}"
