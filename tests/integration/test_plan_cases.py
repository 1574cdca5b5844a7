"""`testbed plan` against a running lab (issue 14, "a plan whose Replacement column matches
AWS's documented behaviour for at least 20 property changes"): the lab runs the change-set
tests' template; each documented property change (tests/unit/test_changeset.py
PROPERTY_CASES, each citing its reference page) is planned through the CLI against the
template the lab keeps, and the JSON's Replacement and RequiresRecreation are AWS's."""

from __future__ import annotations

import json

import pytest

from testbed.cli import main
from testbed.lab.api import Lab
from tests.unit.changeset_data import BASE
from tests.unit.test_changeset import PROPERTY_CASES

pytestmark = pytest.mark.integration


def test_the_replacement_column_is_awss(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    assert len(PROPERTY_CASES) >= 20
    with Lab.up(str(base)) as lab:
        seen = []
        for resource, old, new, prop, *_ in PROPERTY_CASES:
            assert BASE.count(old) >= 1, old
            changed = tmp_path / f"{resource}-{prop}.yaml"
            changed.write_text(BASE.replace(old, new, 1))
            capsys.readouterr()
            assert main(["plan", lab.name, str(changed), "--json"]) == 0
            doc = json.loads(capsys.readouterr().out)
            change = next(
                c["ResourceChange"]
                for c in doc["Changes"]
                if c["ResourceChange"]["LogicalResourceId"] == resource
            )
            detail = next(d for d in change["Details"] if d["Target"].get("Name") == prop)
            seen.append(
                (
                    resource,
                    prop,
                    change["Replacement"],
                    detail["Target"]["RequiresRecreation"],
                )
            )
        expected = [(c[0], c[3], c[5], c[4]) for c in PROPERTY_CASES]
        assert seen == expected
        assert lab.state["state"] == "CREATE_COMPLETE"  # planning changed nothing
