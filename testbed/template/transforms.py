"""The template's Transform section, applied before anything else reads it.

- AWS::Serverless-2016-10-31 (SAM): AWS's own translator (aws-sam-translator) turns the
  Serverless resources into CloudFormation ones, offline: the stack's region instead of a boto
  session, managed policy names made into their ARNs without asking IAM. The result keeps
  the template's lines where it can (a resource SAM left alone keeps its own; one SAM made
  points at the SAM resource it came from).
- AWS::LanguageExtensions passes through (its functions are the intrinsics' business).
- Any other transform (a macro, an include) runs code in AWS: an error naming it.

The translated document keeps Transform, so the model still records which were applied.
"""

from __future__ import annotations

from typing import Any

from testbed.errors import BadInput, TemplateErrors
from testbed.template.nodes import LDict, LList

SAM = "AWS::Serverless-2016-10-31"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
KNOWN = (SAM, LANGUAGE_EXTENSIONS)
_POLICY_ARN = "arn:aws:iam::aws:policy/"
NO_REPOSITORY = (
    "applications of the Serverless Application Repository are nested stacks fetched from "
    "AWS: not supported by the lab"
)


def names(doc: LDict) -> list[str]:
    """The transforms the template asks for, in order (a string or a list of strings)."""
    value = doc.get("Transform")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadInput(
        "Transform must be a transform name or a list of them",
        line=doc.line_of("Transform"),
        hint=f"write Transform: {SAM}",
    )


def apply(
    doc: LDict, filename: str, params: dict[str, Any] | None = None, region: str = "us-east-1"
) -> LDict:
    """The template after its transforms; BadInput (naming the file) when one cannot run."""
    if not isinstance(doc, LDict) or "Transform" not in doc:
        return doc
    found = names(doc)
    for name in found:
        if name not in KNOWN:
            raise BadInput(
                f"transform {name} cannot run in the lab (macros and includes run in AWS)",
                file=filename,
                line=doc.line_of("Transform"),
                hint=f"the lab applies {SAM} and passes {LANGUAGE_EXTENSIONS} through; "
                "write the expanded template instead",
            )
    if SAM not in found:
        return doc
    return _sam(doc, filename, params or {}, region)


class _AnyManagedPolicy(dict[str, str]):
    """Every AWS managed policy name -> its ARN, without asking IAM (the lab has no account)."""

    def get(self, name: Any, default: Any = None) -> Any:
        return _POLICY_ARN + str(name) if isinstance(name, str) else default


class _Session:
    """What the translator reads of a boto session: only the region (no AWS call is made)."""

    def __init__(self, region: str) -> None:
        self.region_name = region


def _sam(doc: LDict, filename: str, params: dict[str, Any], region: str) -> LDict:
    # Imported here: the translator is large and only SAM templates need it.
    from samtranslator.model.exceptions import InvalidDocumentException, InvalidResourceException
    from samtranslator.parser.parser import Parser
    from samtranslator.plugins.application.serverless_app_plugin import (
        ServerlessAppPlugin,
    )
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    class NoRepository(ServerlessAppPlugin):
        """AWS::Serverless::Application from the Serverless Application Repository: fetched
        from AWS, then a nested stack. Neither is possible here: no call, a clear error."""

        def _make_service_call_with_retry(
            self, service_call: Any, app_id: Any, semver: Any, key: Any, logical_id: str
        ) -> None:
            self._applications[key] = InvalidResourceException(logical_id, NO_REPOSITORY)

    plain = _plain(doc)
    values = dict(params)
    saved = ArnGenerator.BOTO_SESSION_REGION_NAME  # the translator sets it from the session
    # As samtranslator.translator.transform.transform does, with the stack's region and
    # managed policy ARNs made from their names instead of a boto session and IAM.
    try:
        to_py27_compatible_template(plain, values)
        translator = Translator(
            None, Parser(), plugins=[NoRepository()], boto_session=_Session(region)
        )
        try:
            translated = undo_mark_unicode_str_in_template(
                translator.translate(plain, values, get_managed_policy_map=_AnyManagedPolicy)
            )
        finally:
            translator.metrics.publish()  # to its dummy publisher: nothing leaves the machine
    except InvalidDocumentException as err:
        problems = [_problem(cause, doc, filename) for cause in err.causes] or [
            BadInput(f"{SAM}: {err.message}", file=filename, line=doc.line_of("Transform"))
        ]
        raise problems[0] if len(problems) == 1 else TemplateErrors(problems) from None
    except Exception as err:  # the translator's own failures: still bad input, not a crash
        raise BadInput(
            f"{SAM} could not translate the template: {err}",
            file=filename,
            line=doc.line_of("Transform"),
        ) from None
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME = saved
    translated["Transform"] = doc["Transform"]
    return _with_lines(translated, doc)


def _problem(cause: Any, doc: LDict, filename: str) -> BadInput:
    """One of the translator's errors, at its resource when it names one."""
    lid = getattr(cause, "_logical_id", None)
    resources = doc.get("Resources")
    if isinstance(lid, str) and isinstance(resources, LDict) and lid in resources:
        reason = getattr(cause, "_message", None) or cause.message
        return BadInput(
            f"{SAM}: {reason}", file=filename, line=resources.line_of(lid), logical_id=lid
        )
    return BadInput(f"{SAM}: {cause.message}", file=filename, line=doc.line_of("Transform"))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _wrap(value: Any, line: int | None) -> Any:
    """Plain data as LDict/LList, every node at `line`."""
    if isinstance(value, dict):
        result = LDict({k: _wrap(v, line) for k, v in value.items()}, line=line)
        result.lines = {k: line for k in value if line is not None}
        return result
    if isinstance(value, list):
        items = LList([_wrap(v, line) for v in value], line=line)
        items.lines = [line] * len(value)
        return items
    return value


def _origin(logical_id: str, original: LDict) -> str | None:
    """The SAM resource a generated one comes from: the longest logical id it starts with."""
    found = [lid for lid in original if logical_id.startswith(lid)]
    return max(found, key=len) if found else None


def _with_lines(translated: dict[str, Any], doc: LDict) -> LDict:
    result = LDict(line=doc.line)
    for key, value in translated.items():
        before = doc.get(key)
        line = doc.line_of(key)
        if key == "Resources" and isinstance(before, LDict) and isinstance(value, dict):
            value = _resources(value, before)
        elif before is not None and _plain(before) == value:
            value = before  # untouched: keep its lines
        else:
            value = _wrap(value, line)
        result[key] = value
        if line is not None:
            result.lines[key] = line
    return result


def _resources(translated: dict[str, Any], before: LDict) -> LDict:
    result = LDict(line=before.line)
    for lid, value in translated.items():
        original = before.get(lid)
        if original is not None and _plain(original) == value:
            result[lid] = original
            line = before.line_of(lid)
        else:
            origin = _origin(lid, before)
            line = before.line_of(origin) if origin else before.line
            result[lid] = _wrap(value, line)
        if line is not None:
            result.lines[lid] = line
    return result
