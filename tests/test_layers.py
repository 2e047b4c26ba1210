"""The package's layers: a module imports only from its own layer or the layers below, and no two
modules import each other, directly or around a circle. Imports are read from the source (module
level and inside functions alike, relative ones resolved), so an import hidden in a function to dodge
a circle fails here too. docs/ARCHITECTURE.md describes the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gs_core"

# layer -> module prefixes (the longest prefix decides; a package's own __init__ counts as its prefix)
LAYERS: dict[str, tuple[str, ...]] = {
    "data": ("errors", "camera", "sh", "instance_colors", "splat_view", "splat_ids", "splat_transform", "io", "scene", "dataset", "outputs",
             "engine.gaussians", "pipeline.workdir", "metrics", "parallel"),
    "engine": ("engine", "visibility", "labelmaps", "patches", "preflight", "viewselect", "click_rays"),
    "blocks": ("lifting", "models", "refine", "render_layer", "selfprompt", "language", "virtual_views", "query",
               "interactive", "synth", "viz", "report"),
    "methods": ("methods",),
    "pipeline": ("pipeline", "eval", "blender_host"),
    "applications": ("cli", "server", "server_requests", "demo", "bench"),
}
# the applications: each a top-level name; one may import another only where listed, with the reason
APPLICATIONS = ("cli", "server", "demo", "bench")
APPLICATION_IMPORTS = {
    ("cli", "*"): "the dispatcher: it names every command's module",
    ("server", "server_requests"): "the server's own request guard",
    ("bench.query", "server"): "the benchmark times the server's own click commands",
}
RANK = {name: k for k, name in enumerate(LAYERS)}


def modules() -> dict[str, Path]:
    """Dotted names (without the ``gs_core.`` prefix; '' for the package itself) -> files."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("gs_core.")]
            targets = [t.removeprefix("gs_core.") for t in targets]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("gs_core"):
                stem = node.module.removeprefix("gs_core").lstrip(".")
            else:
                continue
            targets = [f"{stem}.{a.name}".lstrip(".") for a in node.names] + [stem]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def layer(name: str) -> str:
    best, best_len = None, -1
    for layer_name, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = layer_name, len(prefix)
    if best is None:
        raise AssertionError(f"gs_core.{name} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return best


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items() if name}


def test_every_module_has_a_layer(graph):
    for name in graph:
        layer(name)


def test_imports_only_look_down(graph):
    upward = [f"gs_core.{a} ({layer(a)}) imports gs_core.{b} ({layer(b)})"
              for a, targets in sorted(graph.items()) for b in sorted(targets) if RANK[layer(b)] > RANK[layer(a)]]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def _application(name: str) -> str | None:
    return next((a for a in APPLICATIONS if name == a or name.startswith(a + ".") or name.startswith(a + "_")), None)


def test_applications_do_not_build_on_each_other(graph):
    """An application (a command's code) reaches the package through the layers below it, not through
    another application, except the pairs in APPLICATION_IMPORTS."""
    def allowed(a: str, b: str) -> bool:
        return any((a == src or a.startswith(src + ".")) and (dst == "*" or b == dst or b.startswith(dst + "."))
                   for src, dst in APPLICATION_IMPORTS)

    found = [f"gs_core.{a} imports gs_core.{b}" for a, targets in sorted(graph.items()) for b in sorted(targets)
             if _application(a) and _application(b) and _application(a) != _application(b) and not allowed(a, b)]
    assert not found, "applications built on applications:\n" + "\n".join(found)


def test_no_import_circles(graph):
    """Tarjan's strongly connected components of the import graph: any with two or more modules is a
    circle."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(" <-> ".join(f"gs_core.{m}" for m in sorted(component)))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_check_sees_an_upward_import(tmp_path):
    """The scanner resolves relative imports inside functions (what the package's own checks rely on)."""
    fake = tmp_path / "engine" / "thing.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    from ..pipeline import prepare\n")
    known = {"engine.thing": fake, "pipeline.prepare": fake, "pipeline": fake}
    assert imports("engine.thing", fake, known) == {"pipeline", "pipeline.prepare"}
    assert RANK[layer("pipeline.prepare")] > RANK[layer("engine.thing")]
