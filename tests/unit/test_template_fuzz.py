"""Property-based tests: whatever the input, the engine answers with a model or BadInput.

A traceback is a bug: the user must always get a message naming the file.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.errors import BadInput
from testbed.model import load_model_text
from testbed.model.types import StackModel
from testbed.template.yaml_loader import load_text

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TEXT = (REPO / "templates" / "default.yaml").read_text()
THREE_AZ_TEXT = (REPO / "templates" / "three-az.yaml").read_text()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


DEFAULT_DOC = _plain(load_text(DEFAULT_TEXT, "default.yaml"))
THREE_AZ_DOC = _plain(load_text(THREE_AZ_TEXT, "three-az.yaml"))
# FUZZ_EXAMPLES=5000 runs a deeper search than the quick default of the unit suite.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Names that mean something to the engine, so random data reaches deep code paths.
WORDS = [
    "Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::If",
    "Fn::Base64", "Fn::GetAZs", "Fn::Cidr", "Fn::FindInMap", "Fn::Equals", "Fn::And",
    "Fn::Or", "Fn::Not", "Condition", "AWS::NoValue", "AWS::Region", "VPC", "WebA1",
    "PublicSubnetA", "InternetGateway", "PublicRouteTable", "Client1", "VpcCidr", "WebRole",
    "CidrBlock", "SubnetId", "PrivateIp", "PublicIp", "Type", "Properties", "DependsOn",
    "Metadata", "Lab", "Role", "AWS::EC2::Instance", "AWS::EC2::Subnet", "10.0.0.0/16",
    "10.0.0.4", "0.0.0.0/0", "", "${VPC}", "${WebA1.PrivateIp}", "${AWS::Region}", "us-east-1a",
]
scalars = st.one_of(
    st.sampled_from(WORDS), st.text(max_size=12), st.integers(-5, 300), st.booleans(),
    st.none(), st.floats(allow_nan=True, allow_infinity=True),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def check(text: str, filename: str = "fuzz.yaml", **kwargs: Any) -> None:
    """The whole contract: a StackModel, or a BadInput whose message names the file."""
    try:
        model = load_model_text(text, filename=filename, **kwargs)
    except BadInput as err:
        assert str(err).startswith(filename), str(err)
        return
    assert isinstance(model, StackModel)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (sequence of keys/indexes) into a nested value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, prefix + (index,))
    return found


def parent_of(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@FUZZ
@given(values)
def test_random_structures_as_templates(value):
    check(json.dumps(value, allow_nan=True))
    check(json.dumps({"Resources": value}, allow_nan=True))


@FUZZ
@given(values, st.sampled_from(["AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::Instance",
                                "AWS::EC2::Route", "Lab::Internet::Client",
                                "AWS::EC2::SubnetRouteTableAssociation"]))
def test_random_properties_in_the_default_stack(value, type_name):
    doc = copy.deepcopy(DEFAULT_DOC)
    doc["Resources"]["Fuzz"] = {"Type": type_name, "Properties": value}
    check(json.dumps(doc))
    doc["Resources"]["Fuzz"] = {"Type": type_name, "Properties": {"CidrBlock": value,
                                                                  "SubnetId": value}}
    check(json.dumps(doc))


@FUZZ
@given(st.data(), st.sampled_from([DEFAULT_DOC, THREE_AZ_DOC]))
def test_mutations_of_the_shipped_templates(data, original):
    doc = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3))):
        all_paths = [p for p in paths(doc) if p]
        if not all_paths:
            break
        path = data.draw(st.sampled_from(all_paths))
        parent = parent_of(doc, path)
        action = data.draw(st.sampled_from(["delete", "replace", "bad-ref", "swap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = data.draw(values)
        elif action == "bad-ref":
            parent[path[-1]] = {"Ref": data.draw(st.sampled_from(WORDS) | st.text(max_size=6))}
        else:  # swap types: a scalar becomes a list of itself, a container its first item
            item = parent[path[-1]]
            if isinstance(item, dict):
                parent[path[-1]] = list(item.values())[:1]
            elif isinstance(item, list):
                parent[path[-1]] = item[0] if item else {}
            else:
                parent[path[-1]] = [item]
    check(json.dumps(doc, allow_nan=True))


@FUZZ
@given(st.data())
def test_line_edits_of_the_default_yaml(data):
    lines = DEFAULT_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "duplicate", "indent", "dedent",
                                            "insert", "truncate"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = "  " + lines[index]
        elif action == "dedent":
            lines[index] = lines[index][2:]
        elif action == "insert":
            lines.insert(index, data.draw(st.text(max_size=20)))
        else:
            cut = data.draw(st.integers(0, max(len(lines[index]) - 1, 0)))
            lines[index] = lines[index][:cut]
        if not lines:
            break
    check("\n".join(lines) + "\n")


@FUZZ
@given(st.text(alphabet=list("{}[]:,-!&*|>'\"#% \n\tabAB01.$"), max_size=60)
       | st.text(max_size=60))
def test_random_yaml_text(text):
    check(text)
    check(text, filename="fuzz.json")
    check("Resources:\n  X: " + text)


@FUZZ
@given(st.dictionaries(st.sampled_from(["VpcCidr", "InterAzDelayMs", "WebRole", "Other"]),
                       st.text(max_size=20), max_size=3),
       st.text(max_size=10), st.text(max_size=12))
def test_random_parameters_stack_names_and_regions(params, stack_name, region):
    check(DEFAULT_TEXT, params=params)
    check(DEFAULT_TEXT, stack_name=stack_name or "default", region=region or "us-east-1")
