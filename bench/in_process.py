"""The pipeline alone, without HTTP: unique deliveries through the services
``bootstrap`` builds for the server (its group commit included), from many
threads of one process, on a fresh database. Prints deliveries per second
and this process's CPU per delivery (signature, mapping, deciding, the
driver), to measure one change to the pipeline at a time without the HTTP
stack's cost and noise.

    .venv/bin/python -m bench.in_process --backend postgres --deliveries 4000
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.databases import postgres_database, sqlite_database
from infrastructure.bootstrap import bootstrap
from tests.partner import Partner, make_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--deliveries", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "IDEMSYNC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432"
        ),
    )
    args = parser.parse_args(argv)
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    partner = Partner(secret)
    requests = [partner.order_created(f"ord_{n}") for n in range(args.deliveries)]
    store = (
        postgres_database(args.postgres)
        if args.backend == "postgres"
        else sqlite_database()
    )
    with store as database:
        database.upgrade()
        services = bootstrap(make_settings(database.url, secret), group_commit=True)
        group = services.group_commit
        assert group is not None
        group.start()

        def deliver(index: int) -> None:
            request = requests[index]
            answer = services.intake.receive("acme", request.headers, request.body)
            assert answer.outcome.value == "applied", answer.to_json()

        began, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(deliver, range(args.deliveries)))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        batches = group.batches
        services.close()
    print(
        f"{args.backend}: {args.deliveries / seconds:,.0f} unique deliveries/s, "
        f"{cpu / args.deliveries * 1000:.2f} ms of this process's CPU each, "
        f"{args.deliveries / max(1, batches):.1f} per batch ({args.threads} threads)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
