"""Build-stage check (not in the image): import every extension module of a virtual
environment's site-packages and print the ones that fail, one a line, sorted.

The Dockerfile runs it before and after stripping the extension modules' symbol tables and
fails the build if the two lists differ, so stripping never breaks an import. (A few fail
either way when imported alone, e.g. matplotlib's Tk backend without tkinter.)
"""

import importlib
import sys
import sysconfig
from pathlib import Path

site = Path(sysconfig.get_paths()["purelib"])
failed = []
for path in sorted(site.rglob("*.so")):
    parts = path.relative_to(site).parts
    if parts[0].endswith(".libs") or parts[0].endswith(".dist-info"):
        continue
    name = ".".join((*parts[:-1], path.name.split(".")[0]))
    try:
        importlib.import_module(name)
    except Exception as err:  # any failure is reported, not raised
        failed.append(f"{name}: {type(err).__name__}")
print("\n".join(failed))
print(f"{len(failed)} of the extension modules in {site} fail to import alone",
      file=sys.stderr)
