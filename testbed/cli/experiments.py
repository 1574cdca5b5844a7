"""testbed run | demo: reproducible experiments, and the quick-start demonstration."""

from __future__ import annotations

import importlib
import os
import pkgutil
from types import ModuleType
from typing import Any

from testbed import experiments
from testbed.cli.common import add_params, add_template, params_dict, subcommand, table
from testbed.cli.demo import demo
from testbed.cluster.demo import state_dir_for_servers
from testbed.errors import BadInput
from testbed.lab.run_servers import RunServers
from testbed.lab.servers import check_ssh_config
from testbed.plan.placement import FRONT_END, LOCAL, parse_servers
from testbed.results import run_experiment

# Modules of the experiments package that the experiments share (not experiments themselves).
LIBRARY_MODULES = ("stacks",)


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "run",
        cmd_run,
        "run an experiment from experiments/ and save its results",
        epilog="examples:\n  testbed run --list\n  testbed run bench_lab -p sizes=5,20,50\n"
        "  testbed run bench_lab --out /tmp/mine\n"
        "  testbed run cross_zone -p settings=on --servers us-east-1a=srv1,us-east-1b=srv2 "
        "--ssh-config F\n\n"
        "Servers to try --servers on this machine: testbed cluster harness up --count 2\n"
        "(it prints its ssh config). Across servers, meta.json's across_servers says which\n"
        "servers, the tunnel and where each lab ran.\n\nEach experiment brings up its own lab(s), "
        "measures, tears down, and writes\nresults/<experiment>/<timestamp>/ (CSV, PNG, "
        "meta.json to re-run it).\n\nIts labs belong to this command: however it ends "
        "(Ctrl-C, SIGTERM, SIGHUP, kill -9),\nthey are torn down, with nothing left behind.",
    )
    p.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    add_params(p)
    p.add_argument("--out", help="directory for the results (default results/<experiment>)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument(
        "--servers",
        metavar="AZ=HOST,...",
        help="run the experiment's labs across servers, one availability zone per server "
        "(us-east-1a=HOST,us-east-1b=HOST; the front end is this machine): the experiment "
        "is unchanged, meta.json records the servers and the tunnel. An experiment using "
        "what does not work across servers yet (the switch GWLB datapath) is "
        "refused, exit 2, nothing built",
    )
    p.add_argument("--ssh-config", help="the ssh config that reaches the --servers")

    p = subcommand(
        sub,
        "demo",
        cmd_demo,
        "bring the default stack up, show it working, tear it down",
        epilog="Shows the hosts and their addresses, measures the reachability matrix\n"
        "(every host to every address) against what AWS allows, fetches a web page\n"
        "through the internet gateway, then removes the lab. Exit 1 if the lab does not\n"
        "behave as AWS does.",
    )
    add_template(p, "template (default: the embedded default)", flag="--template")
    add_params(p)
    p.add_argument("--name", default="demo", help="lab name (default demo)")
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the lab running afterwards (without an owner: until testbed down); "
        "otherwise it is torn down however the demo ends",
    )


def experiment_names() -> list[str]:
    """Modules of testbed.experiments that are experiments (they have a run function)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(experiments.__path__)
        if not m.name.startswith("_") and m.name not in LIBRARY_MODULES
    )


def load_experiment(name: str) -> ModuleType:
    names = experiment_names()
    if name not in names:
        raise BadInput(f"unknown experiment {name!r}", hint=f"known: {', '.join(names)}")
    return importlib.import_module(f"testbed.experiments.{name}")


def cmd_run(args: Any) -> int:
    if args.list or not args.experiment:
        rows = []
        for name in experiment_names():
            doc = (load_experiment(name).__doc__ or "").strip().splitlines()
            rows.append((name, doc[0] if doc else ""))
        print(table(rows, ["EXPERIMENT", "WHAT IT MEASURES"]))
        return 0
    module = load_experiment(args.experiment)
    servers = _run_servers(args)
    path = run_experiment(
        module, args.experiment, params_dict(args.params), out=args.out, servers=servers
    )
    print(f"\nresults: {path}")
    return 0


def _run_servers(args: Any) -> RunServers | None:
    """--servers / --ssh-config as the run's setting (BadInput, exit 2, for bad ones)."""
    if args.servers is None:
        if args.ssh_config:
            raise BadInput("--ssh-config goes with --servers")
        return None
    servers = parse_servers(args.servers)
    front = servers.get(FRONT_END, LOCAL)
    if front != LOCAL:
        raise BadInput(
            f"--servers {FRONT_END}={front}: the front end is the machine `testbed run` "
            f"runs on (leave it out, or give {LOCAL})"
        )
    ssh_config = check_ssh_config(args.ssh_config)
    moved = state_dir_for_servers()
    if moved:
        # A lab's folder must be at the same path on every server (not in a server's /run).
        os.environ["TESTBED_STATE_DIR"] = moved
        print(f"state directory {moved} (the servers have their own /run)", flush=True)
    return RunServers(servers, ssh_config, experiment=args.experiment)


def cmd_demo(args: Any) -> int:
    return demo(
        template=args.template, params=params_dict(args.params), name=args.name, keep=args.keep
    )
