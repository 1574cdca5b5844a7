"""Fixtures for tests on real labs: each lab is torn down in `finally`, whatever happens."""

from __future__ import annotations

import pytest

from testbed.lab.api import Lab
from testbed.paths import TEMPLATES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_lab():
    """The embedded default template, up for the whole module."""
    with Lab.up(str(TEMPLATES / "default.yaml"), name=None) as lab:
        yield lab
