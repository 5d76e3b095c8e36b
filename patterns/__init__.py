"""Reboot, factory reset, configuration and firmware update: the twin contract and campaigns.

Its API is in four subpackages (import them by name; this package imports none of them, so
the device agent can import the contract with nothing but pydantic installed):

- `patterns.api`: the back end's extension API: `Pattern` (kind, params, apply, outcome,
  rollback), `Params`, `Device`, `Attempt`, `Verdict`, `registry()` (built-ins and the
  `twinfleet.patterns` entry points).
- `patterns.contracts`: the twin contract both sides share, one pydantic model per desired and
  reported section and per method payload (`FirmwareDesired`, `ConfigurationReported`, ...).
- `patterns.builtin`: the built-in patterns and their parameters (`FirmwareUpdate`,
  `ConfigurationChange`, `Reboot`, `FactoryReset`, `DiagnosticsUpload`).
- `patterns.campaigns`: rollouts: `CampaignSpec` (target, `Group`, `Rollout`,
  `AbortCriteria`, `Retries`, `HealthGate`), `Campaign` (`create`, `load`, `run`, `tick`,
  `status`, `devices`, `pause`, `resume`, `cancel`, `abort`), `plan`.

    from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange
    campaign = Campaign.create(fleet, CampaignSpec(id="tune", target="tags.ring = 'canary'",
                               pattern=ConfigurationChange(version=2, settings={"x": 1})))
    campaign.run()
"""

__all__: list[str] = []
