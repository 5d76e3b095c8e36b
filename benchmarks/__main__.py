"""Run every benchmark module (or those named on the command line) and print their figures."""

import importlib
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks
from benchmarks import _results


def main(argv: list[str]) -> int:
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name.startswith("bench_")
    )
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    for name in wanted:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        module.main()
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
    _results.print_table()
    if _results.rows:
        _results.write_json(Path("bench-results.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
