"""AWS::Lambda::Function: a function an Application Load Balancer can invoke (issue 17).

The lab runs a function only as the target of an ALB's `TargetType: lambda` target group:
it becomes a lab host of its own (kind "lambda", role lambda-runtime, placed by
testbed.model.lambda_targets) that turns each request into AWS's ALB event and runs the
handler. That needs the code inline (Code.ZipFile) and a python3.x runtime; a function built
from S3, an image or another runtime is accepted while nothing invokes it (as on AWS it would
just sit there) and is an error once a target group names it.

On AWS, ZipFile code is stored as index.py (index.js for Node), so its Handler is
"index.<function>"; Timeout defaults to 3 s (1-900), MemorySize to 128 MB (128-10240).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from testbed.model.resources.base import ResourceContext, ResourceType, prop
from testbed.model.resources.elbv2.common import nested
from testbed.model.resources.inert import generated_name
from testbed.model.resources.registry import register
from testbed.model.state import BuildState
from testbed.model.types import Source, frozen_map
from testbed.template.intrinsics import ACCOUNT_ID

FUNCTION = "AWS::Lambda::Function"
EXTRAS_KEY = "lambda"
DEFAULT_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
PYTHON_RUNTIME = re.compile(r"^python3\.\d+$")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class LambdaFunction:
    """One AWS::Lambda::Function.

    code: the inline Python source (Code.ZipFile), None when the code is elsewhere; why_not:
    then (or with another runtime) why the lab cannot run it, and the line to blame.
    subnet_id / private_ip: where its lab host is, once an ALB's target group names it
    (testbed.model.lambda_targets); None: nothing invokes it, no host.
    """

    logical_id: str
    name: str
    arn: str
    runtime: str | None
    handler: str | None
    code: str | None
    timeout_s: int
    memory_mb: int
    environment: Any  # frozen {name: value}
    why_not: str | None = None
    why_not_line: int | None = None
    source: Source | None = None
    subnet_id: str | None = None
    private_ip: IPv4Address | None = None
    target_groups: tuple[str, ...] = field(default=())


def functions(state_or_model: Any) -> dict[str, LambdaFunction]:
    """The functions of a BuildState (a live dict) or of a StackModel (read only)."""
    if isinstance(state_or_model, BuildState):
        return state_or_model.extras.setdefault(EXTRAS_KEY, {})
    extras = getattr(state_or_model, "extras", None) or {}
    return dict(extras.get(EXTRAS_KEY) or {})


def _why_not(ctx: ResourceContext, code: dict[str, Any], lines: dict[str, int | None]) -> tuple:
    """(reason, line) the lab cannot run the function, or (None, None)."""
    runtime = ctx.props.get("Runtime")
    if "ImageUri" in code or ctx.props.get("PackageType") == "Image":
        return "its code is a container image (ImageUri)", lines.get("ImageUri", ctx.line("Code"))
    if "ZipFile" not in code:
        at = lines.get("S3Bucket", lines.get("S3Key", ctx.line("Code")))
        return "its code is in S3 (S3Bucket/S3Key), not inline (Code.ZipFile)", at
    if runtime is None or not PYTHON_RUNTIME.match(str(runtime)):
        return f"its Runtime is {runtime or 'missing'}, not python3.x", ctx.line("Runtime")
    handler = ctx.props.get("Handler")
    if handler is None or not HANDLER.match(str(handler)):
        return (
            f"its Handler {handler!r} is not module.function (index.handler for ZipFile code)",
            ctx.line("Handler"),
        )
    if not str(handler).startswith("index."):
        return (
            f"its Handler {handler} names module {str(handler).rsplit('.', 1)[0]}, but ZipFile "
            "code is the module index (write index.<function>)",
            ctx.line("Handler"),
        )
    return None, None


def _build(ctx: ResourceContext) -> None:
    state, lid, props = ctx.state, ctx.logical_id, ctx.props
    # CloudFormation's default: stack-LogicalId-RANDOM (the same deterministic stand-in for
    # the random part as the lab's inert types, so a name is the same in every run).
    name = props.get("FunctionName") or generated_name(state, lid, 64)
    if not NAME.match(name):
        raise ctx.fail(
            f"FunctionName {name!r}: 1-64 letters, digits, hyphens or underscores",
            prop="FunctionName",
        )
    if "Code" not in props:
        raise ctx.fail("required property Code is missing")
    code, code_lines = nested(
        ctx,
        props["Code"],
        "Code",
        ctx.line("Code"),
        {
            "ZipFile": prop("string"),
            "S3Bucket": prop("string"),
            "S3Key": prop("string"),
            "S3ObjectVersion": prop("string"),
            "ImageUri": prop("string"),
            "SourceKMSKeyArn": prop("string"),
        },
    )
    timeout = props.get("Timeout", DEFAULT_TIMEOUT_S)
    if not 1 <= timeout <= 900:
        raise ctx.fail(f"Timeout must be 1 to 900 seconds, not {timeout}", prop="Timeout")
    memory = props.get("MemorySize", DEFAULT_MEMORY_MB)
    if not 128 <= memory <= 10240:
        raise ctx.fail(f"MemorySize must be 128 to 10240 MB, not {memory}", prop="MemorySize")
    env: dict[str, str] = {}
    if "Environment" in props:
        values, lines = nested(
            ctx,
            props["Environment"],
            "Environment",
            ctx.line("Environment"),
            {"Variables": prop("map")},
        )
        for key, value in (values.get("Variables") or {}).items():
            if not isinstance(value, (str, int, float, bool)):
                raise ctx.fail(
                    f"Environment.Variables.{key} must be text, not {type(value).__name__}",
                    line=lines.get("Variables"),
                )
            env[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    why, why_line = _why_not(ctx, code, code_lines)
    functions(state)[lid] = LambdaFunction(
        logical_id=lid,
        name=name,
        arn=f"arn:aws:lambda:{state.region}:{ACCOUNT_ID}:function:{name}",
        runtime=props.get("Runtime"),
        handler=props.get("Handler"),
        code=code.get("ZipFile"),
        timeout_s=int(timeout),
        memory_mb=int(memory),
        environment=frozen_map(env),
        why_not=why,
        why_not_line=why_line,
        source=ctx.source,
    )


PROPERTIES = {
    "FunctionName": prop("string"),
    "Code": prop("map"),
    "Runtime": prop("string"),
    "Handler": prop("string"),
    "Role": prop("string"),
    "Timeout": prop("integer"),
    "MemorySize": prop("integer"),
    "Environment": prop("map"),
    "PackageType": prop("string"),
    "Description": prop("string"),
}


def _fn(state: BuildState, lid: str) -> LambdaFunction:
    return functions(state)[lid]


# AWS's other properties (cfn-lint's schema of AWS::Lambda::Function, less PROPERTIES and
# Tags), written out: reading the schema when this module loads would load cfn-lint (0.3 s) in
# every lab process that imports the model (http-backend, nodes). A unit test keeps it in step.
IGNORED = frozenset(
    {
        "Architectures",
        "CapacityProviderConfig",
        "CodeSigningConfigArn",
        "DeadLetterConfig",
        "DurableConfig",
        "EphemeralStorage",
        "FileSystemConfigs",
        "FunctionScalingConfig",
        "ImageConfig",
        "KmsKeyArn",
        "Layers",
        "LoggingConfig",
        "PublishToLatestPublished",
        "RecursiveLoop",
        "ReservedConcurrentExecutions",
        "RuntimeManagementConfig",
        "SnapStart",
        "TenancyConfig",
        "TracingConfig",
        "VpcConfig",
    }
)

register(
    ResourceType(
        FUNCTION,
        _build,
        properties=PROPERTIES,
        # AWS's other properties (layers, VPC access, concurrency, tracing, ...): accepted,
        # listed as ignored; the lab's runtime has no use for them.
        ignored=IGNORED,
        ref_value=lambda s, lid: _fn(s, lid).name,
        attributes={"Arn": lambda s, lid: _fn(s, lid).arn},
    )
)
