"""Running an experiment: typed parameters, and its results/<experiment>/<timestamp>/ directory
with meta.json.

meta.json holds what is needed to re-run a result: the experiment and its parameters, the
template, the git commit, datapath, kernel, tool versions, random seed, start and end time.
"""

from __future__ import annotations

import json
import platform
import random
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from testbed.errors import BadInput
from testbed.lab import run_servers
from testbed.lab.capabilities import detect
from testbed.lab.run_servers import RunServers
from testbed.paths import REPO, in_checkout, results_root


def git_commit() -> str | None:
    """The repository's HEAD commit (with '-dirty' when files differ), or None (e.g. when
    running from an installed wheel)."""
    if not in_checkout():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


class ResultsDir:
    """A fresh results/<experiment>/<timestamp>/ directory and its meta.json."""

    def __init__(
        self,
        experiment: str,
        params: dict[str, Any],
        out: Path | None = None,
        template: str | None = None,
        seed: int | None = None,
    ) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(out) if out else results_root() / experiment
        path = base / stamp
        n = 1
        while path.exists():
            n += 1
            path = base / f"{stamp}-{n}"
        path.mkdir(parents=True)
        self.path = path
        caps = detect()
        self.meta: dict[str, Any] = {
            "experiment": experiment,
            "params": params,
            "template": template,
            "seed": seed,
            "git_commit": git_commit(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "datapath": caps.default_datapath(),
            "capabilities": {
                k: getattr(caps, k) for k in ("netem", "htb", "geneve", "tun", "kernel_datapath")
            },
            "tools": caps.tools,
            "python_packages": caps.python,
            "start": time.time(),
            "end": None,
        }
        self.write_meta()

    def file(self, name: str) -> Path:
        return self.path / name

    def write_meta(self, **extra: Any) -> None:
        self.meta.update(extra)
        (self.path / "meta.json").write_text(json.dumps(self.meta, indent=1, default=str))

    def finish(self, **extra: Any) -> Path:
        self.write_meta(end=time.time(), **extra)
        return self.path


def parse_params(module: ModuleType, given: dict[str, str]) -> dict[str, Any]:
    """Defaults from module.PARAMS ({name: (default, help)}), overridden by --param values,
    converted to the default's type (lists: comma-separated)."""
    spec = getattr(module, "PARAMS", {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise BadInput(
            f"unknown parameter(s) {', '.join(unknown)}",
            hint="parameters: " + ", ".join(f"{k} (default {v[0]!r})" for k, v in spec.items()),
        )
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


def run_experiment(
    module: ModuleType,
    name: str,
    given: dict[str, str],
    out: str | None = None,
    servers: RunServers | None = None,
) -> Path:
    """Run an experiment module (PARAMS, run(params, results) -> summary) into a fresh
    results directory; its path.

    servers: the run's labs go across these servers (testbed.lab.run_servers; the
    experiment's code is the same): checked before anything is made when its TEMPLATE is a
    file, each lab checked as it starts; meta.json's across_servers says which servers,
    the tunnel, and each lab's placement."""
    params = parse_params(module, given)
    if servers is not None:
        servers.experiment = name
        run_servers.precheck(servers, getattr(module, "TEMPLATE", None))
    seed = params.get("seed")
    if seed is None:
        seed = int(time.time())
    random.seed(seed)
    results = ResultsDir(
        name,
        params,
        out=Path(out) if out else None,
        template=getattr(module, "TEMPLATE", None),
        seed=seed,
    )
    print(f"experiment {name}: results go to {results.path}", flush=True)
    if servers is None:
        summary = module.run(params, results)
        return results.finish(summary=summary)
    results.write_meta(across_servers=servers.to_meta())
    try:
        with run_servers.across_servers(servers):
            summary = module.run(params, results)
    except BaseException as exc:
        results.write_meta(across_servers=servers.to_meta(), error=str(exc)[:500])
        raise
    return results.finish(summary=summary, across_servers=servers.to_meta())
