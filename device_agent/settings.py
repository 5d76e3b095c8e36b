"""The device's settings: one TOML file, validated whole before the agent starts.

`EXAMPLE` is a commented file to start from (`twinfleet-agent --example` prints it).
Relative paths are relative to the file's folder. Every error names the file, the setting and
the fix in one line, and never quotes a secret.
"""

from __future__ import annotations

import difflib
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from device_agent import errors, keyfiles, signatures

__all__ = [
    "EXAMPLE",
    "AgentSettings",
    "CommandPlatformSettings",
    "ConnectionSettings",
    "ProvisioningSettings",
    "SimulatedPlatformSettings",
    "TrustSettings",
    "load",
    "parse_connection_string",
]

EXAMPLE = """\
# twinfleet-agent settings (/etc/twinfleet/agent.toml). Relative paths start at this file's folder.
state_dir = "/var/lib/twinfleet"          # the agent's state: firmware steps, downloads
log_level = "info"                        # debug, info, warning, error
# max_image_size = 536870912              # the largest firmware image accepted, bytes
# handlers = ["acme.leds:install"]        # module:attribute, each called with the DeviceAgent

[connection]                              # a key file, the device id and the hub...
key_file = "/etc/twinfleet/device.key"    # the device's base64 primary key; mode 0600
device_id = "sensor-0042"
hub_host = "contoso.azure-devices.net"
# gateway_host = "10.0.0.5"               # connect here instead (a local hub, a gateway)
# connection_string = "HostName=...;DeviceId=...;SharedAccessKey=..."   # ...or this (file 0600)
# ca_file = "/etc/twinfleet/hub-ca.pem"   # trust this CA for the hub (a local hub's)
# keep_alive = 60                         # MQTT keep-alive, seconds

[platform]                                # or just: kind = "simulated" (files, to try it out)
kind = "command"
version = "cat /etc/firmware-version"     # prints the running version
install = "rauc install {image}"          # {image} and {version} are filled in, quoted
reboot = "systemctl reboot"
confirm_boot = "rauc status mark-good"
rollback = "rauc status mark-bad other"
factory_reset = "/usr/local/sbin/factory-reset"
# timeout = 600                           # seconds for each command
# reboot_timeout = 300                    # seconds for the device to go down after `reboot`
# boot_id = "cat /proc/sys/kernel/random/boot_id"   # changes at every boot

# [connection.provisioning]              # ...or let a provisioning service (DPS) assign the hub:
# id_scope = "0ne00000000"                # with key_file above and no device_id or hub_host
# registration_id = "sensor-0042"         # in an enrollment group, key_file holds the derived key
# provisioning_host = "global.azure-devices-provisioning.net"
# retry_initial = 2                       # seconds before registering again, doubling...
# retry_max = 300                         # ...up to this, with jitter

# [trust]
# image_ca_file = "/etc/ssl/certs/acme.pem"  # CA for https firmware URLs (default: ca_file)
# firmware_trust_store = "/etc/twinfleet/keys"  # install only images signed by these keys
# firmware_security_floor = "2.0.0"            # never run an older version
"""

LogLevel = Literal["debug", "info", "warning", "error"]
_HANDLER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def parse_connection_string(text: str) -> dict[str, str]:
    """The `Key=value` fields of a device connection string (values may hold `=`)."""
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        if part:
            key, _, value = part.partition("=")
            fields[key.strip()] = value.strip()
    return fields


_REGISTRATION_ID = r"^[a-z0-9][a-z0-9._:-]{0,127}$"


class ProvisioningSettings(_Settings):
    """The Device Provisioning Service the device registers with (`device_agent.provisioning`).

    The device's key is `connection.key_file` (preferred) or `symmetric_key` here (the settings
    file must then be private); in an enrollment group it is the key derived from the group's.
    `retry_initial` and `retry_max` bound the backoff between registrations, in seconds.
    """

    id_scope: str = Field(min_length=1)
    registration_id: Annotated[str, Field(pattern=_REGISTRATION_ID)]
    provisioning_host: str = Field("global.azure-devices-provisioning.net", min_length=1)
    symmetric_key: SecretStr | None = None
    retry_initial: float = Field(2.0, gt=0, le=3600)
    retry_max: float = Field(300.0, gt=0, le=86400)

    @field_validator("symmetric_key")
    @classmethod
    def _base64_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not keyfiles.is_key(value.get_secret_value()):
            raise ValueError(
                "must be the device's base64 symmetric key (in an enrollment group, the key "
                "`twinfleet dps derive-key` or `az iot dps enrollment-group compute-device-key` "
                "gives)"
            )
        return value

    @model_validator(mode="after")
    def _retry_bounds(self) -> ProvisioningSettings:
        if self.retry_initial > self.retry_max:
            raise ValueError("retry_initial must not exceed retry_max; lower it or raise retry_max")
        return self


class ConnectionSettings(_Settings):
    """How the device reaches its hub: a connection string, a key file with the device id and
    the hub's host name, or a provisioning service (`[connection.provisioning]`) that assigns
    the hub, with the key in a key file."""

    connection_string: SecretStr | None = None
    key_file: Path | None = None
    device_id: str | None = None
    hub_host: str | None = None
    gateway_host: str | None = None
    provisioning: ProvisioningSettings | None = None
    ca_file: Path | None = None
    keep_alive: int = Field(60, ge=5, le=1740)

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> ConnectionSettings:
        if self.provisioning is not None:
            return self._provisioned()
        ways = [
            name
            for name, given in (
                ("connection_string", self.connection_string is not None),
                ("key_file", self.key_file is not None),
            )
            if given
        ]
        if not ways:
            raise ValueError(
                "give connection_string, or key_file with device_id and hub_host, or a "
                "[connection.provisioning] table (or pass --connection-string, or --dps-host "
                "with --id-scope, --registration-id and --symmetric-key)"
            )
        if len(ways) > 1:
            raise ValueError(f"give only one of {' and '.join(ways)}")
        if self.connection_string is not None:
            fields = parse_connection_string(self.connection_string.get_secret_value())
            missing = [k for k in ("HostName", "DeviceId", "SharedAccessKey") if not fields.get(k)]
            if missing:
                raise ValueError(
                    f"connection_string lacks {', '.join(missing)}; use the device's connection "
                    "string (`twinfleet device connection-string show` or `az iot hub "
                    "device-identity connection-string show`)"
                )
            extra = {"device_id", "hub_host"} & self.model_fields_set
            if extra:
                raise ValueError(
                    f"{' and '.join(sorted(extra))} go with key_file, not connection_string; "
                    "remove them"
                )
        if self.key_file is not None:
            missing = [k for k in ("device_id", "hub_host") if not getattr(self, k)]
            if missing:
                raise ValueError(f"key_file needs {' and '.join(missing)} too; add them")
        return self

    def _provisioned(self) -> ConnectionSettings:
        assert self.provisioning is not None
        if self.connection_string is not None:
            raise ValueError("give only one of connection_string and provisioning")
        extra = sorted({"device_id", "hub_host", "gateway_host"} & self.model_fields_set)
        if extra:
            raise ValueError(
                f"{' and '.join(extra)} do not go with provisioning (the provisioning service "
                "assigns the hub and the device id); remove them"
            )
        keys = [name for name, given in (
            ("key_file", self.key_file is not None),
            ("provisioning.symmetric_key", self.provisioning.symmetric_key is not None),
        ) if given]  # fmt: skip
        if not keys:
            raise ValueError(
                "provisioning needs the device's key: add key_file (a file holding the key, "
                "mode 0600), or pass --symmetric-key"
            )
        if len(keys) > 1:
            raise ValueError(f"give only one of {' and '.join(keys)}")
        return self


def _check_command(template: str, allowed: frozenset[str], name: str) -> str:
    if not template.strip():
        raise ValueError(f"the {name} command is empty")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{exc}; write a literal brace as {{{{ or }}}}") from None
    unknown = fields - allowed
    if unknown:
        known = ", ".join(f"{{{a}}}" for a in sorted(allowed)) or "none"
        raise ValueError(
            f"unknown placeholder {{{sorted(unknown)[0]}}} (available: {known}); write a literal "
            "brace as {{ or }}"
        )
    return template


class SimulatedPlatformSettings(_Settings):
    """A simulated A/B device kept as files (tests, demos, trying the agent out)."""

    kind: Literal["simulated"]
    root: Path | None = None
    initial_version: str = "1.0.0"


class CommandPlatformSettings(_Settings):
    """A real Linux device whose actions are shell commands (RAUC, SWUpdate, Mender, scripts).

    `install` gets `{image}` and `{version}`; the others get nothing. `reboot_timeout` is how long
    the agent waits, after the reboot command returned, for the device to go down; `boot_id`
    prints an id that changes at every boot (see `device_agent.boots`).
    """

    kind: Literal["command"]
    version: str
    install: str
    reboot: str
    confirm_boot: str
    rollback: str
    factory_reset: str
    timeout: float = Field(600, gt=0)
    reboot_timeout: float = Field(300, gt=0)
    boot_id: str = "cat /proc/sys/kernel/random/boot_id"

    @field_validator("install")
    @classmethod
    def _install_placeholders(cls, value: str) -> str:
        value = _check_command(value, frozenset({"image", "version"}), "install")
        if "{image}" not in value:
            raise ValueError("the install command must use {image}, the downloaded image's path")
        return value

    @field_validator("version", "reboot", "confirm_boot", "rollback", "factory_reset", "boot_id")
    @classmethod
    def _no_placeholders(cls, value: str) -> str:
        return _check_command(value, frozenset(), "platform")


PlatformSettings = Annotated[
    SimulatedPlatformSettings | CommandPlatformSettings, Field(discriminator="kind")
]


class TrustSettings(_Settings):
    """What the device trusts besides the hub's CA.

    `firmware_trust_store` is a folder of Ed25519 public keys (`*.pem`, `*.pub`): when set, only
    firmware images signed by one of them are installed. `firmware_security_floor` is the lowest
    firmware version the device may ever run.
    """

    image_ca_file: Path | None = None
    firmware_trust_store: Path | None = None
    firmware_security_floor: str | None = Field(default=None, min_length=1)


class AgentSettings(_Settings):
    """Everything `twinfleet-agent` needs, as one validated, immutable object."""

    state_dir: Path
    connection: ConnectionSettings
    platform: PlatformSettings
    handlers: list[Annotated[str, Field(pattern=_HANDLER)]] = Field(default_factory=list)
    log_level: LogLevel = "info"
    trust: TrustSettings = Field(default_factory=TrustSettings)
    max_image_size: int = Field(512 * 1024 * 1024, gt=0)

    def device_connection_string(self) -> str:
        """The connection string the SDK gets; reads the key file (checked private) if any.

        Raises:
            InvalidSettings: the key file is missing, not private, or malformed.
        """
        connection = self.connection
        if connection.connection_string is not None:
            return connection.connection_string.get_secret_value()
        assert connection.key_file is not None
        key = keyfiles.read_key(connection.key_file, "connection.key_file")
        text = (
            f"HostName={connection.hub_host};DeviceId={connection.device_id};SharedAccessKey={key}"
        )
        if connection.gateway_host:
            text += f";GatewayHostName={connection.gateway_host}"
        return text

    def provisioning_key(self) -> str:
        """The key a provisioned device registers and connects with (key file or setting).

        Raises:
            InvalidSettings: the key file is missing, not private, or malformed.
        """
        chosen = self.connection.provisioning
        assert chosen is not None
        if chosen.symmetric_key is not None:
            return chosen.symmetric_key.get_secret_value()
        assert self.connection.key_file is not None
        return keyfiles.read_key(self.connection.key_file, "connection.key_file")

    def secrets(self) -> list[str]:
        """Every secret these settings hold (to mask in logs); reads the key file if any.

        Raises:
            InvalidSettings: the key file is missing, not private, or malformed.
        """
        if self.connection.provisioning is not None:
            return [self.provisioning_key()]
        text = self.device_connection_string()
        key = parse_connection_string(text).get("SharedAccessKey", "")
        return [text, key]

    def device_id(self) -> str:
        connection = self.connection
        if connection.connection_string is not None:
            fields = parse_connection_string(connection.connection_string.get_secret_value())
            return fields["DeviceId"]
        return str(connection.device_id)

    def image_ca_file(self) -> Path | None:
        return self.trust.image_ca_file or self.connection.ca_file


# -- loading ------------------------------------------------------------------------------------

_OPTIONS = {
    "state_dir": "--state-dir",
    "connection": "--connection-string",
    "platform": "--simulated",
    "connection.ca_file": "--ca-cert",
    "connection.provisioning.id_scope": "--id-scope",
    "connection.provisioning.registration_id": "--registration-id",
}
_PROVISIONING_OPTIONS = {
    "dps_host": "provisioning_host",
    "id_scope": "id_scope",
    "registration_id": "registration_id",
}


def _where(location: tuple[int | str, ...]) -> str:
    where = ""
    for part in location:
        if isinstance(part, int):
            where += f"[{part}]"
        elif part not in ("simulated", "command") or not where.endswith("platform"):
            where += f".{part}" if where else str(part)
    return where


def _known_names() -> list[str]:
    models: list[type[BaseModel]] = [
        AgentSettings, ConnectionSettings, ProvisioningSettings, SimulatedPlatformSettings,
        CommandPlatformSettings, TrustSettings,
    ]  # fmt: skip
    return sorted({name for model in models for name in model.model_fields})


def _explain(problem: dict[str, Any], source: str) -> errors.InvalidSettings:
    where = _where(tuple(problem["loc"]))
    kind = problem["type"]
    context = problem.get("ctx") or {}
    option = _OPTIONS.get(where)
    name = where.rpartition(".")[2]
    if kind == "missing":
        if where in ("connection", "platform", "trust"):
            wanted = f"a [{where}] table"
            if where == "platform":
                wanted += ' with kind = "command" (your commands) or "simulated"'
        else:
            wanted = name
        if source == "command line":
            text = f"missing; pass {option}" if option else "missing"
            text += " (or give a settings file with --config)"
        else:
            text = f"missing; add {wanted}" + (f" (or pass {option})" if option else "")
    elif kind == "extra_forbidden" and "." in where and name in AgentSettings.model_fields:
        text = (
            "unknown in this table; it is a top-level setting: move it above the first [table] "
            "(TOML puts every key after a [table] line into that table)"
        )
    elif kind == "extra_forbidden":
        close = difflib.get_close_matches(name, _known_names(), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "check its spelling or remove it"
        text = f"unknown setting; {hint}"
    elif kind == "union_tag_not_found":
        where = f"{where}.kind" if where else "kind"
        text = 'missing; add kind = "command" (runs your commands) or kind = "simulated"'
    elif kind == "union_tag_invalid":
        where = f"{where}.kind" if where else "kind"
        text = 'must be "command" (runs your commands) or "simulated"'
    elif kind == "string_pattern_mismatch" and where.startswith("handlers"):
        text = 'must be "module:attribute", e.g. "acme.leds:install"'
    elif kind == "string_pattern_mismatch" and name == "registration_id":
        text = (
            "must be 1 to 128 lower-case letters, digits and . _ : -, starting with a letter or "
            "digit (as the provisioning service's enrollment has it)"
        )
    elif kind == "literal_error":
        text = f"must be one of {context.get('expected', '')}"
    elif kind == "value_error":
        text = str(context.get("error", problem["msg"]))
    else:
        text = str(problem["msg"]).lower()
    prefix = f"{source}: {where}: " if where else f"{source}: "
    return errors.InvalidSettings(prefix + text, field=where)


def _resolve(base: Path, value: Any) -> Any:
    return str(base / value) if isinstance(value, str) and value else value


def _relative_to(raw: dict[str, Any], base: Path) -> None:
    """Make the file's relative paths relative to its folder (in place)."""
    if "state_dir" in raw:
        raw["state_dir"] = _resolve(base, raw["state_dir"])
    for table, keys in (
        ("connection", ("key_file", "ca_file")),
        ("trust", ("image_ca_file", "firmware_trust_store")),
        ("platform", ("root",)),
    ):
        section = raw.get(table)
        if isinstance(section, dict):
            for key in keys:
                if key in section:
                    section[key] = _resolve(base, section[key])


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise errors.InvalidSettings(
            f"{path}: no such file; write the agent's settings there (`twinfleet-agent "
            "--example` prints a file to start from) or pass another --config"
        ) from None
    except OSError as exc:
        raise errors.InvalidSettings(f"{path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.InvalidSettings(f"{path}: not valid TOML: {exc}") from None


def _apply(raw: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Put the command line's options over the file's settings (in place)."""
    cwd = Path.cwd()
    if overrides.get("state_dir") is not None:
        raw["state_dir"] = str(cwd / overrides["state_dir"])
    if overrides.get("log_level") is not None:
        raw["log_level"] = overrides["log_level"]
    connection = raw.get("connection")
    connection = dict(connection) if isinstance(connection, dict) else {}
    if overrides.get("connection_string") is not None:
        kept = {k: v for k, v in connection.items() if k in ("ca_file", "keep_alive")}
        connection = {**kept, "connection_string": overrides["connection_string"]}
    if overrides.get("ca_file") is not None:
        connection["ca_file"] = str(cwd / overrides["ca_file"])
    _apply_provisioning(connection, overrides)
    if connection or "connection" in raw:
        raw["connection"] = connection or raw["connection"]
    platform = raw.get("platform")
    simulated = isinstance(platform, dict) and platform.get("kind") == "simulated"
    if overrides.get("simulated") and not simulated:
        raw["platform"] = {"kind": "simulated"}
        simulated = True
    if overrides.get("initial_version") is not None and simulated:
        raw["platform"] = {**raw["platform"], "initial_version": overrides["initial_version"]}
    if overrides.get("handlers"):
        file_handlers = raw.get("handlers")
        before = list(file_handlers) if isinstance(file_handlers, list) else []
        raw["handlers"] = [*before, *overrides["handlers"]]


def _apply_provisioning(connection: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Put the command line's provisioning options over the connection table (in place): any of
    them replaces a connection string or a hub given in the file; --symmetric-key replaces the
    file's key (and counts only where provisioning is in play)."""
    given = {
        field: overrides[option]
        for option, field in _PROVISIONING_OPTIONS.items()
        if overrides.get(option) is not None
    }
    table = connection.get("provisioning")
    if not given and not isinstance(table, dict):
        return
    table = {**(table if isinstance(table, dict) else {}), **given}
    if given:
        for key in ("connection_string", "device_id", "hub_host", "gateway_host"):
            connection.pop(key, None)
    if overrides.get("symmetric_key") is not None:
        table["symmetric_key"] = overrides["symmetric_key"]
        connection.pop("key_file", None)
    connection["provisioning"] = table


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> AgentSettings:
    """Read and validate the settings in `path` (if any), with command-line `overrides` on top.

    `overrides` may hold `state_dir`, `log_level`, `connection_string`, `ca_file`, `simulated`
    (bool), `initial_version`, `handlers` (added after the file's), and for a provisioned device
    `dps_host`, `id_scope`, `registration_id` and `symmetric_key`. A connection string given
    there replaces the file's way of connecting, and so do the provisioning options; `simulated`
    replaces its platform.

    Raises:
        InvalidSettings: the file or the options are wrong (one line: file, setting, fix).
    """
    source = str(path) if path is not None else "command line"
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read(path)
        _relative_to(raw, path.resolve().parent)
    file_connection = raw.get("connection")
    file_provisioning = (
        file_connection.get("provisioning") if isinstance(file_connection, dict) else None
    )
    secret_in_file = isinstance(file_connection, dict) and (
        "connection_string" in file_connection
        or (isinstance(file_provisioning, dict) and "symmetric_key" in file_provisioning)
    )
    _apply(raw, overrides or {})
    try:
        settings = AgentSettings.model_validate(raw)
    except ValidationError as exc:
        # A misspelt name is the likeliest cause of anything else: name it first.
        problems = sorted(exc.errors(), key=lambda p: p["type"] != "extra_forbidden")
        raise _explain(dict(problems[0]), source) from None
    try:
        _check_files(settings, path, secret_in_file)
    except errors.InvalidSettings as exc:
        raise errors.InvalidSettings(f"{source}: {exc}", field=exc.field) from None
    return settings


def _check_files(settings: AgentSettings, path: Path | None, secret_in_file: bool) -> None:
    connection = settings.connection
    if secret_in_file and path is not None:
        field = "connection.connection_string"
        if connection.provisioning is not None and connection.provisioning.symmetric_key:
            field = "connection.provisioning.symmetric_key"
        keyfiles.check_private(path, field, "the settings file")
    for field, file in (
        ("connection.ca_file", connection.ca_file),
        ("trust.image_ca_file", settings.trust.image_ca_file),
    ):
        if file is not None and not file.is_file():
            raise errors.InvalidSettings(
                f"{field}: {file} is not a readable file; fix the path", field=field
            )
    store = settings.trust.firmware_trust_store
    if store is not None:
        try:
            signatures.TrustStore.load(store)
        except (OSError, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise errors.InvalidSettings(
                f"trust.firmware_trust_store: {store} is not a folder of public keys ({detail}); "
                "fix the path",
                field="trust.firmware_trust_store",
            ) from None
    if connection.key_file is not None:
        settings.secrets()  # checks the key file now, not at the first connect
