"""Custom resources (Custom::* and AWS::CloudFormation::CustomResource).

On AWS a Lambda function (or an SNS topic) computes them; nothing can run it in the lab, so a
custom resource is refused unless the template gives what it would have returned:

    AmiInfo:
      Type: Custom::AMIInfo
      Metadata: {Lab: {Attributes: {Id: ami-0abcdef1234567890}, PhysicalId: ami-info}}
      Properties: {ServiceToken: !GetAtt AmiInfoFunction.Arn, Region: !Ref AWS::Region}

Then it is an InertResource of kind "custom": GetAtt returns the given attributes (another name
is an error listing them), Ref the PhysicalId (default: a name as CloudFormation makes it).
Its properties are the function's input: any, with ServiceToken required as on AWS.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from testbed.errors import BadInput
from testbed.model import catalog
from testbed.model.metadata import plain
from testbed.model.resources.base import Attribute, Prop, ResourceContext, ResourceType
from testbed.model.resources.inert import generated_name
from testbed.model.resources.registry import add_fallback
from testbed.model.state import BuildState
from testbed.model.types import InertResource, frozen_map
from testbed.template.intrinsics import as_text
from testbed.template.nodes import describe, line_of

LAB_KEYS = ("Attributes", "PhysicalId")
HINT = (
    "give the values it would return: Metadata: {Lab: {Attributes: {Name: value, ...}}} "
    "(and PhysicalId for its Ref)"
)
_TOKEN = Prop("any", required=True)
_ANY = Prop("any")


def lab_attributes(metadata: Any) -> Any:
    """Metadata.Lab.Attributes as written (None when absent)."""
    if isinstance(metadata, dict) and isinstance(metadata.get("Lab"), dict):
        return metadata["Lab"].get("Attributes")
    return None


class _AnyProperty(Mapping[str, Prop]):
    """A custom resource takes any property (its function's input); ServiceToken is needed."""

    def __getitem__(self, key: str) -> Prop:
        return _TOKEN if key == "ServiceToken" else _ANY

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(("ServiceToken",))

    def __len__(self) -> int:
        return 1


class _GivenAttribute(Mapping[str, Attribute]):
    """GetAtt of a custom resource: any name is accepted while reading the template; the value
    comes from Metadata.Lab.Attributes once the resource is built."""

    def __getitem__(self, key: str) -> Attribute:
        def value(state: BuildState, logical_id: str) -> Any:
            given = state.inert[logical_id].attributes
            if key not in given:
                raise BadInput(
                    f"{logical_id} has no attribute {key!r} in its Metadata.Lab.Attributes",
                    hint=f"the attributes given: {', '.join(sorted(given)) or 'none'}",
                )
            return given[key]

        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _build(ctx: ResourceContext) -> None:
    state, lid = ctx.state, ctx.logical_id
    metadata = ctx.metadata
    lab = metadata.get("Lab") if isinstance(metadata, dict) else None
    at = line_of(metadata, "Lab", ctx.line())
    attributes = lab_attributes(metadata)
    if attributes is None or not isinstance(lab, dict):
        raise ctx.fail(f"{ctx.type.name}: {catalog.LAMBDA_CUSTOM}", hint=HINT)
    if not isinstance(attributes, dict):
        raise ctx.fail(
            f"Metadata.Lab.Attributes must be a mapping, not {describe(attributes)}",
            line=line_of(lab, "Attributes", at),
        )
    physical = lab.get("PhysicalId")
    if physical is None:
        ref = generated_name(state, lid)
    else:
        text = as_text(physical)
        if not text:
            raise ctx.fail(
                f"Metadata.Lab.PhysicalId must be text, not {describe(physical)}",
                line=line_of(lab, "PhysicalId", at),
            )
        ref = text
    state.inert[lid] = InertResource(
        lid,
        ctx.type.name,
        ref,
        frozen_map({str(k): plain(v) for k, v in attributes.items()}),
        "custom",
        f"not emulated: {catalog.LAMBDA_CUSTOM}; its attributes come from Metadata.Lab",
        source=ctx.source,
        properties=frozen_map(plain(ctx.props)),
    )


def make_type(type_name: str) -> ResourceType | None:
    """The ResourceType of a custom resource type (None for any other type)."""
    if not catalog.is_custom(type_name):
        return None
    return ResourceType(
        type_name,
        _build,
        properties=_AnyProperty(),
        attributes=_GivenAttribute(),
        ref_value=lambda state, lid: state.inert[lid].ref,
    )


add_fallback(make_type)
