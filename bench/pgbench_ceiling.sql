-- What PostgreSQL itself does with one unique delivery's writes, driven by
-- pgbench (a C client), for comparison with bench/ingest.py's raw ceiling
-- (a Python client) and idemsync's unique figure: per transaction, one
-- deliveries row, three events (Tracked, Created, a receipt's Issued) and
-- their three ledger rows, with no table lock. Row sizes approximate a real
-- order.created delivery's. On a scratch database at the head revision:
--
--   createdb -h 127.0.0.1 -U postgres idemsync_pgbench
--   IDEMSYNC_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/idemsync_pgbench \
--     .venv/bin/idemsync db upgrade
--   for c in 1 4 8 16 32; do
--     pgbench -h 127.0.0.1 -U postgres -n -f bench/pgbench_ceiling.sql \
--       -c $c -j 2 -T 12 idemsync_pgbench
--   done
--   dropdb -h 127.0.0.1 -U postgres idemsync_pgbench
\set n random(1, 2000000000)
BEGIN;
INSERT INTO deliveries (source, idempotency_key, received_at, outcome, reason, aggregate_type, aggregate_id, aggregate_version, answer, payload, headers)
  VALUES ('bench', gen_random_uuid()::text, now(), 'applied', NULL, 'order', 'ord_' || :n, 2,
          '{"outcome":"applied","source":"bench","key":"msg_0123456789abcdef","aggregate":{"type":"order","id":"ord_0123456789","namespace":"bench","version":2}}',
          convert_to(repeat('x', 180), 'UTF8'), '{"content-type":"application/json","webhook-id":"msg_0123456789abcdef"}');
WITH ids AS (SELECT gen_random_uuid() AS a, gen_random_uuid() AS r),
ev AS (
  INSERT INTO idemsync_events (originator_id, originator_version, topic, state)
  SELECT a, 1, 'domain.order:Order.Tracked', convert_to(repeat('t', 230), 'UTF8') FROM ids
  UNION ALL SELECT a, 2, 'domain.order:Order.Created', convert_to(repeat('c', 420), 'UTF8') FROM ids
  UNION ALL SELECT r, 1, 'domain.receipt:Receipt.Issued', convert_to(repeat('r', 330), 'UTF8') FROM ids
  RETURNING originator_id, originator_version, notification_id)
INSERT INTO event_audit (originator_id, originator_version, notification_id, aggregate_type, aggregate_id, recorded_at, source, idempotency_key, occurred_at, hash, namespace)
  SELECT originator_id, originator_version, notification_id, 'order', 'ord_' || :n, now(), 'bench', 'msg_' || :n, NULL, md5(random()::text) || md5(random()::text), 'bench' FROM ev;
END;
