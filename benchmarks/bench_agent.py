"""Device agent: verify (hash-while-writing download) throughput against plain hashlib.sha256
over the same 512 MB file, and the agent process's peak RSS growth while downloading it."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

from device_agent import downloading

SIZE = 512 * 1024 * 1024


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "image.bin"
        block = os.urandom(1024 * 1024)
        with source.open("wb") as out:
            for _ in range(SIZE // len(block)):
                out.write(block)
        started = time.perf_counter()
        digest = hashlib.sha256()
        with source.open("rb") as image:
            while chunk := image.read(downloading.CHUNK):
                digest.update(chunk)
        plain = time.perf_counter() - started
        handler = functools.partial(_QuietHandler, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/image.bin"
        try:
            before = _peak_rss_mib()
            started = time.perf_counter()
            ours = downloading.download(url, Path(tmp) / "copy.bin", max_size=SIZE)
            elapsed = time.perf_counter() - started
        finally:
            server.shutdown()
            server.server_close()
        growth = _peak_rss_mib() - before
        assert ours == digest.hexdigest()
        mb = SIZE / 1e6
        print(f"   plain hashlib.sha256 read+hash: {mb / plain:,.0f} MB/s")
        print(f"   agent download over HTTP (stream, write, hash): {mb / elapsed:,.0f} MB/s, "
              f"ratio {plain / elapsed:.2f} of plain hashing")  # fmt: skip
        print(f"   peak RSS growth while downloading 512 MB: {growth:.1f} MiB (target < 20 MiB)")
