"""Every third-party import of the shipped code is installed by the image's requirement files.

deploy/Dockerfile installs requirements.txt and requirements-models.txt only, and copies apps/,
controlplane/, performance/ and scaling/. A module those packages import (even inside a function) from a
distribution named only in requirements-dev.txt is missing in production: kubernetes_validate was, so
every apply failed and the manifests API answered 500.
"""

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["apps", "controlplane", "performance", "scaling"]  # the Dockerfile's COPY lines
IMAGE_REQUIREMENTS = ["requirements.txt", "requirements-models.txt"]  # the Dockerfile's pip install
FIRST_PARTY = {path.name for path in ROOT.iterdir() if path.is_dir()} | {"manage"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_distributions() -> set[str]:
    names = set()
    for filename in IMAGE_REQUIREMENTS:
        for line in (ROOT / filename).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            names.add(normalize(re.split(r"[\[=<>!~; ]", line, maxsplit=1)[0]))
    return names


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(tree: ast.AST) -> set[str]:
    """Absolute imports' first component, leaving out the bodies of `if TYPE_CHECKING:`."""
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def shipped_imports() -> dict[str, set[str]]:
    """{module name: the files importing it} for every shipped, non-test Python file."""
    users: dict[str, set[str]] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "tests" in relative.parts or path.name.startswith("test_") or path.name == "conftest.py":
                continue
            for name in top_level_imports(ast.parse(path.read_text(), filename=str(path))):
                users.setdefault(name, set()).add(str(relative))
    return users


def test_the_image_installs_every_third_party_import() -> None:
    provided_by = importlib.metadata.packages_distributions()
    in_image = image_distributions()
    missing = []
    for name, files in sorted(shipped_imports().items()):
        if name in sys.stdlib_module_names or name in FIRST_PARTY or name == "__future__":
            continue
        distributions = {normalize(d) for d in provided_by.get(name, [])}
        assert distributions, f"{name} (imported by {sorted(files)}) is provided by no installed distribution"
        if not distributions & in_image:
            missing.append(f"{name} from {sorted(distributions)} (imported by {sorted(files)})")
    assert not missing, "not in requirements.txt or requirements-models.txt: " + "; ".join(missing)


def test_the_checker_sees_imports_inside_functions_and_skips_type_checking() -> None:
    tree = ast.parse(
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import only_typing\nelse:\n    import at_runtime\n"
        "def f():\n    import kubernetes_validate\n    from yaml import safe_load\n"
        "from . import sibling\n"
    )
    assert top_level_imports(tree) == {"os", "typing", "at_runtime", "kubernetes_validate", "yaml"}
