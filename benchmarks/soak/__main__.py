"""`python -m benchmarks.soak [--minutes M] [--devices N]` (`make soak`): run the chaos soak,
print its table, exit 1 when an invariant did not hold."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import time
from pathlib import Path

from benchmarks.soak import faults, soaking

__all__ = ["main"]


def _arguments(argv: list[str]) -> soaking.Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="Faults go on this long.")
    parser.add_argument("--devices", type=int, default=100, help="Simulated devices.")
    parser.add_argument(
        "--per-process",
        type=int,
        default=10,
        help="Devices per `fleet simulate` process (a kill takes them all).",
    )
    parser.add_argument("--seed", type=int, default=1, help="Seed of the fault injector.")
    parser.add_argument(
        "--fault-interval", type=float, default=4.0, help="Mean seconds between faults."
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("build/soak"),
        help="Where the hub, devices and logs live (emptied first).",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.devices < 1 or args.per_process < 1 or args.minutes <= 0:
        parser.error("--devices, --per-process and --minutes must be positive")
    return soaking.Options(
        minutes=args.minutes, devices=args.devices, per_process=args.per_process,
        seed=args.seed, fault_interval=args.fault_interval, workdir=args.workdir,
    )  # fmt: skip


def print_table(soak: soaking.Soak, seconds: float) -> None:
    print(f"\nchaos soak: {soak.options.devices} devices in {len(soak.groups)} agent processes, "
          f"{len(soak.campaigns)} campaigns, {seconds / 60:.1f} min")  # fmt: skip
    print(f"\n{'fault injected':<34} {'count':>6}")
    for kind in faults.KINDS:
        print(f"{kind:<34} {soak.injector.counts[kind]:>6}")
    print(f"{'total':<34} {sum(soak.injector.counts.values()):>6}")
    print(f"\n{'invariant':<62} {'checks':>7} {'violations':>10}  held")
    for invariant in soak.ledger.invariants.values():
        verdict = "yes" if invariant.held else "NO"
        print(f"{invariant.name:<62} {invariant.checks:>7} {invariant.violations:>10}  {verdict}")
        for example in invariant.examples:
            print(f"    {example}")
    print(f"\nlogs in {soak.logs}")


def main(argv: list[str]) -> int:
    options = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("azure", "paho", "urllib3", "twin_manager"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    shutil.rmtree(options.workdir, ignore_errors=True)
    soak = soaking.Soak(options)
    started = time.monotonic()
    try:
        asyncio.run(soak.run())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print_table(soak, time.monotonic() - started)
    return 0 if soak.ledger.held else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
