"""The public surface of each package changes only on purpose."""

import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

PACKAGES = [
    "jsonlimits",
    "queries",
    "local_hub",
    "twin_manager",
    "device_agent",
    "patterns",
    "twinfleet",
    "twinfleet.dashboard",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, list)
    for public in exported:
        assert hasattr(module, public), f"{name}.__all__ names {public!r}, which it lacks"


def test_the_installed_entry_points_are_those_pyproject_declares() -> None:
    """The editable install's metadata (entry points: console scripts, the agent's handlers and
    the campaign patterns) is written at install time; a pyproject.toml changed since (by a
    merge, say) leaves it stale, and an agent then silently lacks a handler (key rotation)."""
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    declared = {("console_scripts", name, value) for name, value in project["scripts"].items()}
    for group, entries in project["entry-points"].items():
        declared |= {(group, name, value) for name, value in entries.items()}
    installed = {(e.group, e.name, e.value)
                 for e in importlib.metadata.distribution("twinfleet").entry_points}  # fmt: skip
    assert installed == declared, (
        "The installed twinfleet metadata does not match pyproject.toml (its entry points "
        "changed since the install); run `make .venv/.installed` to install it again."
    )


# The public names of each package and of the extension APIs, pinned: a change here is a change
# of the public surface, made on purpose and reviewed.
SURFACE = {
    "queries": [
        "Condition",
        "Query",
        "QueryError",
        "QuerySyntaxError",
        "QueryWarning",
        "Scheme",
        "UNDEFINED",
        "UnsupportedQuery",
        "check",
        "check_condition",
        "parse",
        "parse_condition",
        "quote",
    ],
    "local_hub": [
        "HubError",
        "HubServer",
        "LocalHub",
        "SecretRedactor",
        "install_redactor",
        "serve",
    ],
    "twin_manager": [
        "Artifact",
        "ArtifactNotFound",
        "ArtifactStore",
        "Blocked",
        "BulkFailure",
        "BulkResult",
        "Configuration",
        "Configurations",
        "Conflict",
        "Device",
        "DeviceJobResult",
        "DeviceNotFound",
        "DeviceNotOnline",
        "Devices",
        "FleetScheme",
        "HubConfigurationError",
        "HubError",
        "HubUnavailable",
        "ImportExportJob",
        "InvalidQuery",
        "InvalidScheme",
        "InvalidTags",
        "Job",
        "JobStatistics",
        "Jobs",
        "LocalHubInfo",
        "MethodResult",
        "MethodTimeout",
        "Methods",
        "NOT_GIVEN",
        "PreconditionFailed",
        "ProvisioningService",
        "Queries",
        "RetryPolicy",
        "Throttled",
        "Twin",
        "TwinManager",
        "TwinManagerError",
        "Twins",
        "Unauthorized",
        "Usage",
        "UsageSnapshot",
        "load_scheme",
        "read_hub_dir",
    ],
    "device_agent": [
        "AgentError",
        "Backoff",
        "CommandPlatform",
        "Credentials",
        "DeviceAgent",
        "FirmwareUpdater",
        "HubRefused",
        "PermanentError",
        "Platform",
        "Provisioner",
        "ProvisioningFailed",
        "RebootRequested",
        "SimulatedFleet",
        "SimulatedPlatform",
        "TemporaryError",
        "TrustStore",
        "UntrustedImage",
        "handlers",
        "run_simulated_device",
    ],
    "device_agent.handlers": [
        "Agent",
        "ConfigurationHandler",
        "Configure",
        "DiagnosticsHandler",
        "FactoryResetHandler",
        "FirmwareHandler",
        "Handler",
        "HandlerError",
        "Invocation",
        "MethodHandler",
        "RebootHandler",
        "SectionHandler",
        "api",
        "builtin",
    ],
    "device_agent.handlers.api": [
        "Agent",
        "ENTRY_POINT_GROUP",
        "Handler",
        "HandlerError",
        "Invocation",
        "KeyProvider",
        "MethodHandler",
        "SectionHandler",
        "function_method",
        "function_section",
        "handlers_of",
        "installed",
        "is_handler",
    ],
    "patterns": [],
    "patterns.api": [
        "Attempt",
        "DesiredPatch",
        "Device",
        "ENTRY_POINT_GROUP",
        "Outcome",
        "Params",
        "Pattern",
        "PatternError",
        "Registry",
        "UnknownPattern",
        "Verdict",
        "invoke",
        "registry",
    ],
    "patterns.contracts": [
        "ConfigurationDesired",
        "ConfigurationReported",
        "ConfigurationStatus",
        "DiagnosticsReported",
        "DiagnosticsRequest",
        "DiagnosticsStatus",
        "FACTORY_RESET",
        "FactoryResetPayload",
        "FactoryResetReported",
        "FactoryResetStatus",
        "FirmwareDesired",
        "FirmwareReported",
        "FirmwareStatus",
        "REBOOT",
        "RebootPayload",
        "RebootReported",
        "configuration",
        "diagnostics",
        "firmware",
        "iso",
        "iso_now",
        "methods",
        "parse_iso",
        "patches",
        "signed_statement",
        "times",
    ],
    "patterns.builtin": [
        "ConfigurationChange",
        "DiagnosticsUpload",
        "FactoryReset",
        "FirmwareUpdate",
        "PATTERNS",
        "Reboot",
        "Retire",
        "configuration",
        "diagnostics",
        "factory_reset",
        "firmware",
        "reboot",
        "retire",
    ],
    "patterns.campaigns": [
        "AbortCriteria",
        "Campaign",
        "CampaignSpec",
        "CampaignState",
        "CampaignStatus",
        "ConfigurationChange",
        "DeviceProgress",
        "DeviceState",
        "FINAL",
        "FactoryReset",
        "FirmwareUpdate",
        "Group",
        "HealthGate",
        "Plan",
        "PlannedDevice",
        "Reboot",
        "Retries",
        "Rollout",
        "pacing",
        "plan",
        "progress",
        "records",
        "specs",
        "targeting",
    ],
    "twinfleet": [],
}


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_the_public_surface_is_pinned(name: str) -> None:
    assert sorted(importlib.import_module(name).__all__) == SURFACE[name]
