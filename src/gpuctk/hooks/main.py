"""`gpuctk-hook`: placeholder until the hooks issue lands."""

import sys


def main() -> int:
    print("gpuctk-hook: not implemented yet", file=sys.stderr)
    return 1
