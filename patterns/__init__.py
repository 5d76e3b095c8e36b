"""Reboot, factory reset, configuration and firmware update: the twin contract and campaigns.

The contract (`patterns.contracts`) imports with nothing but pydantic installed, so this package
must never import the campaign modules eagerly: the device agent imports the contract alone.
"""

__all__: list[str] = []
