"""`gpuctk install` and `gpuctk system`: launchers, toolkit config, engine config, CDI spec,
refresh units and device nodes. Every path can be re-rooted for tests (``--root``)."""
