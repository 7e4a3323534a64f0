"""One chaos run on one database: start the processes, let the partner send
its script while the chaos monkey kills and restarts them, then check the end
state against the ground truth computed from the script alone.

On PostgreSQL: ``servers`` x ``idemsync serve --workers N``, one
``idemsync projections run`` (``[projections] in_serve = false``), and a
restart of PostgreSQL itself. On SQLite: one ``idemsync serve`` (one worker)
and the runner as a separate process (SQLite takes one writer at a time, from
any process: the runner's batches and the server's commits take turns).

The monkey acts every few seconds, on a random process that is up:
``server`` SIGKILLs a server's whole process group (the host dies);
``supervisor`` SIGKILLs only the uvicorn supervisor, lets its orphaned
workers serve for a moment, then kills them; ``worker`` SIGKILLs one worker,
which uvicorn replaces (checked); ``runner`` SIGKILLs the projection runner.
A killed process is started again after a short pause (and again until it
is up). With several servers, a server or supervisor kill waits until all of
them are up: one at a time goes down, the others serve. The first actions are
one of each kind, so that a short run sees them all.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shlex
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos import checks
from tests.chaos.processes import Runner, reap_orphans, set_subreaper
from tests.chaos.script import (
    ACME,
    HUB,
    NAMESPACE,
    Chunk,
    chunk,
    chunks_for,
    keys_of,
    truth_of,
)
from tests.chaos.simulator import Simulator, Traffic
from tests.partner import TOKENS, GitHubPartner, Partner
from tests.server_process import Process, ServerProcess, serve_env, tail

STARTUP_SECONDS = 60.0
SETTLE_SECONDS = 120.0
CATCH_UP_STALL_SECONDS = 60.0
WORKER_REPLACED_SECONDS = 30.0
RUNNER_READY = "running projections"
"""What ``idemsync projections run`` logs once it has started."""
FEED_AHEAD = 2000
"""In a timed run, a new chunk is queued when fewer sends than this wait."""


def config_text() -> str:
    from infrastructure.access import token_hash

    return f"""\
[database]
lock_timeout_seconds = 2.0
pool_size = 2

[server]
retry_after_seconds = 1

[projections]
in_serve = false
batch_size = 500
poll_seconds = 0.2

[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET"]
store_headers = ["x-chaos-attempt"]
namespace = "{NAMESPACE}"

[sources.hub]
scheme = "github"
mapping = "standard"
secrets = ["env:HUB_SECRET"]
store_headers = ["x-chaos-attempt"]
namespace = "{NAMESPACE}"

[tokens.chaos-auditor]
role = "auditor"
sha256 = "{token_hash(TOKENS["auditor"])}"
"""


def postgres_restart_command() -> list[str] | None:
    """How to restart the local PostgreSQL: ``IDEMSYNC_CHAOS_PG_RESTART`` (a
    shell command; ``none``: do not), else ``pg_ctlcluster`` on the newest
    cluster in /etc/postgresql (needs root, as in CI)."""
    given = os.environ.get("IDEMSYNC_CHAOS_PG_RESTART")
    if given is not None:
        return None if given.strip() == "none" else ["sh", "-c", given]
    versions = sorted(
        (p.name for p in Path("/etc/postgresql").glob("*") if p.name.isdigit()),
        key=int,
    )
    if not versions:
        return None
    return [
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        versions[-1],
        "main",
        "restart",
    ]


@dataclass
class Options:
    backend: str
    """``postgres`` or ``sqlite``."""
    database_url: str
    directory: Path
    seed: int
    sends: int | None = None
    """A fixed-size run: at least this many deliveries in the script."""
    duration: float | None = None
    """A timed run: queue chunks for this many seconds, then drain."""
    servers: int = 2
    workers: int = 2
    threads: int = 8
    chaos_every: tuple[float, float] = (2.0, 5.0)
    down_for: tuple[float, float] = (0.3, 2.5)
    postgres_restart: list[str] | None = None
    postgres_restart_at: float = 0.4
    """Fraction of the run (sends acknowledged, or time) at which PostgreSQL
    restarts."""
    audit_sample: int = 120
    log: Callable[[str], None] = print


@dataclass
class Chaos:
    """What the monkey did and what it saw."""

    kills: Counter[str] = field(default_factory=Counter)
    postgres_restarts: int = 0
    postgres_restart_seconds: list[float] = field(default_factory=list)
    postgres_restart_errors: list[str] = field(default_factory=list)
    start_failures: Counter[str] = field(default_factory=Counter)
    self_exits: list[str] = field(default_factory=list)
    workers_replaced: int = 0
    workers_not_replaced: list[str] = field(default_factory=list)
    orphans_killed: int = 0
    orphans_reaped: int = 0
    start_seconds: dict[str, list[float]] = field(
        default_factory=lambda: {"server": [], "runner": []}
    )
    """From each start to healthy (a server) or running (the runner)."""
    timeline: list[str] = field(default_factory=list)


@dataclass
class Report:
    options: Options
    traffic: Traffic
    chaos: Chaos
    chunks: int = 0
    events: int = 0
    script_sends: int = 0
    script_kinds: Counter[str] = field(default_factory=Counter)
    script_keys: Counter[str] = field(default_factory=Counter)
    """Keys sent, by source."""
    script_resends: Counter[str] = field(default_factory=Counter)
    """Re-sends under fresh keys, by source."""
    resend_answers: Counter[str] = field(default_factory=Counter)
    """First answers of the keys that re-send an event, by source."""
    traffic_seconds: float = 0.0
    total_seconds: float = 0.0
    catch_up_seconds: float = 0.0
    results: list[checks.Result] = field(default_factory=list)
    first_outcomes: Counter[str] = field(default_factory=Counter)
    log_findings: Counter[str] = field(default_factory=Counter)
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent starting, settling, computing the truth, checking,
    stopping."""

    @property
    def problems(self) -> list[str]:
        return [f"{r.name}: {r.detail}" for r in self.results if not r.passed]


class Managed:
    """A process and its life: up, down until a time, or starting."""

    def __init__(self, process: Process, kind: str) -> None:
        self.process = process
        self.kind = kind
        self.state = "down"
        self.restart_at = 0.0
        self.started_at = 0.0
        self.worker_check: tuple[int, float] | None = None

    @property
    def name(self) -> str:
        return self.process.name


class Monkey:
    """Kills and restarts the processes; ``tick`` does one step of it."""

    def __init__(
        self,
        options: Options,
        servers: Sequence[ServerProcess],
        runner: Runner,
        chaos: Chaos,
    ) -> None:
        self.options = options
        self.rng = random.Random(options.seed * 7 + 1)
        self.servers = [Managed(server, "server") for server in servers]
        self.runner = Managed(runner, "runner")
        self.chaos = chaos
        self.began = time.monotonic()
        kinds = ["server", "runner"]
        if options.workers > 1:
            kinds += ["supervisor", "worker"]
        self.rng.shuffle(kinds)
        self.first_kinds = kinds
        self.pending_kind: str | None = None
        """The kind drawn last, waiting for a target that is up."""
        self.next_action = time.monotonic() + self.rng.uniform(*options.chaos_every)
        self.postgres_thread: threading.Thread | None = None
        self.postgres_down = threading.Event()
        self.enabled = True
        self.next_reap = 0.0

    @property
    def managed(self) -> list[Managed]:
        return [*self.servers, self.runner]

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.began:7.1f}s {text}"
        self.chaos.timeline.append(line)

    # -- starting ---------------------------------------------------------

    def start_all(self) -> None:
        for each in self.managed:
            self._start(each)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.all_up():
            self._watch()
            if time.monotonic() > deadline:
                down = [m.name for m in self.managed if m.state != "up"]
                logs = "\n".join(
                    f"--- {m.name}:\n{tail(m.process.log_path)}" for m in self.managed
                )
                raise RuntimeError(
                    f"not up after {STARTUP_SECONDS:.0f} s: {down}\n{logs}"
                )
            time.sleep(0.1)

    def all_up(self) -> bool:
        return all(each.state == "up" for each in self.managed)

    def _start(self, each: Managed) -> None:
        each.process.start()
        each.state = "starting"
        each.started_at = time.monotonic()

    # -- one step ---------------------------------------------------------

    def tick(self, progress: float) -> None:
        """Watch the processes; restart what is due; act when it is time.
        ``progress`` (0 to 1) places the PostgreSQL restart."""
        self._watch()
        now = time.monotonic()
        if not self.enabled:
            return
        if (
            self.options.postgres_restart
            and self.chaos.postgres_restarts == 0
            and self.postgres_thread is None
            and progress >= self.options.postgres_restart_at
        ):
            self._restart_postgres()
        if now >= self.next_action:
            if self._act():
                self.next_action = now + self.rng.uniform(*self.options.chaos_every)
            else:
                self.next_action = now + 0.5

    def _watch(self) -> None:
        now = time.monotonic()
        if now >= self.next_reap:
            self.reap()
            self.next_reap = now + 1.0
        for each in self.managed:
            code = each.process.exit_code()
            if each.state == "up" and code is not None:
                during = (
                    " (PostgreSQL restarting)" if self.postgres_down.is_set() else ""
                )
                self.chaos.self_exits.append(
                    f"{each.name} exited by itself with {code} at "
                    f"{now - self.began:.1f}s{during}: "
                    f"{_last_error(each.process.log_path)}"
                )
                self.note(f"{each.name} exited by itself ({code})")
                each.process.kill()
                each.state, each.restart_at = "down", now + 0.5
            elif each.state == "down" and now >= each.restart_at:
                self._start(each)
            elif each.state == "starting":
                if code is not None:
                    self.chaos.start_failures[each.name] += 1
                    self.note(
                        f"{each.name} failed to start ({code}): "
                        f"{_last_error(each.process.log_path)}"
                    )
                    each.process.kill()
                    each.state, each.restart_at = "down", now + 1.0
                elif self._ready(each):
                    each.state = "up"
                    seconds = now - each.started_at
                    self.chaos.start_seconds[each.kind].append(seconds)
                    self.note(
                        f"{each.name} up in {seconds:.1f}s "
                        f"(start {each.process.starts})"
                    )
            if each.worker_check is not None and each.state == "up":
                self._check_worker(each)

    def _ready(self, each: Managed) -> bool:
        process = each.process
        if isinstance(process, ServerProcess):
            return process.healthy()
        # The runner says so once it has a migrated database and its service.
        return RUNNER_READY in tail(process.log_path, 20)

    def _check_worker(self, each: Managed) -> None:
        assert each.worker_check is not None and isinstance(each.process, ServerProcess)
        victim, deadline = each.worker_check
        pids = each.process.worker_pids()
        if len(pids) == each.process.workers and victim not in pids:
            self.chaos.workers_replaced += 1
            each.worker_check = None
            self.note(f"{each.name}: worker {victim} replaced")
        elif time.monotonic() > deadline:
            self.chaos.workers_not_replaced.append(
                f"{each.name}: worker {victim} not replaced after "
                f"{WORKER_REPLACED_SECONDS:.0f} s (workers now {pids})"
            )
            each.worker_check = None

    def _act(self) -> bool:
        """One kill; False when its target is not up (tried again soon)."""
        kind = self.first_kinds[0] if self.first_kinds else self.pending_kind
        if kind is None:
            kind = self.pending_kind = self.rng.choices(
                ["server", "supervisor", "worker", "runner"],
                weights=[4, 2, 3, 3] if self.options.workers > 1 else [4, 0, 0, 3],
            )[0]
        targets = [
            m
            for m in (self.servers if kind != "runner" else [self.runner])
            if m.state == "up" and (kind != "worker" or m.worker_check is None)
        ]
        # Several servers: one at a time goes down, the others serve.
        all_serving = all(m.state == "up" for m in self.servers)
        if kind in ("server", "supervisor") and len(self.servers) > 1:
            targets = targets if all_serving else []
        if not targets:
            return False
        if self.first_kinds:
            self.first_kinds.pop(0)
        else:
            self.pending_kind = None
        each = self.rng.choice(targets)
        down = self.rng.uniform(*self.options.down_for)
        now = time.monotonic()
        if kind == "worker":
            assert isinstance(each.process, ServerProcess)
            victim = each.process.kill_worker(self.rng)
            if victim is None:
                return False
            each.worker_check = (victim, now + WORKER_REPLACED_SECONDS)
            self.chaos.kills["worker"] += 1
            self.note(f"SIGKILL {each.name} worker {victim}")
            return True
        if kind == "supervisor":
            assert isinstance(each.process, ServerProcess)
            orphaned = self.rng.uniform(0.2, 1.0)
            self.note(f"SIGKILL {each.name} supervisor; orphans for {orphaned:.1f}s")
            self.chaos.orphans_killed += each.process.kill_supervisor(orphaned)
        else:
            self.note(f"SIGKILL {each.name} (process group)")
            each.process.kill()
        self.chaos.kills[kind] += 1
        each.worker_check = None
        each.state, each.restart_at = "down", time.monotonic() + down
        return True

    def _restart_postgres(self) -> None:
        command = self.options.postgres_restart
        assert command is not None

        def restart() -> None:
            began = time.monotonic()
            self.postgres_down.set()
            self.note("PostgreSQL restarting")
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=120
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                self.chaos.postgres_restart_errors.append(repr(error))
            else:
                if done.returncode != 0:
                    self.chaos.postgres_restart_errors.append(
                        f"{shlex.join(command)} exited {done.returncode}: "
                        f"{(done.stderr or done.stdout).strip()[-500:]}"
                    )
                else:
                    self.chaos.postgres_restarts += 1
            seconds = time.monotonic() - began
            self.chaos.postgres_restart_seconds.append(seconds)
            self.postgres_down.clear()
            self.note(f"PostgreSQL restarted in {seconds:.1f}s")

        self.postgres_thread = threading.Thread(target=restart, name="pg-restart")
        self.postgres_thread.start()

    # -- the end ----------------------------------------------------------

    def settle(self) -> None:
        """No more chaos: bring every process up, every worker back."""
        self.enabled = False
        if self.postgres_thread is not None:
            self.postgres_thread.join(timeout=180)
        deadline = time.monotonic() + SETTLE_SECONDS
        while not self.all_up() or any(m.worker_check for m in self.servers):
            self._watch()
            if time.monotonic() > deadline:
                down = [m.name for m in self.managed if m.state != "up"]
                raise RuntimeError(f"not up after the chaos: {down}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for each in self.managed:
            with contextlib.suppress(Exception):
                each.process.stop()
        self.reap()

    def reap(self) -> None:
        """Reap the orphaned workers of killed supervisors (reparented to
        this process: see ``set_subreaper``)."""
        own = {m.process.pid for m in self.managed if m.process.process is not None}
        self.chaos.orphans_reaped += reap_orphans(own)


def _last_error(path: Path) -> str:
    """The last line of a log that looks like an error, shortened."""
    lines = [line for line in tail(path, 200).splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line for word in ("Error", "error", "Exception", "cannot")):
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else "(empty log)"


def run(options: Options) -> Report:
    """The whole run; the report holds every check's result."""
    began = time.monotonic()
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "idemsync.toml"
    config.write_text(config_text())
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    hub_secret = "ghs_" + os.urandom(24).hex()
    env = serve_env(
        config,
        options.database_url,
        {"ACME_SECRET": secret, "HUB_SECRET": hub_secret},
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    servers = []
    for number in range(options.servers):
        where = directory / f"server{number}"
        where.mkdir(exist_ok=True)
        if options.workers > 1:
            own = {**env, "PROMETHEUS_MULTIPROC_DIR": str(where / "metrics")}
        else:
            own = env
        servers.append(
            ServerProcess(
                where,
                own,
                workers=options.workers,
                log_level="warning",
                name=f"server{number}",
            )
        )
    runner_dir = directory / "runner"
    runner_dir.mkdir(exist_ok=True)
    runner = Runner(runner_dir, env)
    chaos = Chaos()
    monkey = Monkey(options, servers, runner, chaos)
    simulator = Simulator(
        lambda: [server.base_url for server in servers],
        {ACME: Partner(secret), HUB: GitHubPartner(hub_secret)},
        options.threads,
        options.seed,
    )
    report = Report(options, simulator.traffic, chaos)
    taken: list[Chunk] = []
    reaper = set_subreaper(True)
    try:
        options.log(
            f"[{options.backend}] starting {options.servers} server(s) x "
            f"{options.workers} worker(s) and the projection runner in {directory}"
        )
        monkey.start_all()
        report.phases["start"] = time.monotonic() - began
        if options.sends is not None:
            taken = chunks_for(options.seed, options.sends)
            for each in taken:
                simulator.add(each.plan)
            simulator.closed.set()
        report.script_sends = sum(len(c.plan) for c in taken)
        traffic_began = time.monotonic()
        simulator.start()
        last_log = time.monotonic()
        while not simulator.join(timeout=0):
            now = time.monotonic()
            elapsed = now - traffic_began
            if options.duration is not None:
                if elapsed < options.duration:
                    while simulator.pending() < FEED_AHEAD:
                        taken.append(chunk(options.seed, len(taken)))
                        simulator.add(taken[-1].plan)
                        report.script_sends += len(taken[-1].plan)
                else:
                    simulator.closed.set()
                progress = elapsed / options.duration
            else:
                progress = simulator.traffic.acknowledged / max(1, report.script_sends)
            # Chaos until the queue is drained; the last retries go in peace.
            if simulator.pending() == 0 and simulator.closed.is_set():
                monkey.enabled = False
            monkey.tick(progress)
            if now - last_log > 15:
                last_log = now
                traffic = simulator.traffic
                options.log(
                    f"[{options.backend}] {elapsed:5.0f}s: {traffic.acknowledged}"
                    f"/{report.script_sends} acknowledged, {traffic.sent} sent, "
                    f"kills {dict(chaos.kills)}, PostgreSQL restarts "
                    f"{chaos.postgres_restarts}"
                )
            time.sleep(0.1)
        report.traffic_seconds = time.monotonic() - traffic_began
        if simulator.errors:
            raise simulator.errors[0]
        settling = time.monotonic()
        monkey.settle()
        report.phases["settle"] = time.monotonic() - settling
        report.chunks = len(taken)
        report.events = sum(len(c.events) for c in taken)
        report.script_kinds = Counter(s.kind for c in taken for s in c.plan)
        keys = keys_of(taken)
        report.script_keys = Counter(keys.source.values())
        report.script_resends = Counter(
            keys.source[key]
            for key, original in keys.original.items()
            if key != original
        )
        options.log(
            f"[{options.backend}] traffic done in {report.traffic_seconds:.0f}s; "
            "catching up the projections and checking"
        )
        caught = time.monotonic()
        catch_up = checks.wait_caught_up(options.database_url, CATCH_UP_STALL_SECONDS)
        report.catch_up_seconds = time.monotonic() - caught
        report.results.append(catch_up)
        checking = time.monotonic()
        truth = truth_of(taken)
        report.phases["ground truth"] = time.monotonic() - checking
        checking = time.monotonic()
        report.results += checks.run_all(
            database_url=options.database_url,
            env=env,
            taken=taken,
            truth=truth,
            traffic=simulator.traffic,
            base_urls=[server.base_url for server in servers],
            audit_sample=options.audit_sample,
            seed=options.seed,
        )
        report.first_outcomes = checks.first_outcomes(simulator.traffic)
        report.resend_answers = checks.resend_answers(simulator.traffic, keys)
        report.phases["checks"] = time.monotonic() - checking
        report.results += chaos_results(options, chaos)
    finally:
        simulator.abort.set()
        simulator.closed.set()
        simulator.join(timeout=60)
        stopping = time.monotonic()
        monkey.stop_all()
        if reaper:
            set_subreaper(False)
        report.phases["stop"] = time.monotonic() - stopping
        report.log_findings = scan_logs(directory)
        report.total_seconds = time.monotonic() - began
    return report


def chaos_results(options: Options, chaos: Chaos) -> list[checks.Result]:
    """Did the monkey do what the run promises, and did the processes
    behave?"""
    results = []
    wanted = ["server", "runner"] + (
        ["supervisor", "worker"] if options.workers > 1 else []
    )
    missing = [kind for kind in wanted if not chaos.kills[kind]]
    results.append(
        checks.Result(
            "every kind of kill happened",
            not missing,
            f"never: {missing}" if missing else str(dict(chaos.kills)),
        )
    )
    if options.postgres_restart:
        results.append(
            checks.Result(
                "PostgreSQL restarted",
                chaos.postgres_restarts >= 1 and not chaos.postgres_restart_errors,
                "; ".join(chaos.postgres_restart_errors)
                or f"{chaos.postgres_restarts} restart(s)",
            )
        )
    results.append(
        checks.Result(
            "uvicorn replaced every killed worker",
            not chaos.workers_not_replaced,
            "; ".join(chaos.workers_not_replaced)
            or f"{chaos.workers_replaced} replaced",
        )
    )
    return results


def scan_logs(directory: Path) -> Counter[str]:
    """Lines of the processes' logs worth a look: tracebacks, refusals by
    error, internal errors."""
    found: Counter[str] = Counter()
    for path in directory.rglob("*.log"):
        with path.open(errors="replace") as lines:
            for line in lines:
                if "Traceback" in line:
                    found["tracebacks"] += 1
                if "internal_error" in line or "failed delivery" in line:
                    found["internal errors (503)"] += 1
                if "status=500" in line or '"status": 500' in line:
                    found["status 500 logged"] += 1
    return found


def describe(report: Report) -> dict[str, str]:
    """The summary of one run, row by row."""
    traffic, chaos = report.traffic, report.chaos
    options = report.options
    rows: dict[str, str] = {}
    rows["processes"] = (
        f"{options.servers} serve x {options.workers} worker(s) + runner"
    )
    rows["script: events (keys)"] = (
        f"{report.events:,} ({sum(report.script_keys.values()):,}: "
        + ", ".join(
            f"{source} {n:,}" for source, n in sorted(report.script_keys.items())
        )
        + ")"
    )
    kinds, resends = report.script_kinds, report.script_resends
    rows["script: deliveries"] = (
        f"{report.script_sends:,} ({kinds['concurrent']:,} concurrent copies, "
        f"{kinds['late']:,} late duplicates, {resends.total():,} re-sends)"
    )
    rows["script: re-sends under fresh keys"] = (
        f"{resends.total():,} ({kinds['concurrent re-send']:,} side by side; "
        + ", ".join(f"{source} {n:,}" for source, n in sorted(resends.items()))
        + ")"
    )
    rows["sent (HTTP attempts)"] = f"{traffic.sent:,}"
    rows["retried"] = f"{traffic.retried:,}"
    rows["acknowledged (2xx)"] = f"{traffic.acknowledged:,}"
    for outcome in ("applied", "parked", "stale", "rejected", "ignored", "duplicate"):
        rows[f"  {outcome}"] = f"{traffic.outcomes.get(outcome, 0):,}"
    decided = checks.decided(traffic)
    lost = sum(
        all(body.get("outcome") == "duplicate" for body in traffic.answers[key])
        for key in decided
    )
    rows["committed, answer lost (then duplicate)"] = f"{lost:,}"
    rows["first outcome per key"] = ", ".join(
        f"{k} {v:,}" for k, v in sorted(report.first_outcomes.items())
    )
    rows["re-sends: first answers"] = ", ".join(
        f"{k} {v:,}" for k, v in sorted(report.resend_answers.items())
    )
    rows["503s"] = f"{traffic.statuses.get(503, 0):,}" + (
        " ("
        + ", ".join(
            f"{k.split(' ', 1)[1]} {v:,}"
            for k, v in sorted(traffic.refusals.items())
            if k.startswith("503")
        )
        + ")"
        if traffic.statuses.get(503)
        else ""
    )
    other = {s: n for s, n in traffic.statuses.items() if not 200 <= s < 300}
    other.pop(503, None)
    rows["other non-2xx"] = ", ".join(f"{s}: {n}" for s, n in other.items()) or "0"
    rows["broken connections"] = f"{sum(traffic.broken.values()):,}" + (
        " (" + ", ".join(f"{k} {v:,}" for k, v in traffic.broken.most_common()) + ")"
        if traffic.broken
        else ""
    )
    rows["most attempts / longest retry"] = (
        f"{traffic.max_attempts} / {traffic.retry_seconds:.1f}s"
    )
    rows["kills: server (group)"] = str(chaos.kills["server"])
    if options.workers > 1:
        rows["kills: supervisor (orphans)"] = (
            f"{chaos.kills['supervisor']} ({chaos.orphans_killed} orphaned workers "
            f"killed, {chaos.orphans_reaped} reaped)"
        )
        rows["kills: worker (replaced)"] = (
            f"{chaos.kills['worker']} ({chaos.workers_replaced})"
        )
    rows["kills: projection runner"] = str(chaos.kills["runner"])
    if options.postgres_restart:
        rows["PostgreSQL restarts"] = f"{chaos.postgres_restarts}" + (
            f" ({', '.join(f'{s:.1f}s' for s in chaos.postgres_restart_seconds)})"
        )
    for kind, seconds in sorted(chaos.start_seconds.items()):
        if seconds:
            rows[f"{kind} start to ready: mean / max"] = (
                f"{sum(seconds) / len(seconds):.1f}s / {max(seconds):.1f}s"
            )
    rows["failed starts (retried)"] = (
        ", ".join(f"{k} {v}" for k, v in sorted(chaos.start_failures.items())) or "0"
    )
    rows["exited by themselves"] = str(len(chaos.self_exits))
    rows["log: tracebacks / internal errors"] = (
        f"{report.log_findings['tracebacks']} / "
        f"{report.log_findings['internal errors (503)']}"
    )
    rows["traffic / catch-up / total"] = (
        f"{report.traffic_seconds:.0f}s / {report.catch_up_seconds:.1f}s / "
        f"{report.total_seconds:.0f}s"
    )
    rows["start / settle / truth / checks / stop"] = " / ".join(
        f"{report.phases.get(phase, 0.0):.0f}s"
        for phase in ("start", "settle", "ground truth", "checks", "stop")
    )
    rows["acknowledged per second"] = (
        f"{traffic.acknowledged / max(report.traffic_seconds, 0.001):.0f}"
    )
    passed = sum(r.passed for r in report.results)
    rows["checks passed"] = f"{passed}/{len(report.results)}"
    return rows


def summary(reports: Sequence[Report]) -> Any:
    """A rich table: one column per run."""
    from rich.table import Table

    table = Table(title="idemsync chaos run", show_lines=False)
    table.add_column("")
    described = [describe(report) for report in reports]
    for report in reports:
        table.add_column(report.options.backend, overflow="fold")
    for row in described[0]:
        table.add_row(row, *(d.get(row, "") for d in described))
    return table


def results_table(reports: Sequence[Report]) -> Any:
    from rich.table import Table

    table = Table(title="checks", show_lines=False)
    table.add_column("backend")
    table.add_column("check")
    table.add_column("")
    table.add_column("s", justify="right")
    table.add_column("detail", overflow="fold")
    for report in reports:
        for result in report.results:
            table.add_row(
                report.options.backend,
                result.name,
                "ok" if result.passed else "FAILED",
                f"{result.seconds:.1f}",
                result.detail[:400],
            )
    return table


def print_report(reports: Sequence[Report], console: Any = None) -> None:
    from rich.console import Console

    console = console or Console(width=140)
    console.print(summary(reports))
    console.print(results_table(reports))
    for report in reports:
        if report.chaos.self_exits:
            console.print(f"[{report.options.backend}] exited by themselves:")
            for line in report.chaos.self_exits:
                console.print(f"  {line}", markup=False)
        for problem in report.problems:
            console.print(f"[{report.options.backend}] FAILED {problem}", markup=False)


def dump(report: Report, path: Path) -> None:
    """The summary, checks and timeline as JSON (for the record)."""
    path.write_text(
        json.dumps(
            {
                "backend": report.options.backend,
                "summary": describe(report),
                "checks": [
                    {"name": r.name, "passed": r.passed, "detail": r.detail}
                    for r in report.results
                ],
                "self_exits": report.chaos.self_exits,
                "timeline": report.chaos.timeline,
                "statuses": {str(k): v for k, v in report.traffic.statuses.items()},
                "refusals": dict(report.traffic.refusals),
                "unexpected": report.traffic.unexpected[:100],
            },
            indent=2,
        )
    )
