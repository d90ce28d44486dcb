"""Debian's ``prometheus`` run on a loopback port for a test, and a small client of its HTTP API.

Scrapes and rule evaluations run every second, so rates and recording rules have values a few
seconds after traffic. The process is always stopped (terminate, then kill) by the fixture.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

Sample = tuple[dict[str, str], float]


def _unix_time(rfc3339: str) -> float:
    """Unix time of a Prometheus RFC 3339 timestamp (fractions beyond microseconds dropped)."""
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert match, rfc3339
    whole, fraction, offset = match.groups()
    micro = (fraction or "")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{whole}.{micro}{offset.replace('Z', '+00:00')}").timestamp()


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """One Prometheus server process with its own configuration and storage."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        jobs: dict[str, Sequence[str]],
        rule_files: Sequence[Path],
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in jobs.items()
            ],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self._log = (workdir / "prometheus.log").open("w")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = workdir / "prometheus.log"

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit within 10 s)."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._log.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET an API path; the blocking call runs in a thread, off the event loop."""
        return await asyncio.to_thread(self._get, path, params)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for ``/-/ready``; fail with the server's log if it never gets there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                await asyncio.to_thread(urllib.request.urlopen, self.url + "/-/ready", None, 2)
                return
            except OSError:
                await asyncio.sleep(0.2)
        raise AssertionError(f"prometheus not ready:\n{self.log_path.read_text()[-3000:]}")

    async def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Instant query (now, or at the Unix time ``at``); samples as (labels, value)."""
        params = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        reply = await self.get("/api/v1/query", params)
        assert reply["status"] == "success", reply
        data = reply["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    async def value(self, expr: str, at: float | None = None) -> float:
        """The single value of an expression that must return exactly one sample."""
        samples = await self.query(expr, at)
        assert len(samples) == 1, (expr, samples)
        return samples[0][1]

    async def recent(self, expr: str, seconds: int) -> list[tuple[float, float]]:
        """(Unix time, value) of the raw samples of a single series over the last seconds."""
        reply = await self.get("/api/v1/query", {"query": f"{expr}[{seconds}s]"})
        assert reply["status"] == "success" and len(reply["data"]["result"]) == 1, reply
        return [(float(at), float(value)) for at, value in reply["data"]["result"][0]["values"]]

    async def wait_for(
        self, expr: str, check: Callable[[list[Sample]], bool], timeout: float = 30.0
    ) -> list[Sample]:
        """Poll ``expr`` until ``check`` accepts its samples; fail with the last ones."""
        deadline = time.monotonic() + timeout
        samples: list[Sample] = []
        while time.monotonic() < deadline:
            samples = await self.query(expr)
            if check(samples):
                return samples
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting on {expr!r}; last samples: {samples}")

    async def wait_rules_evaluated_after(self, moment: float, timeout: float = 30.0) -> None:
        """Wait until every rule group has been evaluated after the Unix time ``moment``.

        A scrape that is queryable at ``moment`` is seen by every later evaluation, so recorded
        series read after this reflect all the samples ingested before ``moment``.
        """
        deadline = time.monotonic() + timeout
        groups: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            groups = (await self.get("/api/v1/rules"))["data"]["groups"]
            if groups and all(_unix_time(group["lastEvaluation"]) > moment for group in groups):
                return
            await asyncio.sleep(0.2)
        last = {group["name"]: group["lastEvaluation"] for group in groups}
        raise AssertionError(f"rules not evaluated after {moment}: {last}")

    async def wait_for_value(self, expr: str, expected: float, timeout: float = 30.0) -> None:
        """Poll until ``expr`` returns exactly one sample equal to ``expected``."""
        await self.wait_for(expr, lambda s: len(s) == 1 and s[0][1] == expected, timeout)
