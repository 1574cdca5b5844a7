"""Fixtures for the template engine and model tests: load text, expect errors, evaluate."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testbed.errors import BadInput
from testbed.model import load_model_text

REPO = Path(__file__).resolve().parents[2]
FILENAME = "t.yaml"

# A template around one output value, for evaluating intrinsic functions.
EVALUATE_TEMPLATE = """\
Parameters:
  Env: {Type: String, Default: prod}
  Count: {Type: Number, Default: 3}
  Zones: {Type: CommaDelimitedList, Default: "a, b,c"}
Mappings:
  RegionMap:
    us-east-1: {Ami: ami-1, Sizes: [1, 2]}
    eu-west-1: {Ami: ami-2}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1b}
Outputs:
  Result:
    Value: {expr}
"""


def line_with(text: str, fragment: str) -> int:
    """The 1-based line of the first occurrence of `fragment` in `text`."""
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} is not in the template")


def _load(text: str, **kwargs):
    return load_model_text(textwrap.dedent(text), filename=FILENAME, **kwargs)


@pytest.fixture
def load():
    """load(text, **kwargs) -> StackModel from dedented template text."""
    return _load


@pytest.fixture
def fails():
    """fails(text, *fragments, line=, logical_id=) -> the BadInput, checked."""

    def check(
        text: str, *fragments: str, line: int | None = None, logical_id: str | None = None, **kwargs
    ) -> BadInput:
        with pytest.raises(BadInput) as info:
            _load(text, **kwargs)
        err = info.value
        shown = str(err)
        for fragment in fragments:
            assert fragment in shown, shown
        if line is not None:
            assert f"{FILENAME}:{line}:" in shown, shown
        if logical_id is not None:
            assert f": {logical_id}: " in shown, shown
        return err

    return check


@pytest.fixture
def evaluate():
    """evaluate(expr, **kwargs) -> the resolved value of `expr` as an output Value."""

    def run(expr: str, **kwargs):
        model = _load(EVALUATE_TEMPLATE.replace("{expr}", expr), **kwargs)
        return model.outputs["Result"]

    return run


@pytest.fixture(name="line_with")
def line_with_fixture():
    """line_with(text, fragment) -> the 1-based line of fragment in the dedented text."""
    return line_with


@pytest.fixture
def default_text() -> str:
    """The text of templates/default.yaml."""
    return (REPO / "templates" / "default.yaml").read_text()
