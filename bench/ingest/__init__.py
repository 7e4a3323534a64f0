"""Ingest benchmark: idemsync's HTTP ingest next to the database's own ceiling.

For each backend (a SQLite file in a temporary directory; a scratch
PostgreSQL database, created and dropped here) it starts a real
``idemsync serve`` (PostgreSQL: ``--pg-workers`` uvicorn workers; SQLite:
one) on a free port and drives it over a socket with ``wrk`` (a compiled
client, one thread), from files of pre-signed requests (Standard Webhooks
signatures, signed before any timing; the bench source's
``tolerance_seconds`` is an hour, the most a source may have: a batch is
signed just before the runs that send it, well within that). A Lua
script (``wrk.lua``, generated) loads each wrk thread's file in ``init`` and
hands out one raw request per ``request()`` call; ``done()`` prints the
figures as JSON. It measures:

* unique deliveries: each an ``order.created`` of a new order, so one delivery
  writes its ``deliveries`` row and three events (``Order.Tracked``,
  ``Order.Created``, ``Receipt.Issued``) with their ``event_audit`` rows; at
  each ``--connections`` count (closed loop: each connection sends its next
  request when the answer is in); the best is the maximum throughput;
* p99 latency at 80 % of that maximum, open loop: fresh deliveries arriving
  at a constant rate (``bench/open_loop.py``: each request starts when it is
  due, whatever the server is doing, and is timed from then, so a slow
  answer delays no later request's clock), as a partner's deliveries arrive;
* duplicates: already-applied deliveries sent again (re-signed with a later
  timestamp, as a retry is), at each connection count;
* the load generator's own ceiling: the same wrk and Lua script with the
  same request files against a no-op HTTP server (``noop-server`` below: a
  bare asyncio protocol), and against idemsync's ``GET /healthz`` (the HTTP
  stack alone); and wrk's CPU time per request, so its share of each
  idemsync figure is known;
* the ceiling: raw psycopg transactions doing exactly what one unique
  delivery writes (the rows read back from the server's own database: the
  ``deliveries`` row, the events through ``unnest(stored_event_uuid[])`` and
  their ledger rows, after ``SET LOCAL lock_timeout``, ``LOCK TABLE
  idemsync_events IN EXCLUSIVE MODE`` and ``NOTIFY``, as the recorder does),
  one delivery per transaction, from 1, 4, 8 and 16 processes (pipelined);
  and the same without the table lock (what PostgreSQL itself can do with
  those writes); the best run of either is the ceiling;
  and raw sqlite3 likewise, one writer;
* the server's memory: RSS summed over its process tree (``/proc``), idle
  and at its peak under load; CPU of the server, of PostgreSQL and of wrk
  during each run (what limited it).

``--stored-events N`` (PostgreSQL): after the empty-store figures, fill the
store to N events (``prefill``: waves of new orders through
``SyncService.decide``/``commit``, 500 deliveries per commit, from
``--prefill-processes`` processes), restart the server and measure unique
ingest again at the maximum's connections (target: within 10 %).

A table goes to stdout and the figures to ``bench/results/ingest-latest.json``
(``bench/run.py`` merges them with the rebuild and audit figures).

    python -m bench.ingest [--backends sqlite,postgres] [--duration 10]
                           [--connections 1,4,16,64] [--raw-levels 1,4,8,16]
                           [--stored-events N] [--output FILE]
"""
