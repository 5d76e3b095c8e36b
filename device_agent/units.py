"""The systemd unit that runs `twinfleet-agent` (`twinfleet-agent --systemd-unit` prints it).

The repository's `packaging/twinfleet-agent.service` is this unit for an install in
`/opt/twinfleet`; a test keeps the two identical.
"""

from __future__ import annotations

__all__ = ["UNIT", "render"]

UNIT = """\
# The twinfleet device agent as a systemd service (written by `twinfleet-agent --systemd-unit`).
#
# Install: python3 -m venv /opt/twinfleet && /opt/twinfleet/bin/pip install 'twinfleet[agent]';
# write /etc/twinfleet/agent.toml (and the device key, mode 0600), then:
#   /opt/twinfleet/bin/twinfleet-agent --systemd-unit > /etc/systemd/system/twinfleet-agent.service
#   systemctl daemon-reload && systemctl enable --now twinfleet-agent
#   journalctl -u twinfleet-agent -f
[Unit]
Description=twinfleet device agent (device twin reconciliation)
Wants=network-online.target
After=network-online.target time-sync.target

[Service]
# The agent sends READY=1 once its settings are valid and it starts connecting, STATUS= as it
# connects, and WATCHDOG=1 from its event loop every WatchdogSec/2: a wedged agent is restarted.
Type=notify
NotifyAccess=main
ExecStart={command} --config {config}
WatchdogSec=60
Restart=always
RestartSec=5
# Exit status 2 is a wrong settings file: restarting cannot fix it (see `systemctl status`).
RestartPreventExitStatus=2
# On SIGTERM the agent reports what it can and exits; a firmware download resumes at next start.
TimeoutStopSec=30
# /var/lib/twinfleet: the state_dir of agent.toml (firmware state, downloads, configuration).
StateDirectory=twinfleet
StateDirectoryMode=0700
ConfigurationDirectory=twinfleet
# The platform's commands (install to the inactive slot, reboot, factory reset) need root.
# Installing with a tool that runs as another user? Set User= and grant it those commands.
User=root
# One line per event on stderr; journald adds the time and reads the <priority> prefixes.
StandardOutput=journal
StandardError=journal
SyslogIdentifier=twinfleet-agent

[Install]
WantedBy=multi-user.target
"""


def render(command: str, config: str) -> str:
    """The unit, starting `command` (the agent's executable) with the settings file `config`."""
    quoted = f'"{config}"' if any(c.isspace() for c in config) else config
    return UNIT.format(command=command, config=quoted)
