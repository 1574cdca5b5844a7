"""Runs one experiment module: typed parameters, a results directory, meta.json."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from testbed.errors import BadInput
from testbed.results import ResultsDir


def parse_params(module: Any, given: dict[str, str]) -> dict[str, Any]:
    """Defaults from module.PARAMS ({name: (default, help)}), overridden by --param values,
    converted to the default's type (lists: comma-separated)."""
    spec = getattr(module, "PARAMS", {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise BadInput(f"unknown parameter(s) {', '.join(unknown)}",
                       hint="parameters: " + ", ".join(f"{k} (default {v[0]!r})"
                                                       for k, v in spec.items()))
    out = {}
    for key, (default, _help) in spec.items():
        if key not in given:
            out[key] = default
            continue
        text = given[key]
        try:
            if isinstance(default, bool):
                out[key] = text.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, list):
                kind = type(default[0]) if default else str
                out[key] = [kind(x) for x in text.split(",") if x.strip()]
            elif default is None:
                out[key] = text
            else:
                out[key] = type(default)(text)
        except ValueError as exc:
            raise BadInput(f"parameter {key}: {exc}") from exc
    return out


def run_experiment(module: Any, name: str, given: dict[str, str],
                   out: str | None = None) -> Path:
    params = parse_params(module, given)
    seed = params.get("seed")
    if seed is None:
        seed = int(time.time())
    random.seed(seed)
    results = ResultsDir(name, params, out=Path(out) if out else None,
                         template=getattr(module, "TEMPLATE", None), seed=seed)
    print(f"experiment {name}: results go to {results.path}", flush=True)
    summary = module.run(params, results)
    return results.finish(summary=summary)
