"""Simulated GPU nodes for demos and tests (see node.py)."""

from gpuctk.sim.node import PROFILES, SimNode, create_node, load_node

__all__ = ["PROFILES", "SimNode", "create_node", "load_node"]
