"""`gpuctk-runtime-hook`: placeholder until the hooks issue lands."""

import sys


def main() -> int:
    print("gpuctk-runtime-hook: not implemented yet", file=sys.stderr)
    return 1
