"""What one instance's metadata service holds: the categories EC2 documents, as a tree.

A directory (a path ending in /, or naming a directory) lists its children one per line,
sub-directories with a trailing / (not in the lists of "/" and of a version, "latest/"), in
name order, as IMDS does; a leaf is its value (lists
such as security-groups one item per line); bodies end without a newline, as AWS's do.
Everything is built from the lab's model and plan (instance_metadata), then answered by
lookup() without further work.

The instance's ids are those the rest of the lab shows: a template instance is "i-<logical
id>" (its Ref), a launched one its i-... id (testbed autoscaling / testbed status --json);
subnets, VPCs and security groups are "subnet-<logical id>", "vpc-<logical id>" and their
group ids, as Ref gives them in the lab.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Union

from testbed.model.types import StackModel
from testbed.plan.network import HostPlan, NetworkPlan

ACCOUNT_ID = "123456789012"  # the lab's account, as in its ARNs
# What the identity document says of an instance whose template names none.
DEFAULT_IMAGE_ID = "ami-0123456789abcdef0"
DEFAULT_INSTANCE_TYPE = "t3.micro"
ARCHITECTURE = "x86_64"
DOCUMENT_VERSION = "2017-09-30"
# The metadata versions "/" lists; every one answers like "latest".
VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
    "latest",
)

# A node of the tree: a value (leaf) or a directory of named nodes.
Node = Union[str, bytes, "Mapping[str, Node]"]


@dataclass(frozen=True)
class InterfaceMetadata:
    """One network interface (network/interfaces/macs/<mac>/)."""

    mac: str
    device_number: int
    interface_id: str
    local_ipv4s: tuple[str, ...]  # primary first
    public_ipv4s: tuple[str, ...]
    subnet_id: str
    subnet_cidr: str
    vpc_id: str
    vpc_cidrs: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    security_group_names: tuple[str, ...]


@dataclass(frozen=True)
class InstanceMetadata:
    """Everything one instance's IMDS tells (primary interface first in `interfaces`)."""

    host: str  # the lab host
    instance_id: str
    image_id: str
    instance_type: str
    az: str
    region: str
    private_ip: str
    public_ip: str | None
    mac: str
    security_groups: tuple[str, ...]  # names
    interfaces: tuple[InterfaceMetadata, ...]
    user_data: str | None = None
    pending_time: float = field(default=0.0)  # when it was launched (time.time())

    @property
    def local_hostname(self) -> str:
        return private_dns(self.private_ip, self.region)

    @property
    def public_hostname(self) -> str | None:
        return public_dns(self.public_ip, self.region) if self.public_ip else None


def region_of(az: str) -> str:
    """us-east-1a -> us-east-1 (the lab's AZs are named after their region)."""
    return re.sub(r"[a-z]+$", "", az) or az


def az_id(az: str) -> str:
    """AWS's AZ id (use1-az1) for a zone name (us-east-1a): the region's short name and the
    zone's letter as a number (AWS maps letters to ids per account; the lab keeps it fixed)."""
    region = region_of(az)
    parts = region.split("-")
    short = parts[0] + "".join(p[0] for p in parts[1:-1]) + parts[-1] if len(parts) > 2 else region
    letter = az[len(region) :] or "a"
    return f"{short}-az{ord(letter[0]) - ord('a') + 1}"


def private_dns(ip: str, region: str) -> str:
    name = "ip-" + ip.replace(".", "-")
    return f"{name}.ec2.internal" if region == "us-east-1" else f"{name}.{region}.compute.internal"


def public_dns(ip: str, region: str) -> str:
    name = "ec2-" + ip.replace(".", "-")
    if region == "us-east-1":
        return f"{name}.compute-1.amazonaws.com"
    return f"{name}.{region}.compute.amazonaws.com"


def _hex_id(prefix: str, *parts: str) -> str:
    """An EC2-shaped id (prefix and 17 hex digits), the same in every run of a lab."""
    return prefix + hashlib.sha256("/".join(parts).encode()).hexdigest()[:17]


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---- from the lab's model and plan --------------------------------------------------------


def instance_metadata(
    model: StackModel, plan: NetworkPlan, host: HostPlan, launched: float | None = None
) -> InstanceMetadata:
    """The metadata of instance host `host` (a template instance, or one Auto Scaling
    launched: host.asg) from the lab's model and current plan."""
    image_id = instance_type = None
    template_groups: tuple[str, ...] = ()
    extra_ids: dict[int, str] = {}
    if host.asg is not None and host.asg in model.auto_scaling_groups:
        group = model.auto_scaling_groups[host.asg]
        image_id, instance_type = group.launch.image_id, group.launch.instance_type
        template_groups = group.security_groups
    elif host.name in model.instances:
        instance = model.instances[host.name]
        image_id, instance_type = instance.image_id, instance.instance_type
        template_groups = instance.security_groups
        for eni in instance.extra_interfaces:
            if eni.device_index is not None and "." not in eni.logical_id:
                extra_ids[eni.device_index] = "eni-" + eni.logical_id  # its Ref
    instance_id = host.instance_id or f"i-{host.name}"
    region = region_of(host.az or "us-east-1a")
    groups = host.groups if host.groups is not None else template_groups
    eth0 = _interface(
        model,
        plan,
        mac=host.mac,
        number=0,
        interface_id=_hex_id("eni-", instance_id, "eth0"),
        ips=(host.ip, *host.extra_ips),
        public_ip=host.public_ip,
        subnet=host.subnet,
        groups=groups,
    )
    interfaces = [eth0]
    for i in host.interfaces:
        number = int(i.name.removeprefix("eth"))
        interfaces.append(
            _interface(
                model,
                plan,
                mac=i.mac,
                number=number,
                interface_id=extra_ids.get(number) or _hex_id("eni-", instance_id, i.name),
                ips=(i.ip, *i.extra_ips),
                public_ip=i.public_ip,
                subnet=i.subnet,
                groups=i.groups if i.groups is not None else groups,
            )
        )
    return InstanceMetadata(
        host=host.name,
        instance_id=instance_id,
        image_id=image_id or DEFAULT_IMAGE_ID,
        instance_type=instance_type or DEFAULT_INSTANCE_TYPE,
        az=host.az or "us-east-1a",
        region=region,
        private_ip=host.ip,
        public_ip=host.public_ip,
        mac=host.mac,
        security_groups=eth0.security_group_names,
        interfaces=tuple(interfaces),
        user_data=host.user_data,
        pending_time=launched if launched is not None else time.time(),
    )


def _interface(
    model: StackModel,
    plan: NetworkPlan,
    *,
    mac: str,
    number: int,
    interface_id: str,
    ips: tuple[str, ...],
    public_ip: str | None,
    subnet: str | None,
    groups: tuple[str, ...],
) -> InterfaceMetadata:
    where = next((s for s in plan.subnets if s.name == subnet), None)
    vpc = next((v for v in plan.vpcs if where is not None and v.name == where.vpc), None)
    known = [model.security_groups[g] for g in groups if g in model.security_groups]
    return InterfaceMetadata(
        mac=mac,
        device_number=number,
        interface_id=interface_id,
        local_ipv4s=ips,
        public_ipv4s=(public_ip,) if public_ip else (),
        subnet_id=f"subnet-{subnet}" if subnet else "",
        subnet_cidr=where.cidr if where else "",
        vpc_id=f"vpc-{where.vpc}" if where else "",
        vpc_cidrs=(vpc.cidr,) if vpc else (),
        security_group_ids=tuple(g.group_id for g in known),
        security_group_names=tuple(g.name for g in known),
    )


# ---- the tree -------------------------------------------------------------------------------


def identity_document(md: InstanceMetadata) -> str:
    """latest/dynamic/instance-identity/document, laid out as EC2 prints it."""
    doc: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "architecture": ARCHITECTURE,
        "availabilityZone": md.az,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": md.image_id,
        "instanceId": md.instance_id,
        "instanceType": md.instance_type,
        "kernelId": None,
        "pendingTime": _iso(md.pending_time),
        "privateIp": md.private_ip,
        "ramdiskId": None,
        "region": md.region,
        "version": DOCUMENT_VERSION,
    }
    return json.dumps(doc, indent=2, separators=(",", " : "))


def _lines(items: tuple[str, ...]) -> str:
    return "\n".join(items)


def _interface_node(md: InstanceMetadata, i: InterfaceMetadata) -> dict[str, Node]:
    node: dict[str, Node] = {
        "device-number": str(i.device_number),
        "interface-id": i.interface_id,
        "local-hostname": private_dns(i.local_ipv4s[0], md.region),
        "local-ipv4s": _lines(i.local_ipv4s),
        "mac": i.mac,
        "owner-id": ACCOUNT_ID,
        "security-group-ids": _lines(i.security_group_ids),
        "security-groups": _lines(i.security_group_names),
        "subnet-id": i.subnet_id,
        "subnet-ipv4-cidr-block": i.subnet_cidr,
        "vpc-id": i.vpc_id,
        "vpc-ipv4-cidr-block": i.vpc_cidrs[0] if i.vpc_cidrs else "",
        "vpc-ipv4-cidr-blocks": _lines(i.vpc_cidrs),
    }
    if i.public_ipv4s:
        node["public-ipv4s"] = _lines(i.public_ipv4s)
        node["public-hostname"] = public_dns(i.public_ipv4s[0], md.region)
        node["ipv4-associations"] = dict.fromkeys(i.public_ipv4s, i.local_ipv4s[0])
    return node


def meta_data(md: InstanceMetadata) -> dict[str, Node]:
    """latest/meta-data/: the categories EC2 documents that have a meaning in the lab."""
    tree: dict[str, Node] = {
        "ami-id": md.image_id,
        "ami-launch-index": "0",
        "ami-manifest-path": "(unknown)",
        "block-device-mapping": {"ami": "/dev/xvda", "root": "/dev/xvda"},
        "hostname": md.local_hostname,
        "instance-action": "none",
        "instance-id": md.instance_id,
        "instance-life-cycle": "on-demand",
        "instance-type": md.instance_type,
        "local-hostname": md.local_hostname,
        "local-ipv4": md.private_ip,
        "mac": md.mac,
        "network": {"interfaces": {"macs": {i.mac: _interface_node(md, i) for i in md.interfaces}}},
        "placement": {
            "availability-zone": md.az,
            "availability-zone-id": az_id(md.az),
            "region": md.region,
        },
        "profile": "default-hvm",
        "reservation-id": _hex_id("r-", md.instance_id),
        "security-groups": _lines(md.security_groups),
        "services": {"domain": "amazonaws.com", "partition": "aws"},
    }
    if md.public_ip and md.public_hostname:
        tree["public-ipv4"] = md.public_ip
        tree["public-hostname"] = md.public_hostname
    return tree


def version_tree(md: InstanceMetadata) -> dict[str, Node]:
    """What one version (latest/, 2009-04-04/, ...) holds."""
    tree: dict[str, Node] = {
        "dynamic": {"instance-identity": {"document": identity_document(md)}},
        "meta-data": meta_data(md),
    }
    if md.user_data is not None:
        tree["user-data"] = md.user_data.encode()
    return tree


def metadata_tree(md: InstanceMetadata) -> dict[str, Node]:
    """The whole tree, from "/": every version answers the same."""
    version = version_tree(md)
    return dict.fromkeys(VERSIONS, version)


def lookup(tree: Mapping[str, Node], path: str) -> Node | None:
    """The node at `path` ("/latest/meta-data/instance-id"), None when there is none. Empty
    segments (a doubled or trailing /) are skipped, as IMDS does."""
    node: Node = tree
    for part in path.split("/"):
        if not part:
            continue
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def listing(directory: Mapping[str, Node], path: str = "") -> str:
    """A directory's children, one per line, directories with a trailing / (but for "/" and
    a version such as "latest/", whose lists IMDS gives as bare names)."""
    top = len([p for p in path.split("/") if p]) <= 1
    return "\n".join(
        name + "/" if isinstance(child, Mapping) and not top else name
        for name, child in sorted(directory.items())
    )


# ---- carried to another server (testbed.lab.imds.remote) ----------------------------------


def to_dict(md: InstanceMetadata) -> dict[str, Any]:
    """InstanceMetadata as JSON-ready data (from_dict gives it back)."""
    return asdict(md)


def from_dict(data: Mapping[str, Any]) -> InstanceMetadata:
    """The InstanceMetadata of to_dict's data (ValueError when it is not one)."""
    try:
        d = dict(data)
        d["security_groups"] = tuple(d["security_groups"])
        interfaces = []
        for i in d["interfaces"]:
            fields: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in dict(i).items()
            }
            interfaces.append(InterfaceMetadata(**fields))
        d["interfaces"] = tuple(interfaces)
        return InstanceMetadata(**d)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an instance's metadata: {exc}") from None
