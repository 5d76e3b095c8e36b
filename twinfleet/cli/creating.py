"""`twinfleet campaign create KIND ID ...`: a campaign of any installed pattern.

Every kind the pattern registry knows gets a command: `--param name=value` (repeatable; a value
that parses as JSON is taken as JSON, else as text) fills the pattern's parameters. The
built-ins also have commands with options of their own (`firmware`, `config`, `reboot`,
`factory-reset`). The options every campaign shares (target, canary, rate, ...) are declared
once, in `_COMMON`, and added to each command's signature by `campaign_command`.
"""

from __future__ import annotations

import getpass
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import typer.main

from patterns import api
from patterns.builtin.retire import Retire
from patterns.campaigns import (
    AbortCriteria,
    Campaign,
    CampaignSpec,
    ConfigurationChange,
    FactoryReset,
    FirmwareUpdate,
    Group,
    Reboot,
    Retries,
    Rollout,
    targeting,
)
from twin_manager import TwinManager
from twinfleet.cli.connecting import (
    ConnectionOption,
    HubDirOption,
    SchemeOption,
    connect,
    connect_artifacts,
)
from twinfleet.cli.durations import parse_duration

__all__ = ["campaign_command", "command_name", "create_app", "parse_params"]


def command_name(kind: str) -> str:
    """How the command line spells a kind: `keyRotation` is `key-rotation`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "-" + m.group(1).lower(), kind)


def _kind_named(name: str) -> str | None:
    """The installed kind a command name means (the kind itself, or its `command_name`)."""
    kinds = api.registry().kinds()
    return name if name in kinds else next((k for k in kinds if command_name(k) == name), None)


class _KindGroup(typer.core.TyperGroup):
    """Commands declared here, then one generic command per other installed pattern kind."""

    # typer vendors click (typer._click): its Context is typer.Context's base, not public.
    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        declared = super().list_commands(ctx)
        names = [command_name(k) for k in api.registry().kinds()]
        return declared + [n for n in names if n not in declared]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:  # type: ignore[override]
        command = super().get_command(ctx, cmd_name)
        kind = _kind_named(cmd_name)
        if command is not None or kind is None:
            return command
        generic = typer.main.get_command(_generic_app)
        generic.name = cmd_name
        pattern = api.registry().get(kind)
        generic.help = f"A {kind} campaign: {pattern.description}"
        generic.short_help = pattern.description
        return generic


create_app = typer.Typer(
    help="Create a campaign of any installed pattern (`twinfleet patterns list` shows them).",
    no_args_is_help=True,
    cls=_KindGroup,
)
_generic_app = typer.Typer(add_completion=False)

# The options every campaign has: name -> (annotation, typer option).
_COMMON: dict[str, tuple[Any, Any]] = {
    "target": (str, typer.Option(..., "--target", help="Twin query condition selecting devices.")),
    "canary": (str | None, typer.Option(None, "--canary", help="Condition of a first group.")),
    "rate": (float, typer.Option(60.0, "--rate", help="Devices admitted per minute.")),
    "ramp": (float, typer.Option(1.0, "--ramp-factor", help="Rate factor per 10 successes.")),
    "abort_percent": (
        float | None,
        typer.Option(None, "--abort-percent", help="Abort above this failure percentage."),
    ),
    "attempts": (int, typer.Option(1, "--attempts", help="Attempts per device (1: no retry).")),
    "backoff": (
        float,
        typer.Option(
            30.0,
            "--backoff",
            min=0,
            help="Seconds before the first retry; doubles for each next one.",
        ),
    ),
    "min_finished": (
        int,
        typer.Option(
            5,
            "--min-finished",
            min=1,
            help="Finished devices needed before --abort-percent is judged.",
        ),
    ),
    "timeout": (float, typer.Option(600.0, "--timeout", help="Seconds a device may take.")),
    "continuous": (
        bool,
        typer.Option(False, "--continuous", help="Also admit devices that match later."),
    ),
    "allow_empty": (
        bool,
        typer.Option(False, "--allow-empty", help="Create it even if --target matches no device."),
    ),
    "scheme": (str | None, SchemeOption),
    "hub_dir": (Path | None, HubDirOption),
    "connection_string": (str | None, ConnectionOption),
}


def _create(pattern: api.Params, campaign_id: str, options: dict[str, Any]) -> None:
    canary = options["canary"]
    spec = CampaignSpec(
        id=campaign_id,
        pattern=pattern,
        target=options["target"],
        mode="continuous" if options["continuous"] else "snapshot",
        rollout=Rollout(per_minute=options["rate"], ramp_factor=options["ramp"]),
        groups=(Group(name="canary", condition=canary),) if canary else (),
        abort=(
            AbortCriteria(
                failure_percent=options["abort_percent"], min_finished=options["min_finished"]
            )
            if options["abort_percent"]
            else None
        ),
        retries=Retries(max_attempts=options["attempts"], backoff_seconds=options["backoff"]),
        timeout_seconds=options["timeout"],
    )
    fleet = connect(options["hub_dir"], options["connection_string"], options["scheme"])
    _refuse_empty(fleet, spec, options["allow_empty"])
    Campaign.create(fleet, spec)
    typer.echo(
        f"campaign {campaign_id} created; run it with `twinfleet campaign run {campaign_id}`"
    )


def _refuse_empty(fleet: TwinManager, spec: CampaignSpec, allow_empty: bool) -> None:
    """A campaign whose target matches no device would run and "complete" having done nothing:
    refuse it (exit 1) unless the user says so, e.g. for a continuous campaign. The target is
    checked as the user wrote it first, so an error points into their text."""
    fleet.queries.validate_condition(spec.target)
    if allow_empty or fleet.queries.count(targeting.target_condition(spec)) > 0:
        return
    typer.echo(
        f"error: the target matches no device (retired devices never count): {spec.target}\n"
        "  (check its paths and quoting with `twinfleet query`, or pass --allow-empty)",
        err=True,
    )
    raise typer.Exit(1)


@create_app.command("from-file")
def create_from_file(
    spec_file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    allow_empty: bool = typer.Option(
        False, "--allow-empty", help="Create it even if its target matches no device."
    ),
    scheme: str | None = SchemeOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A campaign from a JSON file holding a whole CampaignSpec: ordered groups with success and
    error thresholds, health gates, a maintenance window, steps, start and end times, ..."""
    try:
        data = json.loads(spec_file.read_text())
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{spec_file} is not JSON: {exc}") from None
    spec = CampaignSpec.model_validate(data)
    fleet = connect(hub_dir, connection_string, scheme)
    _refuse_empty(fleet, spec, allow_empty)
    Campaign.create(fleet, spec)
    typer.echo(f"campaign {spec.id} created; run it with `twinfleet campaign run {spec.id}`")


def campaign_command(
    app: typer.Typer, name: str
) -> Callable[[Callable[..., api.Params]], Callable[..., api.Params]]:
    """Register `create <name> ID [own options] [common options]` on `app`, where the decorated
    function takes the command's own options and returns the pattern's parameters."""

    def decorate(make: Callable[..., api.Params]) -> Callable[..., api.Params]:
        own = list(inspect.signature(make, eval_str=True).parameters.values())
        shared = {p.name for p in own} & _COMMON.keys()  # common options `make` needs too

        def command(campaign_id: str, **options: Any) -> None:
            common = {k: options[k] if k in shared else options.pop(k) for k in _COMMON}
            _create(make(**options), campaign_id, common)

        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters = [
            inspect.Parameter("campaign_id", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=str),
            *(p.replace(kind=keyword) for p in own),
            *(inspect.Parameter(k, keyword, default=option, annotation=annotation)
              for k, (annotation, option) in _COMMON.items() if k not in shared),
        ]  # fmt: skip
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        command.__doc__ = make.__doc__
        app.command(name)(command)
        return make

    return decorate


def parse_params(kind: str, pairs: list[str]) -> api.Params:
    """A pattern's parameters from `name=value` pairs (JSON values where they parse).

    Raises:
        ValueError: a pair has no `=`, or the values do not fit the pattern's parameters.
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--param {pair!r}: write name=value")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return api.registry().parse({**values, "kind": kind})


@campaign_command(_generic_app, "generic")
def _generic(
    ctx: typer.Context,
    param: list[str] = typer.Option(
        [], "--param", "-p", help="A parameter of the pattern as name=value (repeatable)."
    ),
) -> api.Params:
    name = ctx.info_name or ""
    return parse_params(_kind_named(name) or name, param)


@campaign_command(create_app, "firmware")
def _firmware(
    version: str = typer.Option(...),
    image: Path | None = typer.Option(
        None, "--image", exists=True, dir_okay=False, readable=True,
        help="Upload this image to the hub and fill in its URL, size and SHA-256.",
    ),
    image_ttl: int = typer.Option(
        "30d", "--image-ttl", parser=parse_duration,
        help="How long the uploaded image's download URL works (devices retrying need it).",
    ),
    url: str | None = typer.Option(None, help="Where devices download it (not with --image)."),
    sha256: str | None = typer.Option(None, help="SHA-256 of the image, hex (with --url)."),
    size: int | None = typer.Option(None, help="The image's size in bytes (with --url)."),
    signature: str | None = typer.Option(
        None, help="The image's signature, from 'twinfleet firmware sign' (base64)."
    ),
    security_floor: str | None = typer.Option(
        None, help="The security floor the image was signed with, if any."
    ),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> api.Params:  # fmt: skip
    """A firmware update campaign: give --image FILE, or --url and --sha256 of a hosted image."""
    if image is not None:
        if url is not None or sha256 is not None:
            raise typer.BadParameter("give --image, or --url and --sha256, not both")
        uploaded = connect_artifacts(hub_dir, connection_string).upload(image, ttl=image_ttl)
        url, sha256, size = uploaded.url, uploaded.sha256, uploaded.size
        typer.echo(f"uploaded {image.name} ({size} bytes, sha256 {sha256})")
    if url is None or sha256 is None:
        raise typer.BadParameter("give --image FILE, or both --url and --sha256")
    return FirmwareUpdate(
        version=version, package_uri=url, check_value=sha256, package_size=size,
        signature=signature, security_floor=security_floor,
    )  # fmt: skip


@campaign_command(create_app, "config")
def _config(
    settings: str = typer.Option(..., help="Settings as a JSON object."),
    config_version: int = typer.Option(
        ..., "--config-version", help="The new configuration version."
    ),
    merge: bool = typer.Option(
        False, "--merge",
        help="Merge into the devices' desired settings (default: replace them; keys not "
        "given are removed).",
    ),
) -> api.Params:  # fmt: skip
    """A configuration change campaign."""
    return ConfigurationChange(version=config_version, settings=json.loads(settings), merge=merge)


@campaign_command(create_app, "reboot")
def _reboot(
    delay: float = typer.Option(0.0, help="Seconds to wait before rebooting."),
) -> api.Params:
    """A reboot campaign."""
    return Reboot(delay=delay)


@campaign_command(create_app, "factory-reset")
def _factory_reset() -> api.Params:
    """A factory reset campaign."""
    return FactoryReset()


@campaign_command(create_app, "retire")
def _retire(
    reason: str = typer.Option(..., "--reason", help="Why the devices are retired."),
    keep_twin: bool = typer.Option(False, "--keep-twin", help="Keep the disabled twins."),
) -> api.Params:
    """Retire devices for good (run it with --dps-dir to block their provisioning too)."""
    return Retire(reason=reason, by=getpass.getuser(), keep_twin=keep_twin)
