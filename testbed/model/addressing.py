"""IP address allocation: private addresses per subnet, internet clients, public addresses.

Allocation mirrors AWS: the first four and the last address of a subnet are reserved, explicit
addresses are honoured, the rest are handed out lowest-first in creation order. Addresses that
some instance asks for literally in the template are set aside before anything is allocated, so
an automatic address never steals an explicit one that is declared later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from testbed.errors import BadInput
from testbed.model.types import INTERNET_CIDR, INTERNET_GATEWAY_IP, PUBLIC_POOL

# Automatic internet-side addresses start at .10, leaving .2-.9 for hand-picked ones.
FIRST_AUTOMATIC = 10


def reserved_reason(cidr: IPv4Network, ip: IPv4Address) -> str | None:
    """Why AWS keeps `ip` of subnet `cidr` for itself, or None when instances may use it."""
    offset = int(ip) - int(cidr.network_address)
    reasons = {
        0: "the network address",
        1: "reserved by AWS for the VPC router",
        2: "reserved by AWS for the DNS server",
        3: "reserved by AWS for future use",
    }
    if offset in reasons:
        return reasons[offset]
    if ip == cidr.broadcast_address:
        return "the broadcast address (reserved by AWS)"
    return None


@dataclass(frozen=True)
class KeptAddresses:
    """What a running stack's resources hold (owner = logical id, or a load balancer node's
    name -> address): a template update keeps them (testbed.plan.update_hosts)."""

    private: Mapping[str, str] = field(default_factory=dict)
    public: Mapping[str, str] = field(default_factory=dict)


class Pool:
    """The addresses of one network handed out to owners (logical ids)."""

    def __init__(self, name: str, network: IPv4Network, first: int, last: int) -> None:
        self.name = name
        self.network = network
        self.first = first  # offsets into the network, inclusive
        self.last = last
        self.owners: dict[IPv4Address, str] = {}
        self.set_aside: dict[IPv4Address, str] = {}  # literal addresses declared in the template
        # owner -> the address it has in the running lab (a template update keeps it)
        self.kept: dict[str, IPv4Address] = {}

    def keep(self, owner: str, ip: IPv4Address) -> None:
        """`owner` has `ip` in the running lab: allocate() gives it back to it, nobody else."""
        if ip in self.network:
            self.kept[owner] = ip
            self.set_aside_for(ip, owner)

    def set_aside_for(self, ip: IPv4Address, owner: str) -> None:
        """Keep `ip` away from automatic allocation because `owner` asks for it literally."""
        self.set_aside.setdefault(ip, owner)

    def claim(self, ip: IPv4Address, owner: str) -> IPv4Address:
        """Give the explicit address `ip` to `owner`, or raise BadInput naming the holder."""
        holder = self.owners.get(ip)
        if holder is not None and holder != owner:
            raise BadInput(
                f"address {ip} is already used by {holder}",
                hint=f"give {owner} and {holder} different addresses",
            )
        self.owners[ip] = owner
        return ip

    def allocate(self, owner: str, *, highest: bool = False) -> IPv4Address:
        """The lowest (or highest) free address for `owner`; BadInput when the pool is used up."""
        kept = self.kept.get(owner)
        if kept is not None and kept not in self.owners and self.set_aside.get(kept) == owner:
            self.owners[kept] = owner
            return kept
        base = int(self.network.network_address)
        offsets = range(self.first, self.last + 1)
        for offset in reversed(offsets) if highest else offsets:
            ip = IPv4Address(base + offset)
            if ip in self.owners:
                continue
            if self.set_aside.get(ip, owner) != owner:
                continue
            self.owners[ip] = owner
            return ip
        used = len(self.owners) + len(set(self.set_aside) - set(self.owners))
        raise BadInput(
            f"no free address left in {self.name} ({self.network}, {used} in use)",
            hint="use a larger CIDR block or fewer hosts",
        )


class AddressBook:
    """Every address pool of a stack."""

    def __init__(
        self,
        taken_public: Iterable[IPv4Address] = (),
        taken_internet: Iterable[IPv4Address] = (),
        kept: KeptAddresses | None = None,
    ) -> None:
        """taken_public, taken_internet: public addresses and internet clients' addresses the
        lab's other stacks use (never handed out here: one internet segment per lab).
        kept: owner -> the private address it has in the running lab (a template update):
        an owner without a literal address keeps it, and no other owner gets it, so an
        instance added in the middle of a template does not shift the others' addresses."""
        kept = kept or KeptAddresses()
        self.kept = {owner: IPv4Address(ip) for owner, ip in kept.private.items()}
        self.subnets: dict[str, Pool] = {}
        self.internet = Pool(
            "the internet segment", INTERNET_CIDR, FIRST_AUTOMATIC, INTERNET_CIDR.num_addresses - 2
        )
        self.public = Pool(
            "the public address pool", PUBLIC_POOL, FIRST_AUTOMATIC, PUBLIC_POOL.num_addresses - 2
        )
        for ip in taken_public:
            self.public.owners[ip] = "another stack of the lab"
        for ip in taken_internet:
            self.internet.owners[ip] = "another stack of the lab"
        for owner, address in kept.public.items():
            self.public.keep(owner, IPv4Address(address))
        self._pending: list[tuple[str, IPv4Address, str]] = []

    def add_subnet(self, subnet_id: str, cidr: IPv4Network) -> None:
        """Open the pool of a subnet: network+4 up to the address before the broadcast."""
        pool = Pool(f"subnet {subnet_id}", cidr, 4, cidr.num_addresses - 2)
        for pending_subnet, ip, owner in self._pending:
            if pending_subnet == subnet_id and ip in cidr:
                pool.set_aside_for(ip, owner)
        for owner, ip in self.kept.items():
            if ip in cidr and reserved_reason(cidr, ip) is None:
                pool.set_aside_for(ip, owner)
        self.subnets[subnet_id] = pool

    def set_aside_private(self, subnet_id: str, ip: IPv4Address, owner: str) -> None:
        """Remember that `owner` asks for `ip` in subnet `subnet_id` (before it exists)."""
        self._pending.append((subnet_id, ip, owner))

    def private(self, subnet_id: str, owner: str, ip: IPv4Address | None) -> IPv4Address:
        """The private address of `owner`: `ip` checked, or the lowest free one."""
        pool = self.subnets[subnet_id]
        if ip is None:
            kept = self.kept.get(owner)
            if kept is not None and pool.set_aside.get(kept) == owner:
                try:
                    return pool.claim(kept, owner)
                except BadInput:
                    pass  # a literal address of the new template took it: a new one
            return pool.allocate(owner)
        if ip not in pool.network:
            raise BadInput(
                f"address {ip} is not inside subnet {subnet_id} ({pool.network})",
                hint=f"pick an address from {pool.network.network_address + 4} to "
                f"{pool.network.broadcast_address - 1}",
            )
        reason = reserved_reason(pool.network, ip)
        if reason:
            raise BadInput(
                f"address {ip} is {reason} in subnet {subnet_id} ({pool.network})",
                hint=f"the first usable address is {pool.network.network_address + 4}",
            )
        return pool.claim(ip, owner)

    def client(self, owner: str, ip: IPv4Address | None) -> IPv4Address:
        """The address of an internet client: `ip` checked, or the lowest free from .10."""
        if ip is None:
            return self.internet.allocate(owner)
        if ip not in INTERNET_CIDR:
            raise BadInput(
                f"address {ip} is not on the internet segment {INTERNET_CIDR}",
                hint="pick an address from 198.51.100.2 to 198.51.100.254",
            )
        if ip == INTERNET_GATEWAY_IP:
            raise BadInput(f"address {ip} is the internet gateway's")
        if ip in (INTERNET_CIDR.network_address, INTERNET_CIDR.broadcast_address):
            raise BadInput(f"address {ip} is the network or broadcast address of {INTERNET_CIDR}")
        return self.internet.claim(ip, owner)
