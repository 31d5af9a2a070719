"""Kubernetes side of gpuctk: planner, device-plugin shapes, manifests, agent Job, pod specs.

Everything here except :mod:`gpuctk.k8s.client` and :mod:`gpuctk.k8s.deployer` is pure
(plain data in, plain data out); lightkube is imported lazily by the client edge only.
"""
