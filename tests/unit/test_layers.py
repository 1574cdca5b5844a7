"""The package's layers run one way (see testbed/__init__.py): no module imports a module of a
higher layer, not even inside a function, and nothing imports the top-level folders by their
checkout names (controllers, topologies, experiments) instead of testbed.*."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import testbed

PACKAGE = Path(testbed.__file__).resolve().parent

# Lowest first. A module belongs to the first entry whose prefix matches its name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "testbed.errors",
            "testbed.paths",
            "testbed.schemas",
            "testbed.naming",
            "testbed.rpc",
            "testbed.messages",
            "testbed.asks",
            "testbed.waiting",
            "testbed.maglev",
            "testbed.accesslog",
            "testbed.packets",
        ),
    ),
    ("template", ("testbed.template",)),
    ("model", ("testbed.model",)),
    ("plan", ("testbed.plan",)),
    ("topologies", ("testbed.topologies",)),
    ("lab", ("testbed.lab",)),
    (
        "dataplane",
        (
            "testbed.controllers",
            "testbed.health",
            "testbed.lb",
            "testbed.alb",
            "testbed.gwlb",
            "testbed.roles",
            # Auto Scaling runs in the holder beside the load balancers.
            "testbed.autoscaling",
        ),
    ),
    ("stack", ("testbed.stack",)),
    (
        "observe",
        (
            "testbed.traffic",
            "testbed.probes",
            "testbed.snmp",
            "testbed.metrics",
            "testbed.analysis",
            "testbed.results",
        ),
    ),
    ("experiments", ("testbed.experiments",)),
    # A lab across servers: the server harness and the server checks (used by the CLI).
    ("cluster", ("testbed.cluster",)),
    ("cli", ("testbed.cli",)),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
# The controllers run in their own process: nothing imports them, they import no other
# data-plane package (the pure logic they share with the GWLB node lives lower, e.g. maglev).
ISOLATED = ("testbed.controllers",)
CHECKOUT_NAMES = ("controllers", "topologies", "experiments")


def layer_of(module: str) -> str | None:
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None


def modules() -> dict[str, Path]:
    """Every module of the package (the linked top-level folders included) by name."""
    found = {}
    paths = sorted(
        Path(root, f)
        for root, _dirs, files in os.walk(PACKAGE, followlinks=True)
        for f in files
        if f.endswith(".py")
    )
    for path in paths:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, wherever it is (functions included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # "from testbed import naming" imports testbed.naming
            out += [
                (node.lineno, f"{node.module}.{alias.name}")
                for alias in node.names
                if node.module == "testbed"
            ]
    return out


def test_every_module_has_a_layer():
    unplaced = [m for m in modules() if m != "testbed" and layer_of(m) is None]
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


def test_the_linked_folders_are_in_the_package():
    names = modules()
    for folder in ("controllers", "topologies", "experiments"):
        assert f"testbed.{folder}" in names, f"testbed/{folder} (a link to ../{folder}) missing"
    assert (PACKAGE / "templates" / "default.yaml").is_file()


def violations() -> list[str]:
    found = []
    for module, path in modules().items():
        mine = layer_of(module)
        for line, target in imports_of(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}"
            if target.split(".")[0] in CHECKOUT_NAMES:
                found.append(f"{where} (use testbed.{target})")
                continue
            theirs = layer_of(target)
            if mine is None or theirs is None:
                continue
            if RANK[theirs] > RANK[mine]:
                found.append(f"{where} ({mine} -> {theirs}, a higher layer)")
            isolated = [p for p in ISOLATED if target.startswith(p) != module.startswith(p)]
            if isolated and RANK[theirs] == RANK[mine]:
                found.append(
                    f"{where} (the controllers and the rest of the data plane do "
                    "not import each other)"
                )
    return found


def test_layers_run_one_way():
    found = violations()
    assert not found, "imports against the layers:\n" + "\n".join(found)


@pytest.mark.parametrize("module", ["testbed.lab.api", "testbed.stack.holder"])
def test_checker_sees_function_level_imports(module, tmp_path):
    # The checker itself must be able to fail: a function-level import of a higher layer.
    path = modules()[module]
    bad = path.read_text() + "\n\ndef _late():\n    from testbed.cli import main\n"
    sample = tmp_path / "sample.py"
    sample.write_text(bad)
    assert (len(bad.splitlines()), "testbed.cli") in imports_of(sample)
    assert RANK[layer_of("testbed.cli")] > RANK[layer_of(module)]
