"""Every public function of the engine, the methods and the blocks next to them documents the shape of
each array it takes, as gsplat does.

Read from the source with ``ast`` (nothing is imported). A parameter counts as an array when its
annotation names ``Tensor``, ``torch.Tensor``, ``np.ndarray`` or ``NDArray`` anywhere, alone or inside
``Optional[...]``, ``X | None``, a union or a container (``list[Tensor]``, ``Sequence[np.ndarray]``,
``dict[int, Tensor]``). A function counts as public when its name and its class's name (if any) do not
start with ``_``; functions nested in functions are not checked. The array fields of public classes
(dataclasses) give theirs in a comment on their line, as gsplat's and this package's dataclasses do:
``means: Tensor  # [N, 3]``.

The one format, gsplat's ``Args:`` block with the shape put first::

    def render(gaussians, camera, colors, ...):
        \"\"\"Alpha-blend ``colors`` into ``camera``.

        Args:
            colors: [N, D] one feature row per Gaussian.
            masks: [M, H, W] bool, or None for no masks.
            views: [V] of (camera, [M, H, W] bool masks) pairs.
            state: ([P], [P]) final transmittance and last index.
            images: [H, W, 3] float32, ``images(k)`` the image of view k.
        \"\"\"

that is, a docstring line ``<name>: ...`` whose text starts with the shape in brackets (``[N, 3]``,
``[..., N, 3]``, ``[H, W] or [P]``, ``[]`` for a 0-d tensor). A tuple of arrays gives its shapes in
parentheses, a container its length first (``[V] of ...``), a callable the shape of what it returns.
The letters: N Gaussians, V views, H x W pixels, P pixels of a subset, K instances/labels, M masks,
D feature dimensions, E sparse entries; a docstring may name others.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gs_core"
CHECKED = ("engine", "methods", "lifting", "query.py", "patches.py", "visibility.py", "labelmaps.py")
ARRAY_NAMES = {"Tensor", "ndarray", "NDArray"}


def files() -> list[Path]:
    found = []
    for entry in CHECKED:
        path = PACKAGE / entry
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def is_array(annotation: ast.expr | None) -> bool:
    """Whether an annotation names an array type anywhere (``"Tensor | None"`` strings included)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return is_array(ast.parse(annotation.value, mode="eval").body)
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id in ARRAY_NAMES:
            return True
        if isinstance(node, ast.Attribute) and node.attr in ARRAY_NAMES:
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and is_array(
                ast.parse(node.value, mode="eval").body):
            return True
    return False


def public_functions(tree: ast.Module):
    """(qualified name, function node) of module-level functions and methods of module-level classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def documented(name: str, docstring: str) -> bool:
    """A line ``name: ...`` whose first text in brackets comes before any other word: the shape."""
    pattern = re.compile(rf"^\s*\**{re.escape(name)}:\s*\(?\[[^\]]*\]", re.MULTILINE)
    return pattern.search(docstring) is not None


def undocumented() -> list[str]:
    missing = []
    for path in files():
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for qualname, function in public_functions(ast.parse(path.read_text())):
            args = function.args
            params = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
            docstring = ast.get_docstring(function) or ""
            for param in params:
                if param.arg in ("self", "cls") or not is_array(param.annotation):
                    continue
                if not documented(param.arg, docstring):
                    missing.append(f"{module}.{qualname}({param.arg})")
    return missing


def undocumented_fields() -> list[str]:
    missing = []
    for path in files():
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        lines = path.read_text().splitlines()
        for node in ast.parse("\n".join(lines)).body:
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and is_array(item.annotation):
                    text = lines[item.lineno - 1:item.end_lineno]
                    if not any("[" in line.partition("#")[2] for line in text):
                        missing.append(f"{module}.{node.name}.{ast.unparse(item.target)}")
    return missing


def test_format_check_accepts_and_refuses():
    doc = "Render.\n\nArgs:\n    means: [N, 3] centres.\n    opacities: in [0, 1], [N]\n"
    assert documented("means", doc)
    assert not documented("opacities", doc)  # the first brackets must be the shape
    assert not documented("colors", doc)
    assert documented("state", "Args:\n    state: ([P], [P]) transmittance and last index.")
    tree = ast.parse("def f(a: 'Tensor | None', b: int, c: list[np.ndarray], d: Optional[torch.Tensor]): ...")
    annotations = [a.annotation for a in tree.body[0].args.args]
    assert [is_array(a) for a in annotations] == [True, False, True, True]


def test_every_array_argument_has_a_shape():
    gone = [entry for entry in CHECKED if not (PACKAGE / entry).exists()]
    assert not gone, f"CHECKED names {gone}, not in gs_core/ (moved?): update CHECKED"
    missing = undocumented()
    if missing:
        pytest.fail(f"{len(missing)} array arguments without a shape in their function's docstring; add a line "
                    "'<name>: [shape] what it is' under 'Args:' (see this test's docstring):\n  "
                    + "\n  ".join(missing))


def test_every_array_field_has_a_shape():
    missing = undocumented_fields()
    if missing:
        pytest.fail(f"{len(missing)} array fields without a shape; end their line with '# [shape] what it is':\n  "
                    + "\n  ".join(missing))
