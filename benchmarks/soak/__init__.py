"""The chaos soak (`make soak`): a hub, a fleet of simulated agents and a campaign controller,
each a real `twinfleet` process, while a fault injector kills them and cuts and delays their
connections through a loopback proxy; invariants are checked throughout and judged at the end.

Not part of `make test` (it runs about ten minutes): `python -m benchmarks.soak --minutes 2
--devices 20` is a short run.
"""

__all__: list[str] = []
