"""testbed up | down | stacks | status | events | clean: the life of a lab and its stacks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from testbed import naming
from testbed.cli.common import (
    add_params,
    add_template,
    host_notes,
    hosts_table,
    params_dict,
    subcommand,
    table,
)
from testbed.cli.hostcmds import open_cli
from testbed.cluster.harness import clean_abandoned
from testbed.errors import BadInput
from testbed.lab.api import (
    create_stack,
    delete_stack,
    leftovers_exist,
    stacks_of,
    start_lab,
    stop_lab,
    update_lab,
)
from testbed.lab.events import Event, read_events
from testbed.lab.servers import clean_servers
from testbed.lab.servers import from_option as servers_from_option
from testbed.lab.state import holder_alive, list_labs, read_state
from testbed.lab.teardown import teardown
from testbed.lab.views import (
    ENDED_STATES,
    events_document,
    host_summary,
    lab_summary,
    labs_document,
    status_document,
)
from testbed.naming import name_from_template
from testbed.paths import resolve_template
from testbed.plan.gwlb_datapath import DEFAULT as GWLB_DEFAULT


def register(sub: Any) -> None:
    p = subcommand(
        sub,
        "up",
        cmd_up,
        "create a lab from a template and leave it running",
        epilog="examples:\n"
        "  testbed up templates/default.yaml                  lab name: default\n"
        "  testbed up templates/three-az.yaml --name az3 -p InterAzDelayMs=2\n"
        "  testbed up templates/default.yaml --cli            Mininet CLI, then down\n"
        "  testbed up templates/nlb.yaml --servers us-east-1a=srv1,us-east-1b=srv2 \\\n"
        "      --ssh-config FILE --tunnel-rate 100mbit     AZs on 2 servers, 100 Mbit/s tunnels\n"
        "  testbed up templates/two-stacks-export.yaml --name net\n"
        "  testbed up templates/two-stacks-import.yaml --into net --stack-name app \\\n"
        "      -p NetworkStack=net -p VpcId=vpc-VPC      a second stack in lab net\n\n"
        "Prints each resource's events as it is created and returns when every switch is\n"
        "programmed. On failure everything is rolled back (exit 1); template errors exit 2\n"
        "before anything is created. Interrupted while it builds (Ctrl-C, SIGTERM, SIGHUP),\n"
        "it rolls back.\n\n"
        "The lab has no owner: it stays until testbed down. With --cli it belongs to this\n"
        "command and is torn down when the command ends, however it ends (exit, Ctrl-D,\n"
        "SIGTERM, SIGHUP, kill -9).\n\n"
        "With --into LAB the template becomes one more stack of the running lab LAB, as a\n"
        "second CloudFormation stack in one account: its Fn::ImportValue reads the exports\n"
        "of the lab's other stacks, and id-typed parameters (AWS::EC2::VPC::Id, ...) may\n"
        "name their resources. Its hosts are named S.LogicalId (testbed exec LAB S.Web).\n"
        "Exit 0 on CREATE_COMPLETE; 1 on ROLLBACK_COMPLETE (the stack stays listed until\n"
        "testbed down LAB --stack S, as on AWS); 2 on bad input, nothing built.\n"
        "testbed stacks LAB lists the stacks, their outputs and exports.",
    )
    add_template(p)
    p.add_argument(
        "--name",
        "-n",
        help="lab name, 1-7 lowercase letters/digits (default: the template's file name)",
    )
    add_params(p)
    p.add_argument(
        "--datapath",
        choices=["auto", "user", "kernel"],
        default=None,
        help="Open vSwitch datapath (default: the template's Metadata.Lab.Datapath,"
        " else auto: kernel where the module is loaded, else userspace)",
    )
    p.add_argument(
        "--gwlb-datapath",
        choices=["auto", "switch", "node"],
        default=None,
        help="who steers a gateway load balancer's traffic to its appliances: switch = Open"
        " vSwitch itself (conntrack and a hash pick the appliance, a GENEVE port per GWLB node"
        " pushes and pops the header; the node process only checks health and reports);"
        " node = the GWLB node process on its host (the Python data path, AWS's exact GENEVE"
        " format: inner IPv4 rather than inner Ethernet); auto = switch where the machine can"
        " (testbed doctor says so) and no other lab's node address or route is in the way,"
        " else node, with the reason in testbed status. switch that cannot be done exits 2,"
        f" nothing built. Default: {GWLB_DEFAULT}",
    )
    p.add_argument("--region", default=None, help="AWS::Region (default us-east-1)")
    p.add_argument(
        "--servers",
        metavar="AZ=HOST,...",
        help="a lab across servers (Mininet Cluster Edition), one availability zone per server:"
        " us-east-1a=HOST,us-east-1b=HOST (ssh host names of --ssh-config, or addresses; root"
        " login with a key). Every node of an AZ (bridge, instances, load balancer nodes, NAT"
        " gateways) runs on its server; the core router, internet segment, clients, resolver"
        " and controller on this machine (the front end); the AZs' uplinks to the core are"
        " VXLAN tunnels (GRE where every kernel has gretap), the hosts' MTU lowered to fit"
        " (testbed status shows the server of each host, the tunnel and the MTU). Hosts"
        " added while it runs (Auto Scaling, testbed update, up --into) go on their AZ's"
        " server. An AZ without a server, or a server for an AZ the template does not use,"
        " exits 2",
    )
    p.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="with --servers: the ssh config that reaches them (ssh -F FILE)",
    )
    p.add_argument(
        "--tunnel-rate",
        metavar="RATE",
        help="with --servers: what each tunnel between servers carries each way, in tc's"
        " units (100mbit, 1gbit, 500kbit; kbps/mbps are bytes/s): a tbf qdisc on both ends of"
        " every tunnel (packets wait at most 50 ms, then drop), as an inter-AZ link of that"
        " bandwidth. A server without tbf exits 2. Default: the underlay's rate. The inter-AZ"
        " delay (InterAzDelayMs) is not applied on tunnels: this kernel has no sch_netem"
        " (testbed status says so)",
    )
    p.add_argument(
        "--cli",
        action="store_true",
        help="open the Mininet CLI on the lab; the lab belongs to this command and is torn "
        "down when it ends (you leave, SIGTERM, SIGHUP, kill -9)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress, just the summary")
    p.add_argument(
        "--into",
        metavar="LAB",
        help="add the template as one more stack of the running lab LAB instead of making a lab",
    )
    p.add_argument(
        "--stack-name",
        metavar="S",
        help="with --into: the new stack's name, 1-128 letters, digits, hyphens (default:"
        " the template's file name)",
    )

    p = subcommand(
        sub,
        "update",
        cmd_update,
        "apply a changed template to a running lab, resource by resource, with rollback",
        epilog="examples:\n"
        "  testbed plan alb my-alb.yaml                 what would change (a change set)\n"
        "  testbed update alb my-alb.yaml               apply it\n"
        "  testbed update alb templates/alb.yaml -p CanaryWeight=50\n"
        "  testbed plan alb my-alb.yaml --out p.json && testbed update alb --plan p.json\n\n"
        "As CloudFormation updates a stack: in the change set's order, each resource\n"
        "CREATE_IN_PROGRESS / UPDATE_IN_PROGRESS then _COMPLETE; removed resources go in\n"
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS. What a running lab takes live:\n"
        "  instances and internet clients added, removed (drained first) or replaced (a\n"
        "    property AWS replaces them for: the old one drains and goes, then its\n"
        "    successor comes; the lab names hosts by logical id, so not new-first);\n"
        "    unchanged instances keep their addresses wherever the template moves them;\n"
        "  ALB listener rules, default actions, target groups (targets, health checks,\n"
        "    attributes) and attributes: HAProxy reloads keeping established connections;\n"
        "  NLB target groups (targets, health checks, attributes);\n"
        "  certificates (Certificates, ListenerCertificate, SSLCertificateId) and SSL\n"
        "    policies of HTTPS, TLS and SSL listeners (ALB, NLB, CLB), an NLB TLS\n"
        "    listener's AlpnPolicy: the nodes' HAProxy reloads;\n"
        "  a Classic Load Balancer's instances, health check, draining, idle timeout,\n"
        "    CrossZone and listener policies;\n"
        "  security group rules and memberships, network ACL entries, route tables;\n"
        "  a load balancer's subnets (an ALB's, NLB's or CLB's node added or removed);\n"
        "  an Auto Scaling group's MinSize, MaxSize and DesiredCapacity.\n"
        "A resource that fails (an instance whose role exits or never listens, a load\n"
        "balancer that rejects its configuration) rolls the update back:\n"
        "UPDATE_ROLLBACK_COMPLETE, the lab as before, exit 1. Anything else (subnets, VPCs,\n"
        "listener ports, NAT gateways, other Auto Scaling changes) exits\n"
        "2 listing what differs, nothing changed: it needs testbed down and testbed up.\n"
        "--plan FILE applies a plan saved by testbed plan --out; refused (exit 2) when the\n"
        "lab's template or parameters changed since it was made.",
    )
    p.add_argument("name", help="lab name")
    p.add_argument(
        "template",
        nargs="?",
        type=resolve_template,
        help="the new template (YAML or JSON), or an embedded template (not with --plan)",
    )
    add_params(p)
    p.add_argument(
        "--plan",
        metavar="FILE",
        help="apply a plan saved by testbed plan --out (its template and parameters)",
    )
    p.add_argument(
        "--stack",
        metavar="S",
        help="update a stack added with testbed up --into (default: the lab's first stack)",
    )

    p = subcommand(
        sub,
        "down",
        cmd_down,
        "tear a lab down (everything it created, only that)",
        epilog="examples:\n  testbed down default\n"
        "  testbed down net --stack app        only the stack app of lab net\n\n"
        "Without --stack every stack of the lab is deleted, newest first, then the lab.\n"
        "With --stack only that stack's resources go, in reverse creation order, each\n"
        "with DELETE_IN_PROGRESS and DELETE_COMPLETE events. As on AWS it is refused while\n"
        'another stack imports one of its exports ("Export X cannot be deleted as it is in\n'
        'use by Y", exit 2): delete the importing stack first.',
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="lab name(s)")
    p.add_argument(
        "--stack",
        metavar="S",
        help="delete only the stack S of the lab (one lab name); testbed stacks LAB lists them",
    )

    p = subcommand(
        sub,
        "stacks",
        cmd_stacks,
        "a lab's stacks: status, outputs, exports and who imports them",
        epilog="examples:\n  testbed stacks net\n"
        "  testbed stacks net --json | jq '.[] | {name, status}'\n"
        "  testbed stacks net --json | jq -r '.[0].exports | keys[]'\n\n"
        "A lab made by testbed up has one stack, named after the lab; testbed up T.yaml\n"
        "--into LAB adds more. An export lists the stacks that import it: while one does,\n"
        "testbed down LAB --stack EXPORTER is refused, as on AWS.",
    )
    p.add_argument("name", help="lab name")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON: a list with one object per stack (name, status, created, updated,"
        " template, params, outputs, exports)",
    )

    p = subcommand(
        sub,
        "status",
        cmd_status,
        "labs on this machine, or one lab in detail",
        epilog="examples:\n  testbed status\n  testbed status default\n"
        "  testbed status default --json | jq '.hosts[] | {name, ip}'\n"
        "  testbed status --json | jq '.[] | {name, owner}'\n\n"
        "OWNER is the process a lab belongs to (an experiment, a script's Lab.up, testbed up\n"
        "--cli): pid, command line and whether it still runs; the lab is torn down when it\n"
        "ends. A lab of a plain testbed up has none and stays until testbed down. A lab whose\n"
        "holder died shows DEAD (testbed clean removes what it left); one whose folder was\n"
        "kept (TESTBED_KEEP_LAB_DIR=1) shows how it ended, e.g. DELETE_COMPLETE.",
    )
    p.add_argument("name", nargs="?", help="lab name (all labs if omitted)")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON: an object for NAME, else a list with one object per lab",
    )

    p = subcommand(
        sub,
        "events",
        cmd_events,
        "a lab's stack events (time, id, status, reason)",
        epilog="example:\n  testbed events default",
    )
    p.add_argument("name", help="lab name")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = subcommand(
        sub,
        "clean",
        cmd_clean,
        "remove what dead labs left (after a kill -9); live labs are untouched",
        epilog="examples:\n  testbed clean              every lab whose holder "
        "process died\n  testbed clean default      that lab, if it is not "
        "running\n\nOnly resources named tb-NAME-... of such labs, the processes "
        "they recorded or\nlabelled (TESTBED_LAB=NAME) and their folders are removed, "
        "including the folders\nkept with TESTBED_KEEP_LAB_DIR=1. A lab that ran across servers"
        " (up --servers) is\ncleaned on them too (its folder names them; else --servers)."
        " Never mn -c.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="only these labs")
    p.add_argument(
        "--servers",
        metavar="AZ=HOST,...",
        help="also on these servers (a lab that ran across servers whose folder is gone):"
        " what the named labs left there, by their prefix tb-NAME-, over ssh. A lab whose"
        " folder remains is cleaned on its servers without it",
    )
    p.add_argument("--ssh-config", metavar="FILE", help="the ssh config that reaches them")


def _print_event(ev: Any) -> None:
    print(ev.line(), flush=True)


# Flags of `up` that describe a new lab, meaningless when a stack goes --into one.
LAB_ONLY_FLAGS = (
    ("name", "--name"),
    ("datapath", "--datapath"),
    ("region", "--region"),
    ("gwlb_datapath", "--gwlb-datapath"),
    ("servers", "--servers"),
    ("tunnel_rate", "--tunnel-rate"),
)


def cmd_up(args: Any) -> int:
    if args.into:
        return _up_into(args)
    if args.stack_name:
        raise BadInput(
            "--stack-name needs --into LAB: a new lab's first stack is named after the lab",
            hint="testbed up T.yaml --into LAB --stack-name S adds a stack to lab LAB",
        )
    name = args.name or name_from_template(args.template)
    started = time.monotonic()
    state = start_lab(
        args.template,
        params_dict(args.params),
        name=name,
        datapath=args.datapath,
        region=args.region,
        on_event=None if args.quiet else _print_event,
        owned=args.cli,  # a plain `up` leaves a lab that stays; `up --cli` owns it
        gwlb_datapath=args.gwlb_datapath,
        servers=args.servers,
        ssh_config=args.ssh_config,
        tunnel_rate=args.tunnel_rate,
    )
    print(
        f"\nlab {name} is up in {time.monotonic() - started:.1f} s "
        f"({state.get('datapath')} datapath, holder pid {state.get('pid')})\n"
    )
    if state.get("gwlb_datapath"):
        print(f"GWLB datapath: {gwlb_text(state)}\n")
    print(hosts_table(state.get("hosts", [])))
    for text in host_notes(state.get("hosts", [])):
        print(f"  {text}")
    _print_outputs(state)
    for text in state.get("limitations", []):
        print(f"note: {text}")
    if args.cli:
        ending = "testbed up --cli: the CLI was left"
        try:
            open_cli(name)
        except BaseException as exc:
            ending = f"testbed up --cli ended on {type(exc).__name__}: {exc}"[:300]
            raise
        finally:
            print(f"tearing lab {name} down", flush=True)
            stop_lab(name, reason=ending)
            print(f"lab {name} is down", flush=True)
        return 0
    first = next((h for h in state.get("hosts", []) if h.get("kind") == "client"), None)
    target = next((h for h in state.get("hosts", []) if h.get("public_ip")), None)
    # An internet-facing load balancer's name is what a user of the stack would try.
    lb = next(
        (b for b in state.get("load_balancers", []) if b.get("scheme") == "internet-facing"),
        None,
    )
    print("\nnext:")
    where = lb["dns_name"] if lb else target["public_ip"] if target else None
    if first and where:
        print(f"  testbed exec {name} {first['name']} -- curl -s http://{where}/")
    print(f"  testbed status {name}    testbed cli {name}    testbed down {name}")
    return 0


def _up_into(args: Any) -> int:
    """testbed up T.yaml --into LAB: one more stack in a running lab."""
    for attr, flag in LAB_ONLY_FLAGS:
        if getattr(args, attr):
            raise BadInput(
                f"{flag} describes a new lab; with --into the stack joins lab {args.into} as it is",
                hint=f"--stack-name names the new stack; drop {flag}",
            )
    if args.cli:
        raise BadInput(
            "--cli makes a lab owned by this command; --into adds a stack to one that runs",
            hint=f"testbed cli {args.into} opens the Mininet CLI on the lab",
        )
    naming.validate_lab_name(args.into)
    stack = args.stack_name or naming.stack_name_from_template(args.template)
    started = time.monotonic()
    info = create_stack(
        args.into,
        args.template,
        params_dict(args.params),
        name=stack,
        on_event=None if args.quiet else _print_event,
    )
    print(f"\nstack {stack} is up in lab {args.into} in {time.monotonic() - started:.1f} s")
    _print_outputs({"outputs": info.get("outputs")})
    print(f"\nnext:\n  testbed stacks {args.into}    testbed down {args.into} --stack {stack}")
    return 0


def _print_outputs(state: dict[str, Any]) -> None:
    outputs = state.get("outputs") or {}
    if outputs:
        print("\noutputs:")
        print(table(sorted(outputs.items()), ["KEY", "VALUE"]))


def cmd_update(args: Any) -> int:
    started = time.time()
    plan = None
    if args.plan:
        if args.template or args.params:
            raise BadInput(
                "--plan FILE applies the plan's own template and parameters",
                hint=f"testbed update {args.name} --plan {args.plan} (no template, no -p)",
            )
        try:
            plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadInput(f"cannot read the plan: {err}", file=args.plan) from None
    elif not args.template:
        raise BadInput(
            "testbed update needs the new template (or --plan FILE)",
            hint=f"testbed update {args.name} NEW.yaml",
        )
    try:
        reply = update_lab(
            args.name, args.template, params_dict(args.params), plan=plan, stack=args.stack
        )
    finally:
        for ev in read_events(naming.lab_dir(args.name)):
            if ev.time >= started and ev.resource_type != "Lab::TargetHealth":
                print(ev.line())
    if not reply["changes"] and not reply["done"]:
        print(f"lab {args.name}: nothing to update")
        return 0
    print(f"\nlab {args.name} updated: {len(reply['changes'])} change(s)")
    for text in reply["done"]:
        print(f"  {text}")
    return 0


def cmd_down(args: Any) -> int:
    if args.stack:
        if len(args.names) != 1:
            raise BadInput(
                f"--stack {args.stack} deletes a stack of one lab; {len(args.names)} lab names"
                " were given",
                hint="testbed down LAB --stack S",
            )
        lab = args.names[0]
        started = time.monotonic()
        delete_stack(lab, args.stack, on_event=_print_event)
        print(f"stack {args.stack} of lab {lab} is deleted in {time.monotonic() - started:.1f} s")
        return 0
    for name in args.names:
        started = time.monotonic()
        report = stop_lab(name)
        print(
            f"lab {name} is down in {time.monotonic() - started:.1f} s"
            + (
                f" (removed {report.summary()})"
                if report
                and any((report.processes, report.namespaces, report.links, report.bridges))
                else ""
            )
        )
    return 0


def stacks_text(stacks: list[dict[str, Any]]) -> str:
    """`testbed stacks LAB` as text: a table of stacks, then each one's outputs and exports."""
    lines = [
        table(
            [
                (
                    s["name"],
                    s["status"],
                    _when(s["created"]),
                    _when(s["updated"]),
                    len(s["outputs"]),
                    len(s["exports"]),
                )
                for s in stacks
            ],
            ["STACK", "STATUS", "CREATED", "UPDATED", "OUTPUTS", "EXPORTS"],
        )
    ]
    exports = [
        (name, e["value"], s["name"], ", ".join(e["imported_by"]) or "-")
        for s in stacks
        for name, e in sorted(s["exports"].items())
    ]
    if exports:
        lines += ["", "exports:", table(exports, ["EXPORT", "VALUE", "STACK", "IMPORTED BY"])]
    outputs = [(s["name"], k, v) for s in stacks for k, v in sorted(s["outputs"].items())]
    if outputs:
        lines += ["", "outputs:", table(outputs, ["STACK", "KEY", "VALUE"])]
    return "\n".join(lines)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def cmd_stacks(args: Any) -> int:
    naming.validate_lab_name(args.name)
    state = read_state(naming.lab_dir(args.name))
    if state is None:
        raise BadInput(f"no lab named {args.name!r}", hint="testbed status lists the labs")
    stacks = stacks_of(args.name, state)
    print(json.dumps(stacks, indent=1) if args.json else stacks_text(stacks))
    return 0


# How a lab ended, when its folder was kept (TESTBED_KEEP_LAB_DIR) after its holder exited.
def _owner_text(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "-"
    return f"{owner['pid']} ({owner['command']})" + ("" if owner["alive"] else " exited")


# The documents --json prints live in testbed.lab.views (the console serves them too).
_summary = lab_summary
_host_summary = host_summary


def cmd_status(args: Any) -> int:
    if args.name:
        s = status_document(args.name)
        state = read_state(naming.lab_dir(args.name)) or {}
        if args.json:
            print(json.dumps(s, indent=1))
            return 0
        age = time.time() - (s["created"] or time.time())
        print(
            f"lab {s['name']}: {s['state']}, holder pid {s['pid']}, {s['datapath']} "
            f"datapath, up {age:.0f} s\n  template {s['template']}\n  files {s['lab_dir']}"
        )
        if s["gwlb_datapath"]:
            print(f"  GWLB datapath: {gwlb_text(s)}")
        if state.get("tunnel"):
            print(
                f"  across servers: tunnel {state['tunnel']} ({state.get('tunnel_reason')});"
                f" {state.get('mtu')}"
            )
            if state.get("tunnel_shaping"):
                print(f"  tunnels: {state['tunnel_shaping']}")
        owner = s["owner"]
        if s["state"] in ENDED_STATES:
            print(f"  ended: {s['reason']}; testbed clean {s['name']} removes these files")
        if owner is None:
            print(f"  owner: none (the lab stays until testbed down {s['name']})")
        else:
            print(
                f"  owner pid {owner['pid']}, {'alive' if owner['alive'] else 'exited'}: "
                f"{owner['cmdline']}\n  (the lab is torn down when its owner ends)"
            )
        if s["controller"]:
            print(
                f"  controller pid {s['controller']['pid']} on port "
                f"{s['controller']['port']}, log {s['controller']['log']}"
            )
        print()
        print(hosts_table(state.get("hosts", [])))
        for text in host_notes(state.get("hosts", [])):
            print(f"  {text}")
        if s["auto_scaling_groups"]:
            print("\nAuto Scaling groups:")
            print(
                table(
                    [
                        (
                            g["logical_id"],
                            g["name"],
                            f"{g['min']}/{g['desired']}/{g['max']}",
                            g["in_service"],
                            g["instances"],
                        )
                        for g in s["auto_scaling_groups"]
                    ],
                    ["GROUP", "NAME", "MIN/DESIRED/MAX", "INSERVICE", "INSTANCES"],
                )
            )
            print(f"  testbed asg {s['name']} GROUP    instances and activities")
        _print_outputs(state)
        for text in s["limitations"]:
            print(f"note: {text}")
        return 0
    labs = labs_document()
    if args.json:
        print(json.dumps(labs, indent=1))
        return 0
    if not labs:
        print("no labs (testbed up TEMPLATE creates one)", file=sys.stderr)
        return 0
    print(
        table(
            [
                (
                    s["name"],
                    s["state"],
                    s["pid"],
                    _owner_text(s["owner"]),
                    s["datapath"],
                    len(s["hosts"]),
                    s["template"],
                )
                for s in labs
            ],
            ["NAME", "STATE", "PID", "OWNER", "DATAPATH", "HOSTS", "TEMPLATE"],
        )
    )
    return 0


def gwlb_text(s: dict[str, Any]) -> str:
    """'switch' or 'node' and, for node, why not switch."""
    reason = s.get("gwlb_datapath_reason")
    return f"{s['gwlb_datapath']} ({reason})" if reason else str(s["gwlb_datapath"])


def cmd_events(args: Any) -> int:
    for doc in events_document(args.name):
        print(json.dumps(doc) if args.json else Event(**doc).line())
    return 0


def cmd_clean(args: Any) -> int:
    if args.names:
        names = [naming.validate_lab_name(n) for n in args.names]
    else:
        names = [name for name, _ in list_labs()]
    cleaned = 0
    for name in names:
        state = read_state(naming.lab_dir(name))
        if holder_alive(state):
            if args.names:
                print(f"lab {name} is running; use testbed down {name}", file=sys.stderr)
            continue
        if args.servers:
            if not args.names:
                raise BadInput("testbed clean --servers needs the lab names")
            for line in clean_servers(name, servers_from_option(args.servers, args.ssh_config)):
                print(f"  removed on {line}")
        if not naming.lab_dir(name).exists() and not leftovers_exist(name):
            if args.names:
                print(f"nothing left of lab {name}")
            continue
        report = teardown(name)
        cleaned += 1
        print(f"cleaned lab {name}: removed {report.summary()}")
    if not args.names:  # server harnesses whose creator died (testbed cluster clean)
        for harness, removed in clean_abandoned().items():
            cleaned += 1
            print(f"cleaned server harness {harness}: removed {removed.summary()}")
    if not cleaned and not args.names:
        print("nothing to clean")
    return 0
