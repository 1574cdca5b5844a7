"""Where the project's own files are: templates (package data), results."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# The checkout holding this package, when there is one (an installed wheel has none).
REPO = PACKAGE.parent
TEMPLATES = PACKAGE / "templates"
DEFAULT_TEMPLATE = TEMPLATES / "default.yaml"


def embedded_templates() -> list[str]:
    """Names of the templates shipped with the package (default, nlb, alb, ...)."""
    return sorted(p.stem for p in TEMPLATES.glob("*.yaml"))


def resolve_template(text: str) -> str:
    """A template argument as a path: a file that exists, else an embedded template's name
    ("default", "nlb", ...), else the text itself (loading it then says what is wrong)."""
    if Path(text).exists():
        return text
    embedded = TEMPLATES / (text if text.endswith((".yaml", ".yml")) else f"{text}.yaml")
    return str(embedded) if embedded.is_file() else text


def in_checkout() -> bool:
    """True when running from the project's source tree (not an installed wheel)."""
    return (REPO / "setup.cfg").is_file() and (REPO / "testbed").is_dir()


def results_root() -> Path:
    """Where experiments write results/<experiment>/<timestamp>/: $TESTBED_RESULTS, else the
    checkout's results/ folder, else results/ in the current directory."""
    if "TESTBED_RESULTS" in os.environ:
        return Path(os.environ["TESTBED_RESULTS"])
    return (REPO if in_checkout() else Path.cwd()) / "results"
