"""Service section: ``abstractor serve`` under load, and its memory per worker and per visitor.

Everything runs on 127.0.0.1, bounded in count and time:

* **load**: 50 concurrent clients (one keep-alive connection each, on uvloop) send 10,000
  ``POST /api/v1/analyze`` (held-out abstracts of the shared corpus, ``n=5``, the default
  ranking) to 2 worker processes started with the real ``abstractor serve`` command:
  errors, requests/s, p50 / p95 / p99 latency as the clients see it. The clients are a
  minimal asyncio HTTP/1.1 client (:class:`_Connection`): ``httpx.AsyncClient`` costs
  about 6 ms of client CPU per analysis here, so on 2 cores it measured itself more than
  the server; a shorter run with ``httpx.AsyncClient`` follows as a cross-check;
* **event loop vs thread pool**: the same load, shorter, against the same 2 workers with
  the facade called directly in the async handler (``ABSTRACTOR_SERVE_OFFLOAD=0``) or
  through ``run_in_threadpool`` (the service's default since this comparison), alternated;
* **memory** (psutil ``memory_full_info``: RSS, PSS, USS; MiB): every server process after
  a warm-up, for 1 worker and for 2; the marginal PSS of the second worker; the workers'
  growth during the load; then, once the load's connections are closed, the workers with
  ``--clients`` idle keep-alive connections open (each made one request) minus without:
  the marginal memory of a connected visitor;
* **visitors per GiB** against the Voilà dashboard, whose visitor costs a kernel
  (``VOILA_PSS_PER_VISITOR_MIB``, docs/dashboard.md: +178 MiB PSS per extra session on the
  60k model): by connected-visitor memory, and, conservatively, by capacity: the
  measured throughput serves ``throughput / VISITOR_RATE`` visitors who each send
  ``VISITOR_RATE`` request a second, in the 2-worker server's whole PSS.

The load client runs on the same 2-core machine as the server (its CPU share is
reported): the throughput is a floor. ``--quick`` (CI) runs 500 requests and no
comparison: its numbers only show that the benchmark works. Usage::

    python -m benchmarks.service [--artifact DIR] [--quick]   # -> benchmarks/results/service[-quick].json/.md
    python -m benchmarks --only service [--quick]             # as a section of the suite

The artifact: ``--artifact``, else the suite's cached 60k model, else ``artifacts/default``;
``--quick`` trains (once, cached) the suite's small 3k model.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    ROOT,
    DEFAULT_CACHE,
    load_average,
    log,
    machine_info,
    model_dir,
    percentiles,
    split,
    table,
    trained_model,
    write_json,
)

#: Marginal PSS of one more Voilà session on the 60k model (docs/dashboard.md, § memory).
VOILA_PSS_PER_VISITOR_MIB = 178.0
#: Requests a second an active visitor sends for the capacity-bound ratio (typing with
#: the page's debounce sends fewer on average; reading sends none).
VISITOR_RATE = 1.0
FULL = {"requests": 10_000, "clients": 50, "httpx_requests": 2_000, "compare_requests": 3_000, "compare_rounds": 2,
        "warmup": 300}
QUICK = {"requests": 500, "clients": 50, "httpx_requests": 0, "compare_requests": 0, "compare_rounds": 0, "warmup": 40}
#: Bounds: no run may take longer than this (seconds) whatever the machine's load.
LOAD_TIMEOUT = 600
START_TIMEOUT = 300
MIB = 2**20


def available() -> tuple[bool, str]:
    for module in ("httpx", "uvicorn", "psutil", "starlette"):
        try:
            __import__(module)
        except ImportError:
            return False, f"{module} is not installed"
    return True, ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``abstractor serve ARTIFACT --workers N`` in its own process group on 127.0.0.1."""

    def __init__(self, artifact: Path, workers: int, offload: bool | None = None) -> None:
        self.artifact, self.workers, self.offload = artifact, workers, offload
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.worker_pids: set[int] = set()
        self._log = tempfile.TemporaryFile()

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("ABSTRACTOR_SERVE_OFFLOAD", None)  # the service's default unless a mode is asked for
        if self.offload is not None:
            env["ABSTRACTOR_SERVE_OFFLOAD"] = "1" if self.offload else "0"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "abstractor_widgets.cli", "serve", str(self.artifact), "--port", str(self.port),
             "--workers", str(self.workers)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.perf_counter()
        self.wait_ready()
        self.start_seconds = time.perf_counter() - started
        return self

    def wait_ready(self) -> None:
        """Until every worker answered ``/ready``: concurrent probes on fresh connections (one
        at a time, an idle server may hand every connection to the same worker)."""
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        def probe(_: int) -> int | None:
            try:
                response = httpx.get(f"{self.base}/ready", timeout=5)
            except httpx.HTTPError:
                return None
            return response.json().get("pid") if response.status_code == 200 else None

        deadline = time.monotonic() + START_TIMEOUT
        with ThreadPoolExecutor(4 * self.workers) as pool:
            while len(self.worker_pids) < self.workers:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self._log.seek(0)
                    raise RuntimeError(f"the server did not start: {self._log.read().decode(errors='replace')[-2000:]}")
                self.worker_pids |= {pid for pid in pool.map(probe, range(4 * self.workers)) if pid}
                time.sleep(0.2)

    def processes(self) -> dict[str, list[Any]]:
        """The server's processes by role: the supervisor (N > 1) and the workers."""
        import psutil

        parent = psutil.Process(self.proc.pid)
        everyone = [parent] + parent.children(recursive=True)
        roles: dict[str, list[Any]] = {"supervisor": [], "worker": [], "other": []}
        for process in everyone:
            role = "worker" if process.pid in self.worker_pids else "supervisor" if process.pid == parent.pid else "other"
            roles[role].append(process)
        return roles

    def restarts(self) -> int:
        """Worker processes that are not the ones that answered ``/ready`` at start (uvicorn's
        supervisor restarts a worker that dies or misses its health check)."""
        import psutil

        children = psutil.Process(self.proc.pid).children()
        workers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        return sum(1 for c in workers if c.pid not in self.worker_pids)

    def log_tail(self, size: int = 3000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-size:]

    def idle_connections_memory(self, count: int) -> dict[str, Any]:
        """Memory with ``count`` open keep-alive connections that each made one request (what
        a connected visitor holds), measured before uvicorn's 5 s keep-alive timeout closes them."""
        connections = []
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                connections.append(sock)
            for sock in connections:
                sock.recv(65536)
            return self.memory()
        finally:
            for sock in connections:
                sock.close()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the workers have used so far."""
        import psutil

        total = 0.0
        for pid in self.worker_pids:
            try:
                total += sum(psutil.Process(pid).cpu_times()[:2])
            except psutil.NoSuchProcess:  # restarted: counted in restarts()
                pass
        return total

    def measured_load(self, texts: list[str], requests: int, clients: int, after: Any = None) -> dict[str, Any]:
        """:func:`load`, plus the workers' CPU milliseconds per request (load-independent-ish:
        what a request costs the server, whoever else uses the machine)."""
        cpu = self.cpu_seconds()
        result = load(self.base, texts, requests, clients, after=after)
        if result["completed"]:
            result["server_cpu_ms_per_request"] = round((self.cpu_seconds() - cpu) * 1000 / result["completed"], 3)
        return result

    def memory(self) -> dict[str, Any]:
        """RSS / PSS / USS (MiB) of every server process, and their totals."""
        out: dict[str, Any] = {}
        for role, processes in self.processes().items():
            rows = []
            for process in processes:
                info = process.memory_full_info()
                row = {"pid": process.pid, "rss": info.rss / MIB, "pss": info.pss / MIB, "uss": info.uss / MIB}
                if role == "worker":  # how the kernel spread the clients' connections
                    row["connections"] = sum(1 for c in process.net_connections(kind="tcp") if c.status == "ESTABLISHED")
                rows.append(row)
            if rows:
                out[role] = rows
        out["total"] = {k: sum(r[k] for rows in out.values() for r in rows) for k in ("rss", "pss", "uss")}
        return out

    def __exit__(self, *exc: Any) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        self._log.close()


async def _load(base: str, texts: list[str], requests: int, clients: int,
                after: Any = None) -> dict[str, Any]:
    """``requests`` analyses from ``clients`` concurrent keep-alive clients; ``after()`` runs
    with their connections still open."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=60)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counter = itertools.count()
    bodies = [json.dumps({"text": t, "n": 5}).encode() for t in texts]
    headers = {"content-type": "application/json"}
    stop_at = time.perf_counter() + LOAD_TIMEOUT
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        async def client() -> None:
            while True:
                i = next(counter)
                if i >= requests or time.perf_counter() > stop_at:
                    return
                t0 = time.perf_counter()
                try:
                    response = await http.post("/api/v1/analyze", content=bodies[i % len(bodies)], headers=headers)
                    content = response.content
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    errors[str(response.status_code)] += 1
                elif i % 97 == 0 and "spans" not in json.loads(content):  # spot-check the answers
                    errors["malformed"] += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        seconds = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
        extra = after() if after is not None else None
    return _summary(latencies, errors, seconds, client_cpu, stop_at, extra, "httpx.AsyncClient")


class _Connection:
    """A minimal HTTP/1.1 keep-alive client (asyncio streams): a pre-encoded request out,
    status, headers and ``Content-Length`` bytes back. About a tenth of httpx's CPU per
    request, so that the load client does not take the server's cores."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _raw_load(base: str, texts: list[str], requests: int, clients: int, after: Any = None) -> dict[str, Any]:
    """As :func:`_load`, with :class:`_Connection` clients instead of httpx."""
    host, port = base.rsplit("//", 1)[1].split(":")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counter = itertools.count()
    requests_bytes = []
    for text in texts:
        body = json.dumps({"text": text, "n": 5}).encode()
        requests_bytes.append(b"POST /api/v1/analyze HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (host.encode(), port.encode(), len(body), body))
    stop_at = time.perf_counter() + LOAD_TIMEOUT
    connections = [_Connection(host, int(port)) for _ in range(clients)]

    async def client(connection: _Connection) -> None:
        while True:
            i = next(counter)
            if i >= requests or time.perf_counter() > stop_at:
                return
            t0 = time.perf_counter()
            try:
                status, content = await connection.post(requests_bytes[i % len(requests_bytes)])
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                errors[type(exc).__name__] += 1
                connection.close()
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                errors[str(status)] += 1
            elif i % 97 == 0 and "spans" not in json.loads(content):  # spot-check the answers
                errors["malformed"] += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    seconds = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    extra = after() if after is not None else None
    for connection in connections:
        connection.close()
    return _summary(latencies, errors, seconds, client_cpu, stop_at, extra, "raw asyncio HTTP/1.1")


def _summary(latencies: list[float], errors: Counter[str], seconds: float, client_cpu: float, stop_at: float,
             extra: Any, client: str) -> dict[str, Any]:
    sent = len(latencies) + sum(v for k, v in errors.items() if not k.isdigit() and k != "malformed")
    return {
        "client": client,
        "requests": sent,
        "completed": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1) if seconds else None,
        "latency_ms": percentiles(latencies),
        "client_cpu_share": round(client_cpu / seconds, 2) if seconds else None,  # cores the load client used
        "timed_out": time.perf_counter() > stop_at,
        "after": extra,
    }


def load(base: str, texts: list[str], requests: int, clients: int, after: Any = None,
         client: str = "raw") -> dict[str, Any]:
    """Run a load (``client`` "raw" or "httpx") on uvloop; see :func:`_load`."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        runner = asyncio.run
    function = _raw_load if client == "raw" else _load
    return runner(function(base, texts, requests, clients, after))


def _artifact(cache: Path, quick: bool, artifact: Path | None) -> Path:
    if artifact is not None:
        return artifact
    if quick:
        trained_model(cache, 3_000, n_topics=20, passes=2)  # the query section's quick model (cached)
        return model_dir(cache, 3_000, 20, 2)
    cached = model_dir(cache, None, 20, 5)
    if (cached / "manifest.json").is_file():
        return cached
    default = Path(os.environ.get("ABSTRACTOR_ARTIFACT", ROOT / "artifacts" / "default"))
    if (default / "manifest.json").is_file():
        return default
    trained_model(cache, None, n_topics=20, passes=5)
    return cached


def _mib(value: float) -> float:
    return round(value, 2)


def run(cache: Path, quick: bool = False, artifact: Path | None = None, **_: Any) -> dict[str, Any]:
    """Measure; returns the section's JSON (see the module docstring)."""
    sizes = QUICK if quick else FULL
    path = _artifact(Path(cache), quick, artifact)
    _, held_out = split(3_000 if quick else None)
    texts = held_out["abstract"].tolist()
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {"artifact": str(path), "documents": manifest.get("n_documents"),
                              "topics": manifest.get("n_topics"), "sizes": sizes,
                              "voila_pss_per_visitor_mib": VOILA_PSS_PER_VISITOR_MIB, "visitor_rate": VISITOR_RATE}
    clients = sizes["clients"]

    log(f"  1 worker on {path} ...")
    with Server(path, 1) as one:
        load(one.base, texts, sizes["warmup"], 4)
        result["one_worker"] = {"start_seconds": round(one.start_seconds, 1), "memory": one.memory()}

    log("  2 workers: warm-up, memory, then the main load ...")
    with Server(path, 2) as two:
        load(two.base, texts, sizes["warmup"], 8)
        time.sleep(6)  # uvicorn closes idle keep-alive connections after 5 s: none left open
        before = two.memory()
        main = two.measured_load(texts, sizes["requests"], clients)
        main.pop("after")
        log(f"  {main['completed']:,} requests in {main['seconds']} s: {main['requests_per_s']} req/s, "
            f"p50 {main['latency_ms']['p50']:.1f} ms, p99 {main['latency_ms']['p99']:.1f} ms, {main['errors']} errors")
        time.sleep(6)
        after = two.memory()
        with_connections = two.idle_connections_memory(clients)
        result["two_workers"] = {"start_seconds": round(two.start_seconds, 1), "memory_idle": before,
                                 "memory_after_load": after, "memory_with_connections": with_connections, "load": main}
        if sizes["httpx_requests"]:
            log(f"  the same with httpx.AsyncClient ({sizes['httpx_requests']:,} requests) ...")
            cross = load(two.base, texts, sizes["httpx_requests"], clients, client="httpx")
            cross.pop("after")
            result["two_workers"]["load_httpx"] = cross
        result["two_workers"]["worker_restarts"] = two.restarts()
        if result["two_workers"]["worker_restarts"] or main["errors"]:
            result["two_workers"]["server_log_tail"] = two.log_tail()

    comparison: dict[str, list[dict[str, Any]]] = {"event-loop": [], "thread-pool": []}  # none in --quick
    for round_ in range(sizes["compare_rounds"]):
        for mode in ("event-loop", "thread-pool") if round_ % 2 == 0 else ("thread-pool", "event-loop"):
            log(f"  event loop vs thread pool, round {round_ + 1}: {mode} ...")
            with Server(path, 2, offload=mode == "thread-pool") as server:
                load(server.base, texts, sizes["warmup"], 8)
                run_ = server.measured_load(texts, sizes["compare_requests"], clients)
                run_.pop("after")
                comparison[mode].append(run_)
    result["offload_comparison"] = comparison
    summarize(result)
    return result


def summarize(result: dict[str, Any]) -> None:
    """The derived figures: marginal memory, visitors per GiB, goals."""
    one = result["one_worker"]["memory"]
    two = result["two_workers"]
    workers_idle = two["memory_idle"]["worker"]
    workers_settled = two.get("memory_after_load", two["memory_idle"])["worker"]
    workers_busy = two["memory_with_connections"]["worker"]
    clients = result["sizes"]["clients"]
    worker_pss = [w["pss"] for w in workers_idle]
    marginal_worker = sum(worker_pss) - one["worker" if "worker" in one else "supervisor"][0]["pss"]
    per_visitor = (sum(w["pss"] for w in workers_busy) - sum(w["pss"] for w in workers_settled)) / clients
    per_visitor_uss = (sum(w["uss"] for w in workers_busy) - sum(w["uss"] for w in workers_settled)) / clients
    throughput = two["load"]["requests_per_s"] or 0.0
    total_pss = max(two["memory_idle"]["total"]["pss"], two.get("memory_after_load", two["memory_idle"])["total"]["pss"])
    voila_per_gib = 1024 / result["voila_pss_per_visitor_mib"]
    # a visitor costs at least a few KiB (a connection's buffers): never divide by ~0
    visitor_floor_mib = max(per_visitor, 0.01)
    capacity_visitors = throughput / result["visitor_rate"]
    derived = {
        "worker_pss_mib": [_mib(p) for p in worker_pss],
        "supervisor_pss_mib": _mib(sum(p["pss"] for p in two["memory_idle"].get("supervisor", []))),
        "one_worker_pss_mib": _mib(one["total"]["pss"]),
        "two_workers_total_pss_mib": _mib(total_pss),
        "marginal_pss_per_extra_worker_mib": _mib(marginal_worker),
        "workers_pss_growth_during_load_mib": _mib(sum(w["pss"] for w in workers_settled) - sum(worker_pss)),
        "worker_restarts": two.get("worker_restarts", 0),
        "marginal_pss_per_connected_visitor_mib": round(per_visitor, 4),
        "marginal_uss_per_connected_visitor_mib": round(per_visitor_uss, 4),
        "voila_visitors_per_gib": round(voila_per_gib, 2),
        "visitors_per_gib_by_connection_memory": round(1024 / visitor_floor_mib),
        "capacity_visitors": round(capacity_visitors),
        "visitors_per_gib_by_capacity": round(capacity_visitors / (total_pss / 1024), 1) if total_pss else None,
    }
    derived["ratio_vs_voila_by_connection_memory"] = round(derived["visitors_per_gib_by_connection_memory"] / voila_per_gib)
    derived["ratio_vs_voila_by_capacity"] = round((derived["visitors_per_gib_by_capacity"] or 0) / voila_per_gib, 1)
    comparison = result.get("offload_comparison") or {}
    for mode, runs in comparison.items():
        if runs:
            derived[f"{mode}_requests_per_s"] = [r["requests_per_s"] for r in runs]
            derived[f"{mode}_p50_ms"] = [round(r["latency_ms"]["p50"], 1) for r in runs]
            derived[f"{mode}_p99_ms"] = [round(r["latency_ms"]["p99"], 1) for r in runs]
    cpu_ms = two["load"].get("server_cpu_ms_per_request")
    if cpu_ms:
        derived["server_cpu_ms_per_request"] = cpu_ms
        # what 2 idle cores could serve: an estimate from the CPU a request costs, not a measurement
        derived["estimated_requests_per_s_on_2_idle_cores"] = round(2 * 1000 / cpu_ms)
    for mode, runs in comparison.items():
        if runs and all("server_cpu_ms_per_request" in r for r in runs):
            derived[f"{mode}_server_cpu_ms_per_request"] = [r["server_cpu_ms_per_request"] for r in runs]
    derived["goals"] = {
        "zero_errors": two["load"]["errors"] == 0,
        "at_least_400_requests_per_s": throughput >= 400,
        "at_least_50x_voila_visitors_per_gib": derived["ratio_vs_voila_by_capacity"] >= 50,
    }
    result["derived"] = derived


def tables(result: dict[str, Any]) -> str:
    if "derived" not in result:
        return f"\nService: {result.get('skipped') or 'failed'}\n"
    d, main = result["derived"], result["two_workers"]["load"]
    lat = main["latency_ms"]
    rows = [
        {"measure": f"{main['completed']:,} analyze requests, {result['sizes']['clients']} clients, 2 workers: errors",
         "value": main["errors"]},
        {"measure": "throughput (requests/s)", "value": main["requests_per_s"]},
        {"measure": "latency p50 / p95 / p99 (ms)", "value": f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}"},
        {"measure": "load client's own CPU (cores)", "value": main["client_cpu_share"]},
        {"measure": "idle visitor connections per worker (memory step)",
         "value": ", ".join(str(w.get("connections")) for w in result["two_workers"]["memory_with_connections"]["worker"])},
    ]
    cross = result["two_workers"].get("load_httpx")
    if cross:
        rows.append({"measure": f"httpx.AsyncClient, {cross['completed']:,} requests: errors; requests/s; p50 / p99 (ms); "
                                "client CPU (cores)",
                     "value": f"{cross['errors']}; {cross['requests_per_s']}; {cross['latency_ms']['p50']:.1f} / "
                              f"{cross['latency_ms']['p99']:.1f}; {cross['client_cpu_share']}"})
    if "server_cpu_ms_per_request" in d:
        rows.append({"measure": "server CPU per request (ms); estimated requests/s on 2 idle cores",
                     "value": f"{d['server_cpu_ms_per_request']}; {d['estimated_requests_per_s_on_2_idle_cores']:,}"})
    for mode in ("event-loop", "thread-pool"):
        if f"{mode}_requests_per_s" in d:
            rows.append({"measure": f"{mode}: requests/s; p50; p99 (ms); server CPU per request (ms), per round",
                         "value": f"{d[f'{mode}_requests_per_s']}; {d[f'{mode}_p50_ms']}; {d[f'{mode}_p99_ms']}; "
                                  f"{d.get(f'{mode}_server_cpu_ms_per_request')}"})
    rows += [
        {"measure": "PSS per worker (MiB)", "value": ", ".join(f"{p:.1f}" for p in d["worker_pss_mib"])},
        {"measure": "supervisor PSS (MiB)", "value": d["supervisor_pss_mib"]},
        {"measure": "1 worker, total PSS (MiB)", "value": d["one_worker_pss_mib"]},
        {"measure": "2 workers + supervisor, total PSS, after the load (MiB)", "value": d["two_workers_total_pss_mib"]},
        {"measure": "marginal PSS per extra worker (MiB)", "value": d["marginal_pss_per_extra_worker_mib"]},
        {"measure": "workers' PSS growth during the load (MiB); worker restarts",
         "value": f"{d['workers_pss_growth_during_load_mib']}; {d['worker_restarts']}"},
        {"measure": "marginal PSS / USS per connected visitor (MiB)",
         "value": f"{d['marginal_pss_per_connected_visitor_mib']} / {d['marginal_uss_per_connected_visitor_mib']}"},
        {"measure": f"Voilà: visitors per GiB (+{result['voila_pss_per_visitor_mib']:.0f} MiB PSS each)",
         "value": d["voila_visitors_per_gib"]},
        {"measure": "service: visitors per GiB by connection memory (ratio to Voilà)",
         "value": f"{d['visitors_per_gib_by_connection_memory']:,} ({d['ratio_vs_voila_by_connection_memory']:,}x)"},
        {"measure": f"service: visitors per GiB by capacity at {result['visitor_rate']:g} req/s each (ratio)",
         "value": f"{d['visitors_per_gib_by_capacity']:,} ({d['ratio_vs_voila_by_capacity']}x)"},
    ]
    return table(rows, title=f"Service (abstractor serve, {result['documents']:,} documents, K={result['topics']}; "
                             "benchmarks/service.py)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=None, help="model to serve (default: see the docstring)")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests on the small model (CI)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--requests", type=int, default=None, help="requests of the main load")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/service[-quick].json)")
    args = parser.parse_args(argv)
    if args.requests is not None:
        (QUICK if args.quick else FULL)["requests"] = max(1, min(args.requests, 100_000))
    args.cache.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    started = time.perf_counter()
    result = run(args.cache, quick=args.quick, artifact=args.artifact)
    result["meta"] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - started, 1),
                      "load_average_before": load_before, "load_average_after": load_average()}
    out = args.out or RESULTS / ("service-quick.json" if args.quick else "service.json")
    write_json(out, {"quick": args.quick, "machine": machine_info(), "sections": {"service": result}})
    text = tables(result)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
