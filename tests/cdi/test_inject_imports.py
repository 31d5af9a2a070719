"""What `gpuctk cdi inject` imports (the claim of docs/cdi.md, "Performance").

Each run is a fresh interpreter that reports the top-level modules the command added. The allowed
sets are not written down here: they are what `import argparse, errno, importlib, json, locale, re`
(and `import yaml`)
pull into a fresh interpreter of the same Python, so the test states the doc's rule, not a list.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(__file__)
SPEC = os.path.join(HERE, "..", "..", "examples", "cdi", "specs", "example-gpu.yaml")
CONFIG = os.path.join(HERE, "..", "..", "examples", "cdi", "config.json")

NEW_MODULES = """
import sys
before = set(sys.modules)
{setup}
after = {{m.split(".")[0] for m in set(sys.modules) - before}}
print(__import__("json").dumps(sorted(after)), file=sys.stderr)
"""

INJECT = """
import gpuctk.cdi.cache
gpuctk.cdi.cache.RACY_NS = 0  # let a spec written a moment ago be cached
before = set(sys.modules)
from gpuctk.cli.main import main
rc = main(sys.argv[1:])
"""


def _modules(code: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    p = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
    )
    assert p.returncode == 0, p.stderr
    return set(json.loads(p.stderr.strip().splitlines()[-1]))


def _fresh(imports: str) -> set[str]:
    return _modules(NEW_MODULES.format(setup=imports))


def test_inject_imports_few_stdlib_modules_and_yaml_only_for_an_uncached_yaml_spec(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(SPEC, specs / "example-gpu.yaml")
    env = dict(os.environ, GPUCTK_CONFIG_CACHE_DIR=str(tmp_path / "cache"))
    argv = ["cdi", "inject", "--device", "example.com/gpu=gpu0", "--spec-dir", str(specs), CONFIG]
    code = "import sys\n" + NEW_MODULES.format(setup=INJECT).replace("before = set(sys.modules)\n", "", 1)
    cold = _modules(code, *argv, env=env)
    warm = _modules(code, *argv, env=env)

    allowed = _fresh("import argparse, errno, importlib, json, locale, re") | {"gpuctk"}
    with_yaml = allowed | _fresh("import yaml") | {"math"}
    assert "yaml" in cold and cold <= with_yaml, sorted(cold - with_yaml)
    assert "yaml" not in warm and "math" not in warm
    assert warm <= allowed, sorted(warm - allowed)
