"""What os-ken 4.2.2 lacks for the GWLB in the switch: Open vSwitch's tunnel metadata fields and
its TLV map message.

- NXM_NX_TUN_METADATA0..2 (Nicira NXM_1 fields 40..42) registered as OXM fields named
  tun_metadata0..2, so flows can match, set and move them (OVS accepts a field length shorter
  than its 124 bytes and right-aligns it: 8, 8 and 4 bytes here);
- NXT_TLV_TABLE_MOD (Nicira experimenter message 24) adding the map of AWS's GENEVE options
  (class 0x0108: type 1 endpoint id, 8 bytes; type 2 attachment id, 8 bytes; type 3 flow
  cookie, 4 bytes) onto those fields. The map is per bridge; adding a mapping that exists
  already is answered with the Nicira error NXTTMFC_ALREADY_MAPPED, which is harmless.

Importing this module registers the fields (once); testbed.controllers.ofadapter imports it.
"""

from __future__ import annotations

import struct
from typing import Any

from os_ken.lib import type_desc
from os_ken.ofproto import ofproto_v1_3, oxm_fields

NX_VENDOR_ID = 0x00002320
NXT_TLV_TABLE_MOD = 24
NXTTMC_ADD, NXTTMC_DELETE, NXTTMC_CLEAR = 0, 1, 2
# Nicira errors (OpenFlow 1.2+ experimenter error type, exp_type below).
NXTTMFC_ALREADY_MAPPED = 20
AWS_GENEVE_CLASS = 0x0108
NXM_TUN_METADATA0 = 40  # NXM_1 field number of tun_metadata0; <n> is 40 + n
# (option type, option length, tun_metadata index): the AWS GWLB options.
GWLB_TLV_MAP = ((1, 8, 0), (2, 8, 1), (3, 4, 2))
FIELD_TYPES = {0: type_desc.Int8, 1: type_desc.Int8, 2: type_desc.Int4}


def _register() -> None:
    names = {f.name for f in ofproto_v1_3.oxm_types}
    added = [
        oxm_fields.NiciraExtended1(f"tun_metadata{i}", NXM_TUN_METADATA0 + i, kind)
        for i, kind in FIELD_TYPES.items()
        if f"tun_metadata{i}" not in names
    ]
    if added:
        ofproto_v1_3.oxm_types += added
        # The parser looks the fields up in the module's tables at call time.
        oxm_fields.generate(ofproto_v1_3.__name__)


_register()


def tlv_table_mod_body(command: int = NXTTMC_ADD, maps: Any = GWLB_TLV_MAP) -> bytes:
    """The body of NXT_TLV_TABLE_MOD: command, 6 pad bytes, then per map the option class,
    type, length, the tun_metadata index and 2 pad bytes."""
    body = struct.pack("!H6x", command)
    for opt_type, length, index in maps:
        body += struct.pack("!HBBH2x", AWS_GENEVE_CLASS, opt_type, length, index)
    return body


def tlv_map_message(datapath: Any) -> Any:
    """The OFPExperimenter message adding the GWLB TLV map to a switch."""
    parser = datapath.ofproto_parser
    return parser.OFPExperimenter(datapath, NX_VENDOR_ID, NXT_TLV_TABLE_MOD, tlv_table_mod_body())


def is_already_mapped(msg: Any) -> bool:
    """Whether an OFPErrorMsg is the switch saying the TLV map is there already."""
    return (
        getattr(msg, "type", None) == ofproto_v1_3.OFPET_EXPERIMENTER
        and getattr(msg, "experimenter", None) == NX_VENDOR_ID
        and getattr(msg, "exp_type", None) == NXTTMFC_ALREADY_MAPPED
    )
