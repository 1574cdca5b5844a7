"""testbed validate --summary: many templates, one line each.

    PATH: valid (12 resources; 3 inert)
    PATH: valid with parameters (needs values for: KeyName, VpcCidr; 12 resources; 3 inert)
    PATH: invalid: line 40: Web: unknown resource type AWS::EC2::Instanse (+2 more)

Parameters without a Default are what AWS would ask for, so the lab asks too: `up` needs them.
To still check the rest of such a template, it is built with stand-in values (the first
AllowedValue, MinValue, a lab key pair name, a placeholder AMI, ...) that are used for nothing
else; when that works the template is "valid with parameters" and counts as valid. When a
stand-in does not fit (an AllowedPattern the lab cannot guess), the line says only which
values are needed ("needs parameters", not valid: give them with testbed validate PATH --param).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.model import load_model_text
from testbed.plan.network import build_plan
from testbed.template.nodes import LDict
from testbed.template.yaml_loader import load_text

SUFFIXES = (".yaml", ".yml", ".json", ".template")
# A CloudFormation template has a Resources section naming resource types.
_RESOURCES = re.compile(r"""(^|[{,])\s*["']?Resources["']?\s*:""", re.MULTILINE)
_TYPES = re.compile(r"(AWS|Custom|Lab)::\w+")
PLACEHOLDER_AMI = "ami-0abcdef1234567890"
NEEDS = "needs parameters"
STATUSES = ("valid", "valid with parameters", NEEDS, "invalid")


@dataclass
class Verdict:
    """What validate says about one template."""

    path: str
    status: str  # "valid", "valid with parameters", NEEDS or "invalid"
    resources: int = 0
    inert: int = 0
    # Types accepted but not emulated (their packets are missing from the lab), sorted.
    not_emulated: list[str] = field(default_factory=list)
    errors: list[BadInput] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("valid", "valid with parameters")

    def line(self) -> str:
        needs = f"needs values for: {', '.join(self.needs)}" if self.needs else ""
        if self.ok:
            facts = [needs] if needs else []
            facts.append(f"{self.resources} resources; {self.inert} inert")
            if self.not_emulated:
                facts.append(f"not emulated: {', '.join(self.not_emulated)}")
            return f"{self.path}: {self.status} ({'; '.join(facts)})"
        if self.status == NEEDS:
            refused = ", ".join(dict.fromkeys(str(e.logical_id) for e in self.errors))
            return f"{self.path}: {needs} (the lab's stand-ins do not fit {refused})"
        first = self.errors[0]
        where = "".join(
            part
            for part in (
                f"line {first.line}: " if first.line else "",
                f"{first.logical_id}: " if first.logical_id else "",
            )
        )
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        tail = f" [{needs}]" if needs else ""
        return f"{self.path}: invalid: {where}{first.message}{more}{tail}"


def looks_like_cloudformation(text: str) -> bool:
    """A Resources section and resource type names: worth validating."""
    return bool(_RESOURCES.search(text) and _TYPES.search(text))


def template_files(paths: Iterable[str]) -> tuple[list[str], int]:
    """The files to validate (directories searched recursively, in name order) and how many
    files in those directories were skipped as not CloudFormation. Files named directly are
    always taken."""
    found: list[str] = []
    skipped = 0
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            found.append(given)
            continue
        for candidate in sorted(_walk(path)):
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                skipped += 1
                continue
            if looks_like_cloudformation(text):
                found.append(str(candidate))
            else:
                skipped += 1
    return found, skipped


def _walk(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            yield path


def _pattern_value(pattern: str, candidates: Iterable[str]) -> str | None:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return None
    return next((c for c in candidates if compiled.fullmatch(c)), None)


def stand_in(decl: Any, region: str, index: int = 0, name: str = "") -> str:
    """A value that satisfies a parameter's declaration, only to check the rest of a template.

    index: how many parameters of the same type got a stand-in before this one (AZ parameters
    get different AZs, as a user would give them)."""
    if not isinstance(decl, dict):
        return "lab"
    allowed = decl.get("AllowedValues")
    if isinstance(allowed, list) and allowed:
        return str(allowed[0])
    kind = str(decl.get("Type", "String"))
    if kind in ("Number", "List<Number>"):
        low = decl.get("MinValue")
        return str(low) if low is not None else "1"
    by_type = {
        "AWS::EC2::KeyPair::KeyName": "lab-key",
        "AWS::EC2::Image::Id": PLACEHOLDER_AMI,
        "AWS::EC2::AvailabilityZone::Name": f"{region}{'abc'[index % 3]}",
        "List<AWS::EC2::AvailabilityZone::Name>": f"{region}a,{region}b,{region}c",
    }
    if kind in by_type:
        return by_type[kind]
    if kind.startswith("AWS::SSM::Parameter::Value<"):
        return "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    candidates = ["lab", "lab1", "10.0.0.0/16", "0.0.0.0/0", "t3.micro", "a", "1"]
    if name and "cidr" in name.lower() and not decl.get("AllowedPattern"):
        # A VPC's block, or one /24 of it per subnet parameter, as a user would give them.
        return "10.0.0.0/16" if "vpc" in name.lower() else f"10.0.{index}.0/24"
    pattern = decl.get("AllowedPattern")
    value = _pattern_value(pattern, candidates) if isinstance(pattern, str) else None
    value = value or "lab"
    low = decl.get("MinLength")
    if isinstance(low, int) and len(value) < low:
        value = value + "x" * (low - len(value))
    return value


def missing_parameters(doc: LDict, given: dict[str, str]) -> list[str]:
    """Parameters with no Default and no given value, in declaration order."""
    section = doc.get("Parameters")
    if not isinstance(section, dict):
        return []
    return [
        name
        for name, decl in section.items()
        if name not in given and not (isinstance(decl, dict) and "Default" in decl)
    ]


def judge(path: str, region: str, params: dict[str, str] | None = None) -> Verdict:
    """Validate one template; never raises for what the template says."""
    given = dict(params or {})
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        doc = load_text(text, path)
    except UnicodeDecodeError as err:
        problem = BadInput(f"the template is not UTF-8 text ({err.reason})", file=path)
        return Verdict(path, "invalid", errors=[problem])
    except OSError as err:
        problem = BadInput(f"cannot read the template: {err.strerror or err}", file=path)
        return Verdict(path, "invalid", errors=[problem])
    except BadInput as err:
        return Verdict(path, "invalid", errors=_all(err))
    needs = missing_parameters(doc, given)
    section = doc.get("Parameters")
    seen: dict[str, int] = {}
    for name in needs:
        decl = section.get(name) if isinstance(section, dict) else None
        kind = str(decl.get("Type")) if isinstance(decl, dict) else ""
        given[name] = stand_in(decl, region, seen.get(kind, 0), name)
        seen[kind] = seen.get(kind, 0) + 1
    try:
        model = load_model_text(text, filename=path, params=given, region=region)
        build_plan(model, "check")
    except BadInput as err:
        errors = _all(err)
        if needs and all(e.logical_id in needs for e in errors):
            # Only the stand-ins were refused: the values AWS would ask for are what is missing.
            return Verdict(path, NEEDS, errors=errors, needs=needs)
        return Verdict(path, "invalid", errors=errors, needs=needs)
    status = "valid with parameters" if needs else "valid"
    count = len(model.resource_types) - len(model.lab_made)
    missing = sorted({r.type for r in model.inert.values() if r.kind == "not-emulated"})
    inert = sum(1 for r in model.inert.values() if r.kind != "not-emulated")
    return Verdict(path, status, count, inert, not_emulated=missing, needs=needs)


def _all(err: BadInput) -> list[BadInput]:
    return list(err.errors) if isinstance(err, TemplateErrors) else [err]
