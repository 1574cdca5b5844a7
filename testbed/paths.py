"""Where the project's own files are: templates, experiments, results."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
EXPERIMENTS = REPO / "experiments"
DEFAULT_TEMPLATE = TEMPLATES / "default.yaml"


def results_root() -> Path:
    """Where experiments write results/<experiment>/<timestamp>/ ($TESTBED_RESULTS)."""
    return Path(os.environ.get("TESTBED_RESULTS", REPO / "results"))
