"""The agent's settings file: what a good file gives, and how a bad one is refused (one line
naming the file, the setting and the fix, exit status 2, no traceback, no secret). Real files in
a temporary folder; the command's `main` runs in-process, and once as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from device_agent import cli, errors, loading, notifying, settings

KEY = "c2VjcmV0LWRldmljZS1rZXktZm9yLXRlc3RzLW9ubHk="
CONNECTION = f"HostName=hub.example;DeviceId=dev-1;SharedAccessKey={KEY}"
SIMULATED = '[platform]\nkind = "simulated"\n'
COMMANDS = """[platform]
kind = "command"
version = "cat /etc/fw-version"
install = "rauc install {image}"
reboot = "systemctl reboot"
confirm_boot = "rauc status mark-good"
rollback = "rauc status mark-bad booted"
factory_reset = "/usr/lib/acme/reset"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    key = tmp_path / "device.key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def _write(folder: Path, text: str, mode: int = 0o644) -> Path:
    path = folder / "agent.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


KEY_FILE = """state_dir = "state"
[connection]
key_file = "device.key"
device_id = "dev-1"
hub_host = "hub.example"
gateway_host = "127.0.0.5"
ca_file = "ca.pem"
"""

PROVISIONING = """[connection.provisioning]
provisioning_host = "127.0.0.9"
id_scope = "0ne0000ABCD"
registration_id = "sensor-7"
"""
DPS = (
    """state_dir = "state"
[connection]
key_file = "device.key"
ca_file = "ca.pem"
"""
    + PROVISIONING
)


def test_a_key_file_and_commands_make_the_connection_and_the_platform(folder: Path) -> None:
    text = 'handlers = ["acme.leds:install"]\n' + KEY_FILE + COMMANDS
    loaded = settings.load(_write(folder, text))
    assert loaded.state_dir == folder / "state"  # relative to the file's folder
    assert loaded.connection.ca_file == folder / "ca.pem"
    assert loaded.image_ca_file() == folder / "ca.pem"
    assert loaded.device_connection_string() == (
        f"HostName=hub.example;DeviceId=dev-1;SharedAccessKey={KEY};GatewayHostName=127.0.0.5"
    )
    assert loaded.device_id() == "dev-1"
    assert isinstance(loaded.platform, settings.CommandPlatformSettings)
    assert loaded.platform.install == "rauc install {image}"
    assert loaded.handlers == ["acme.leds:install"]
    assert KEY not in repr(loaded)


def test_command_line_options_override_the_file(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder)
    path = _write(folder, KEY_FILE + COMMANDS)
    overrides = {"connection_string": CONNECTION, "simulated": True, "initial_version": "3.0",
                 "state_dir": Path("elsewhere")}  # fmt: skip
    loaded = settings.load(path, overrides)
    assert loaded.device_connection_string() == CONNECTION
    assert loaded.connection.ca_file == folder / "ca.pem"  # kept from the file
    assert loaded.platform == settings.SimulatedPlatformSettings(
        kind="simulated", initial_version="3.0"
    )
    assert loaded.state_dir == folder / "elsewhere"
    alone = settings.load(None, {"connection_string": CONNECTION, "simulated": True,
                                 "state_dir": Path("s")})  # fmt: skip
    assert alone.platform.kind == "simulated"
    assert repr(KEY) not in repr(alone)


def test_a_provisioning_table_or_its_options_make_a_device_that_provisions_itself(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = settings.load(_write(folder, DPS + "retry_initial = 1\n" + SIMULATED))
    chosen = loaded.connection.provisioning
    assert chosen is not None
    assert (chosen.provisioning_host, chosen.id_scope, chosen.registration_id) == (
        "127.0.0.9", "0ne0000ABCD", "sensor-7",
    )  # fmt: skip
    assert (chosen.retry_initial, chosen.retry_max) == (1, 300)
    assert loaded.provisioning_key() == KEY
    assert loaded.secrets() == [KEY]
    monkeypatch.chdir(folder)
    # The options replace the file's hub (and its key, with --symmetric-key).
    other = "b3RoZXItZGV2aWNlLWtleS1mb3ItdGVzdHMtb25seQ=="
    overrides = {"dps_host": "127.0.0.10", "id_scope": "0ne0000EEEE", "registration_id": "r-2",
                 "symmetric_key": other}  # fmt: skip
    replaced = settings.load(_write(folder, KEY_FILE + SIMULATED), overrides)
    assert replaced.connection.key_file is None
    assert replaced.connection.device_id is None
    assert replaced.provisioning_key() == other
    assert other not in repr(replaced)
    alone = settings.load(None, {**overrides, "simulated": True, "state_dir": Path("s"),
                                 "ca_file": Path("ca.pem")})  # fmt: skip
    assert alone.connection.provisioning is not None
    assert alone.connection.provisioning.provisioning_host == "127.0.0.10"
    # A key in the settings file makes the file a secret: it must be private.
    inline = DPS.replace('key_file = "device.key"\n', "") + f'symmetric_key = "{KEY}"\n'
    path = _write(folder, inline + SIMULATED, mode=0o644)
    with pytest.raises(errors.InvalidSettings, match=r"mode 0644\); run `chmod 600") as caught:
        settings.load(path)
    assert caught.value.field == "connection.provisioning.symmetric_key"
    assert KEY not in str(caught.value)
    path.chmod(0o600)
    assert settings.load(path).provisioning_key() == KEY


BAD_FILES = [
    pytest.param(
        "colour = 3\n" + KEY_FILE + SIMULATED,
        "colour: unknown setting; check its spelling or remove it", id="unknown",
    ),
    pytest.param(KEY_FILE + 'gateway_hots = "h"\n' + SIMULATED,
                 "connection.gateway_hots: unknown setting; did you mean 'gateway_host'?",
                 id="misspelt"),
    pytest.param(KEY_FILE + 'log_level = "info"\n' + SIMULATED,
                 "connection.log_level: unknown in this table; it is a top-level setting: move it "
                 "above the first [table]", id="top-level-in-a-table"),
    pytest.param(KEY_FILE, 'platform: missing; add a [platform] table with kind = "command"',
                 id="no-platform"),
    pytest.param(KEY_FILE + '[platform]\nkind = "rauc"\n',
                 'platform.kind: must be "command" (runs your commands) or "simulated"',
                 id="bad-kind"),
    pytest.param(KEY_FILE + COMMANDS.replace(" {image}", ""),
                 "platform.install: the install command must use {image}", id="no-image"),
    pytest.param(KEY_FILE + COMMANDS.replace("{image}", "{img}"),
                 "platform.install: unknown placeholder {img} (available: {image}, {version})",
                 id="bad-placeholder"),
    pytest.param(KEY_FILE + COMMANDS.replace('reboot = "systemctl reboot"', ""),
                 "platform.reboot: missing; add reboot", id="missing-command"),
    pytest.param('handlers = ["acme.leds"]\n' + KEY_FILE + SIMULATED,
                 'handlers[0]: must be "module:attribute"', id="handler-shape"),
    pytest.param('log_level = "loud"\n' + KEY_FILE + SIMULATED,
                 "log_level: must be one of 'debug', 'info', 'warning' or 'error'", id="level"),
    pytest.param(KEY_FILE.replace('device_id = "dev-1"\n', "") + SIMULATED,
                 "connection: key_file needs device_id too; add them", id="no-device-id"),
    pytest.param('state_dir = "s"\n[connection]\nconnection_string = "HostName=h;DeviceId=d"\n'
                 + SIMULATED, "connection: connection_string lacks SharedAccessKey",
                 id="no-key-in-connection-string"),
    pytest.param(
        'state_dir = "s"\n[connection.provisioning]\nid_scope = "0ne00"\nregistration_id = "r"\n'
        + SIMULATED, "connection: provisioning needs the device's key: add key_file",
        id="dps-without-key",
    ),
    pytest.param(KEY_FILE + PROVISIONING + SIMULATED,
                 "connection: device_id and gateway_host and hub_host do not go with "
                 "provisioning (the provisioning service assigns the hub", id="dps-and-hub"),
    pytest.param(DPS + 'registraton_id = "r"\n' + SIMULATED,
                 "connection.provisioning.registraton_id: unknown setting; did you mean "
                 "'registration_id'?", id="dps-misspelt"),
    pytest.param(DPS.replace('"sensor-7"', '"Sensor 7"') + SIMULATED,
                 "connection.provisioning.registration_id: must be 1 to 128 lower-case letters",
                 id="dps-registration-id"),
    pytest.param(DPS.replace('key_file = "device.key"\n', "") + 'symmetric_key = "k3y!"\n'
                 + SIMULATED, "connection.provisioning.symmetric_key: must be the device's "
                 "base64 symmetric key", id="dps-bad-key"),
    pytest.param(DPS + "retry_initial = 60\nretry_max = 10\n" + SIMULATED,
                 "connection.provisioning: retry_initial must not exceed retry_max",
                 id="dps-retry"),
    pytest.param(KEY_FILE.replace("ca.pem", "missing.pem") + SIMULATED,
                 "missing.pem is not a readable file; fix the path", id="no-ca"),
    pytest.param(KEY_FILE + SIMULATED + '[trust]\nfirmware_trust_store = "keys"\n',
                 "trust.firmware_trust_store: ", id="no-trust-store"),
    pytest.param(KEY_FILE + "[platform\n", "not valid TOML: ", id="toml-syntax"),
    pytest.param(KEY_FILE.replace("state_dir", "# state_dir") + SIMULATED,
                 "state_dir: missing; add state_dir (or pass --state-dir)", id="no-state-dir"),
    pytest.param("max_image_size = -1\n" + KEY_FILE + SIMULATED,
                 "max_image_size: input should be greater than 0", id="negative"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_a_bad_file_is_refused_in_one_line_naming_the_setting_and_the_fix(
    folder: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(folder, text)
    assert cli.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"twinfleet-agent: error: {path}: ")
    assert expected in err
    assert err.count("\n") == 1
    assert KEY not in err


def test_key_files_and_settings_holding_a_key_must_be_private(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "device.key").chmod(0o640)
    path = _write(folder, KEY_FILE + SIMULATED)
    assert cli.main(["--config", str(path)]) == 2
    key_file = folder / "device.key"
    assert capsys.readouterr().err == (
        f"twinfleet-agent: error: {path}: connection.key_file: the key file {key_file} can be "
        f"read by group or others (mode 0640); run `chmod 600 {key_file}`\n"
    )
    key_file.chmod(0o600)
    linked = folder / "linked.key"
    linked.symlink_to(key_file)  # a link to a private key is as good as the key
    text = KEY_FILE.replace('"device.key"', '"linked.key"') + SIMULATED
    assert KEY in settings.load(_write(folder, text)).device_connection_string()
    path = _write(folder, KEY_FILE + SIMULATED)
    key_file.write_text("not a key\n")
    with pytest.raises(errors.InvalidSettings, match="must hold the device's base64"):
        settings.load(path)
    inline = f'state_dir = "s"\n[connection]\nconnection_string = "{CONNECTION}"\n' + SIMULATED
    path = _write(folder, inline, mode=0o644)
    with pytest.raises(errors.InvalidSettings, match=r"mode 0644\); run `chmod 600") as caught:
        settings.load(path)
    assert caught.value.field == "connection.connection_string"
    assert KEY not in str(caught.value)
    path.chmod(0o600)
    assert settings.load(path).device_connection_string() == CONNECTION


def test_without_a_file_the_options_must_say_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--state-dir", "s", "--connection-string", CONNECTION]) == 2
    assert capsys.readouterr().err == (
        "twinfleet-agent: error: command line: platform: missing; pass --simulated (or give a "
        "settings file with --config)\n"
    )
    assert cli.main(["--config", "/nonexistent/agent.toml"]) == 2
    assert "/nonexistent/agent.toml: no such file" in capsys.readouterr().err


def test_the_command_refuses_a_bad_file_as_a_process(folder: Path) -> None:
    path = _write(folder, KEY_FILE + COMMANDS.replace("kind", "knd"))
    result = subprocess.run(
        [sys.executable, "-m", "device_agent", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f'twinfleet-agent: error: {path}: platform.kind: missing; add kind = "command" (runs '
        'your commands) or kind = "simulated"\n'
    )


def test_handlers_are_loaded_as_module_attribute(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / "acme_handlers.py").write_text(
        "installed = []\ndef install(agent):\n    installed.append(agent)\nvalue = 3\n"
        "def broken(agent):\n    raise KeyError('leds')\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    target = object()
    loading.install_handlers(target, ["acme_handlers:install"])
    assert loading.resolve("acme_handlers:installed", "handlers[0]") == [target]
    for reference, message in [
        ("acme_nowhere:install", "handlers[0]: cannot import 'acme_nowhere'"),
        ("acme_handlers:missing", "handlers[0]: module 'acme_handlers' has no attribute"),
        ("acme_handlers:value", "handlers[0]: acme_handlers:value is not callable"),
        ("acme_handlers:broken", "handlers[0]: acme_handlers:broken(agent) failed: KeyError"),
    ]:
        with pytest.raises(errors.InvalidSettings) as caught:
            loading.install_handlers(target, [reference])
        assert str(caught.value).startswith(message)


def test_the_notifier_speaks_to_a_socket_path_and_honours_the_watchdog_pid(
    tmp_path: Path,
) -> None:
    import socket

    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(path)
        notifier = notifying.Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
        assert notifier.enabled
        assert notifier.watchdog_interval == 30.0
        notifier.notify(READY="1", STATUS="connecting")
        assert receiver.recv(100) == b"READY=1\nSTATUS=connecting"
        notifier.close()
    other = notifying.Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    assert other.watchdog_interval is None  # the pings are another process's job
    silent = notifying.Notifier({})
    assert not silent.enabled
    silent.notify(READY="1")  # outside systemd: nothing to tell, no error


def test_log_lines_are_one_per_event_masked_and_prefixed_for_the_journal() -> None:
    import logging

    formatter = cli._OneLine(journal=True, secrets=[KEY])
    try:
        raise ValueError(f"connecting with {CONNECTION} failed\nsecond line")
    except ValueError as exc:
        record = logging.LogRecord(
            "device_agent.x", logging.ERROR, __file__, 1, "failed: %s", (exc,), (type(exc), exc,
            exc.__traceback__),
        )  # fmt: skip
    line = formatter.format(record)
    assert line.startswith("<3>device_agent.x: failed: connecting with HostName=hub.example;")
    assert "\n" not in line
    assert "Traceback (most recent call last): | " in line
    assert KEY not in line
    assert "SharedAccessKey=***" in line
    info = logging.LogRecord("a", logging.INFO, __file__, 1, "token sig=abc%2F&se=1", (), None)
    assert formatter.format(info) == "<6>a: token sig=***&se=1"
    plain = cli._OneLine(journal=False, secrets=[]).format(info)
    assert plain.endswith(" INFO a: token sig=***&se=1")
    assert plain[:4].isdigit()  # a time stamp outside the journal


def test_the_printed_example_is_a_valid_settings_file(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--example"]) == 0
    printed = capsys.readouterr().out
    assert printed == settings.EXAMPLE
    loaded = settings.load(
        _write(folder, printed.replace("/etc/twinfleet/device.key", "device.key"))
    )
    assert loaded.platform.kind == "command"
    assert loaded.device_id() == "sensor-0042"


def test_the_settings_files_in_the_readme_and_the_docs_are_valid() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    page = (root / "docs" / "concepts" / "agent-on-a-device.md").read_text()
    for text in (
        readme.split("<<'TOML'\n", 1)[1].split("\nTOML\n", 1)[0],
        page.split("```toml\n", 1)[1].split("```", 1)[0],
    ):
        loaded = settings.AgentSettings.model_validate(tomllib.loads(text))
        assert loaded.platform.kind == "command"
