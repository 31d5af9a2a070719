"""``python -m gpuctk``: the admin CLI, same as ``gpuctk``."""

import sys

from gpuctk.cli.main import main

sys.exit(main())
