"""Mininet topologies built from a lab's network plan; TOPOLOGIES maps names to classes."""

from topologies.vpc import VpcTopo

TOPOLOGIES = {"vpc": VpcTopo}
