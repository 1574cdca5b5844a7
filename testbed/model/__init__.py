"""The stack model: load a template into a validated, frozen StackModel.

    model = load_model("templates/default.yaml", {"InterAzDelayMs": "5"})

Every problem with the input is a testbed.errors.BadInput (TemplateErrors when there are
several), naming the file, the line and the logical id involved.
"""

from __future__ import annotations

from collections.abc import Mapping

from testbed.errors import BadInput, TemplateErrors
from testbed.model.addressing import KeptAddresses
from testbed.model.build import build_model
from testbed.model.lab_view import LabView
from testbed.model.types import StackModel
from testbed.template import transforms
from testbed.template.yaml_loader import load_text

__all__ = ["load_model", "load_model_text"]


def load_model_text(
    text: str,
    *,
    filename: str,
    params: Mapping[str, str] | None = None,
    stack_name: str = "default",
    region: str = "us-east-1",
    qualifier: str = "",
    lab: LabView | None = None,
    keep_addresses: KeptAddresses | None = None,
) -> StackModel:
    """Build the stack model from template text; `filename` is used in error messages
    (qualifier, lab: build_model's; "" and None for a lab's first stack)."""
    doc = load_text(text, filename)
    try:
        # SAM first (AWS::Serverless-2016-10-31): the model is built from what it makes.
        doc = transforms.apply(doc, filename, dict(params or {}), region)
        return build_model(
            doc,
            file=filename,
            params=dict(params or {}),
            stack_name=stack_name,
            region=region,
            qualifier=qualifier,
            lab=lab,
            keep_addresses=keep_addresses,
        )
    except TemplateErrors as err:
        raise TemplateErrors([e.located(file=filename) for e in err.errors]) from None
    except BadInput as err:
        # Errors about --param/--region values have no line; they still name the template.
        raise err.located(file=filename) from None
    except RecursionError:
        # Only pathological templates (thousands of nested functions) get here.
        raise BadInput("the template is nested too deeply to evaluate", file=filename) from None


def load_model(
    path: str,
    params: Mapping[str, str] | None = None,
    *,
    stack_name: str = "default",
    region: str = "us-east-1",
    qualifier: str = "",
    lab: LabView | None = None,
    keep_addresses: KeptAddresses | None = None,
) -> StackModel:
    """Read a template file (YAML or JSON) and build its stack model."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise BadInput(
            f"the template is not UTF-8 text ({err.reason} at byte {err.start})", file=path
        ) from None
    except OSError as err:
        raise BadInput(f"cannot read the template: {err.strerror or err}", file=path) from None
    return load_model_text(
        text,
        filename=path,
        params=params,
        stack_name=stack_name,
        region=region,
        qualifier=qualifier,
        lab=lab,
        keep_addresses=keep_addresses,
    )
