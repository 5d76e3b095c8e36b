"""The agent's firmware download (stream to disk, SHA-256 while writing) of a 512 MiB image from
the hub's artifacts endpoint, beside `curl -o` then `sha256sum` of the same signed URL.

Both read the same file from the same `twinfleet hub serve` over HTTPS (the hub's CA), write it
to the same disk and hash it; the agent does the two at once, curl and sha256sum one after the
other, as a shell script on a device would. Each is timed twice, alternating, and the better of
the two counts. `BENCH_IMAGE_MIB` sets the image size (default 512).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import _results
from benchmarks._hubs import hub_process
from device_agent import downloading
from twin_manager import ArtifactStore

MIB = int(os.environ.get("BENCH_IMAGE_MIB", "512"))
SIZE = MIB * 1024 * 1024
HOST = "127.0.0.209"


def _curl_then_sha256sum(url: str, ca_file: str, target: Path) -> str:
    subprocess.run(["curl", "--silent", "--show-error", "--fail", "--cacert", ca_file,
                    "--output", str(target), url], check=True)  # fmt: skip
    done = subprocess.run(["sha256sum", str(target)], check=True, capture_output=True, text=True)
    return done.stdout.split()[0]


def _agent(url: str, ca_file: str, target: Path) -> str:
    return downloading.download(url, target, max_size=SIZE, ca_file=ca_file, timeout=300)


def main() -> None:
    if shutil.which("curl") is None or shutil.which("sha256sum") is None:
        print("   curl or sha256sum is missing: no anchor, no row", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = work / "image.bin"
        block = os.urandom(1024 * 1024)
        with image.open("wb") as out:
            for _ in range(MIB):
                out.write(block)
        with hub_process(work / "hub", HOST) as (info, _pid):
            store = ArtifactStore(
                info["serviceConnectionString"], ca_file=info["caCertificatePath"]
            )
            artifact = store.upload(image, name="fw-big.bin", ttl=3600)
            assert artifact.url is not None
            image.unlink()
            runs: dict[str, list[float]] = {"agent": [], "curl": []}
            ways: dict[str, Callable[[str, str, Path], str]] = {
                "agent": _agent, "curl": _curl_then_sha256sum,
            }  # fmt: skip
            for order in (("agent", "curl"), ("curl", "agent")):
                for way in order:
                    target = work / f"{way}.bin"
                    started = time.perf_counter()
                    digest = ways[way](artifact.url, info["caCertificatePath"], target)
                    runs[way].append(time.perf_counter() - started)
                    assert digest == artifact.sha256, (way, digest, artifact.sha256)
                    target.unlink()
    ours, theirs = min(runs["agent"]), min(runs["curl"])
    mb = SIZE / 1e6
    print(f"   agent download + SHA-256: {mb / ours:,.0f} MB/s; curl -o then sha256sum: "
          f"{mb / theirs:,.0f} MB/s", flush=True)  # fmt: skip
    _results.record(_results.Row(
        measure=f"agent download + SHA-256 of a {MIB} MiB image", value=mb / ours, unit="MB/s",
        anchor="curl -o then sha256sum, same URL", anchor_value=mb / theirs,
        goal=">= 0.9x curl + sha256sum", met=ours <= theirs / 0.9,
    ))  # fmt: skip
