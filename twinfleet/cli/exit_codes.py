"""What `twinfleet` exits with, so scripts and CI can tell outcomes apart.

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success; for `campaign run`: the campaign completed and every device succeeded
1     an error: the hub refused a request, a query is wrong, a file cannot be read, ...
2     a usage error: a missing or malformed option, or no hub named
3     `campaign run`: the campaign aborted (failure threshold or a health gate)
4     `campaign run`: the campaign completed, but some devices failed or timed out
5     `campaign run`: the campaign was cancelled
====  =====================================================================================
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode", "campaign_exit_code"]


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CAMPAIGN_ABORTED = 3
    CAMPAIGN_DEVICES_FAILED = 4
    CAMPAIGN_CANCELLED = 5


def campaign_exit_code(status: str, failed: int) -> ExitCode:
    """The exit code of `campaign run` for a campaign that ended with `status`."""
    if status == "aborted":
        return ExitCode.CAMPAIGN_ABORTED
    if status == "cancelled":
        return ExitCode.CAMPAIGN_CANCELLED
    return ExitCode.CAMPAIGN_DEVICES_FAILED if failed else ExitCode.OK
