"""`gpuctk-runtime`: placeholder until the runtime-shim issue lands."""

import sys


def main() -> int:
    print("gpuctk-runtime: not implemented yet", file=sys.stderr)
    return 1


def main_cdi() -> int:
    return main()


def main_legacy() -> int:
    return main()
