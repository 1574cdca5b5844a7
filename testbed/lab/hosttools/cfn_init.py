"""cfn-init in a lab host: runs the `files` and `commands` of a resource's
AWS::CloudFormation::Init metadata, and says what it cannot do.

    cfn-init -v --stack STACK --resource LogicalId [--configsets a,b] [--region REGION]

Config sets as AWS documents them: --configsets names the sets to run; without it the set
"default" runs if there is one, else the config named "config". In a config, the sections run
in cfn-init's order: packages, groups, users, sources, files, commands, services.

- files: written with their content (text, a JSON mapping, base64), mode, owner and group.
  A host shares the machine's files, so a path outside the lab's folder is written under the
  host's own root, hosts/<host>/root/<path>, and the tool says where. A `source` (a URL) is
  not fetched: the lab has no internet.
- commands: in alphabetical order of their names, each with cwd, env, test and
  ignoreErrors; their output goes to hosts/<host>/cfn-init-cmd.log. A command given as a
  string runs in bash (Amazon Linux's /bin/sh), a list without a shell.
- packages, groups, users, sources, services: "not emulated in the lab" (the host shares the
  machine; the lab's http-backend role serves instead).

Notes go to stderr and hosts/<host>/cfn-init.log. Exit 0 when everything it could do worked,
else 1, so that `cfn-signal -e $?` reports honestly.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.lab.hosttools import lab_paths
from testbed.lab.hosttools.context import (
    LAB_ENV,
    HostContext,
    ToolError,
    context,
    fail,
    helper_parser,
)
from testbed.lab.signals import init_file

TOOL = "cfn-init"
SHELL = "/bin/bash"  # what runs a command given as a string (/bin/sh on Amazon Linux: bash)
SECTIONS = ("packages", "groups", "users", "sources", "files", "commands", "services")
NOT_EMULATED = {
    "packages": "packages are not installed",
    "groups": "groups are not created",
    "users": "users are not created",
    "sources": "sources are not downloaded (no internet)",
    "services": "services are not started",
}
# Variables a command keeps even when its `env` replaces the environment: they say which lab
# and host it runs in (cfn-signal needs them) and where its scratch files go.
KEPT_VARIABLES = (LAB_ENV, "TESTBED_HOST", "TESTBED_STATE_DIR", "TESTBED_PYTHON", "TMPDIR")


def parser() -> argparse.ArgumentParser:
    p = helper_parser(TOOL, "Run a lab resource's cfn-init metadata.")
    p.add_argument("-c", "--configsets", help="comma-separated config sets")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


@dataclass
class Run:
    """One cfn-init run: where files go, where it logs, what went wrong."""

    root: Path  # files outside `inside` land under root
    inside: tuple[Path, ...]  # folders written as they are (the lab's own)
    log: Path | None
    command_log: Path | None
    env: Mapping[str, str]
    failed: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        print(f"{TOOL}: {text}", file=sys.stderr)
        if self.log is not None:
            with self.log.open("a") as out:
                out.write(text + "\n")

    def failure(self, text: str) -> None:
        self.failed.append(text)
        self.note(f"error: {text}")


def config_names(init: Mapping[str, Any], configsets: str | None) -> list[str]:
    """The configs to run, in order. ToolError for a config set that does not exist."""
    sets = init.get("configSets") or {}
    if configsets:
        wanted = [s.strip() for s in configsets.split(",") if s.strip()]
    elif "default" in sets:
        wanted = ["default"]
    else:
        return ["config"] if "config" in init else []
    names: list[str] = []
    for name in wanted:
        _expand(sets, name, names, seen=())
    return names


def _expand(sets: Mapping[str, Any], name: str, out: list[str], seen: tuple[str, ...]) -> None:
    if name not in sets:
        raise ToolError(f"configSet {name!r} does not exist (sets: {', '.join(sets) or 'none'})")
    if name in seen:
        raise ToolError(f"configSet {name!r} includes itself")
    members = sets[name] if isinstance(sets[name], list) else [sets[name]]
    for item in members:
        if isinstance(item, dict) and "ConfigSet" in item:
            _expand(sets, str(item["ConfigSet"]), out, (*seen, name))
        else:
            out.append(str(item))


def run_config(name: str, config: Mapping[str, Any], run: Run) -> None:
    for section in SECTIONS:
        body = config.get(section)
        if not body:
            continue
        if section == "files":
            for path, spec in body.items():
                write_file(path, spec, run)
        elif section == "commands":
            for command in sorted(body):
                if not run_command(command, body[command], run):
                    return  # a failed command ends the config, as in cfn-init
        else:
            names = ", ".join(_names(section, body))
            run.note(
                f"{name}: {section} not emulated in the lab ({NOT_EMULATED[section]}: "
                f"{names}); a host shares the machine's files"
            )


def _names(section: str, body: Mapping[str, Any]) -> list[str]:
    if section in ("packages", "services"):  # grouped by manager: {yum: {httpd: []}}
        return [str(n) for group in body.values() if isinstance(group, dict) for n in group]
    return [str(k) for k in body]


def target_path(path: str, run: Run) -> Path:
    """Where file `path` is written: as is inside the lab's folders, else under run.root."""
    given = Path(path)
    if given.is_absolute() and any(given.is_relative_to(p) for p in run.inside):
        return given
    return run.root / path.lstrip("/\\")


def write_file(path: str, spec: Mapping[str, Any], run: Run) -> None:
    if "source" in spec and "content" not in spec:
        run.note(f"{path}: not emulated: no internet (source {spec['source']} not fetched)")
        return
    target = target_path(path, run)
    try:
        content = spec.get("content", "")
        if isinstance(content, (dict, list)):
            data = json.dumps(content, indent=2).encode()
        elif spec.get("encoding") == "base64":
            data = base64.b64decode(str(content))
        else:
            data = str(content).encode()
        mode = str(spec.get("mode", "000644"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode.startswith("120"):  # a symbolic link; content is its target
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(data.decode())
        else:
            target.write_bytes(data)
            target.chmod(int(mode, 8) & 0o7777)
        _owner(target, spec, run)
    except (OSError, ValueError) as exc:
        run.failure(f"{path}: not written: {exc}")
        return
    if "context" in spec:
        run.note(f"{path}: context (mustache) not applied: the content is written as given")
    where = "" if target == Path(path) else f" as {target} (hosts share the machine's files)"
    run.note(f"{path}: written{where}")


def _owner(target: Path, spec: Mapping[str, Any], run: Run) -> None:
    owner, group = spec.get("owner"), spec.get("group")
    if owner is None and group is None:
        return
    try:
        if owner is None:
            shutil.chown(target, group=str(group))
        elif group is None:
            shutil.chown(target, user=str(owner))
        else:
            shutil.chown(target, str(owner), str(group))
    except (LookupError, PermissionError, OSError) as exc:
        run.note(f"{target}: owner/group {owner}:{group} not applied ({exc})")


def run_command(name: str, spec: Mapping[str, Any], run: Run) -> bool:
    """Run one command; False when it failed and errors are not ignored."""
    env = dict(run.env)
    if isinstance(spec.get("env"), dict):
        # AWS: env replaces the environment; the lab's own variables stay (see KEPT_VARIABLES).
        env = {k: v for k, v in run.env.items() if k in KEPT_VARIABLES}
        env.update({str(k): str(v) for k, v in spec["env"].items()})
    cwd = spec.get("cwd")
    if "test" in spec:
        test = _execute(str(spec["test"]), env, cwd, run)
        if test != 0:
            run.note(f"command {name}: test exited {test}, skipped")
            return True
    command = spec.get("command")
    if isinstance(command, list):
        code = _execute([lab_paths(str(a)) for a in command], env, cwd, run)
    else:
        code = _execute(lab_paths(str(command)), env, cwd, run)
    if code == 0:
        run.note(f"command {name}: succeeded")
        return True
    if str(spec.get("ignoreErrors", "false")).lower() == "true":
        run.note(f"command {name}: exited {code}, error ignored (ignoreErrors)")
        return True
    run.failure(f"command {name} failed with exit code {code}")
    return False


def _execute(command: str | list[str], env: dict[str, str], cwd: Any, run: Run) -> int:
    shell = isinstance(command, str)
    try:
        with _output(run) as out:
            proc = subprocess.run(
                command,
                shell=shell,
                # Amazon Linux's /bin/sh is bash: commands written for it (`[ "$a" == "b" ]`)
                # fail under dash, which loops `until [ ... == ... ]` forever.
                executable=SHELL if shell and os.path.exists(SHELL) else None,
                env=env,
                cwd=str(cwd) if cwd else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
    except OSError as exc:
        run.note(f"cannot run {command!r}: {exc}")
        return 127
    return proc.returncode


def _output(run: Run) -> Any:
    if run.command_log is None:
        return open(os.devnull, "w")
    return run.command_log.open("a")


def run_init(init: Mapping[str, Any], configsets: str | None, run: Run) -> int:
    """Run the configs of `init`; the exit code (0: all that the lab can do worked)."""
    try:
        names = config_names(init, configsets)
    except ToolError as err:
        run.failure(str(err))
        return 1
    if not names:
        run.note("nothing to run: no configSets and no config named 'config'")
    for name in names:
        config = init.get(name)
        if not isinstance(config, dict):
            run.failure(f"config {name!r} does not exist")
            break
        run.note(f"running config {name}")
        run_config(name, config, run)
        if run.failed:
            break
    return 1 if run.failed else 0


def main(argv: list[str], ctx: HostContext | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        ctx = ctx or context()
        qualifier = ctx.check_stack(args.stack)
        path = init_file(ctx.lab_dir, qualifier + args.resource)
        if not path.exists():
            raise ToolError(f"resource {args.resource} has no AWS::CloudFormation::Init metadata")
        init = json.loads(path.read_text())
    except (ToolError, ValueError, OSError) as err:
        return fail(TOOL, err if isinstance(err, ToolError) else ToolError(str(err)))
    hdir = ctx.host_dir or ctx.lab_dir / "hosts" / args.resource
    hdir.mkdir(parents=True, exist_ok=True)
    run = Run(
        root=hdir / "root",
        inside=(ctx.lab_dir,),
        log=hdir / "cfn-init.log",
        command_log=hdir / "cfn-init-cmd.log",
        env=dict(os.environ),
    )
    return run_init(init, args.configsets, run)
