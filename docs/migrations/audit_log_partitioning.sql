-- audit_log → monthly range partitions on occurred_at.
--
-- STATUS: reviewed plan, NOT APPLIED. It is deliberately outside drizzle/, so neither
-- `npm run db:migrate` nor `node dist/scripts/migrate.js` runs it. docs/OPERATIONS.md
-- ("Audit log growth and retention") says when and how to adopt it.
--
-- Run with psql against the primary, in a maintenance window that is NOT in the last day of
-- a month (the legacy range ends at the first day of next month, see phase 1b):
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/migrations/audit_log_partitioning.sql
--
-- Approach (zero-copy): the existing table is not rewritten. It becomes the partition
-- `audit_log_legacy`, holding every row before a cutoff (the first day of next month, UTC);
-- each month from the cutoff on gets its own partition, and a DEFAULT partition catches
-- anything no partition covers, so an append never fails for want of a partition. The long
-- steps (an index build, a constraint validation) take locks that block neither reads nor
-- writes; phase 2 holds ACCESS EXCLUSIVE on audit_log for a moment (catalog changes only).
-- Postgres 13 or later (checked on 15).

\set ON_ERROR_STOP on
SET TimeZone = 'UTC';

-- The cutoff: the first day of next month. Everything before it stays in audit_log_legacy.
SELECT to_char(date_trunc('month', now()) + interval '1 month', 'YYYY-MM-DD') AS cutoff \gset
\echo cutoff: :cutoff

-- ---------------------------------------------------------------------------------------------
-- Phase 1: online preparation. Not in a transaction (CONCURRENTLY); reads and writes go on.
-- ---------------------------------------------------------------------------------------------

-- 1a. A partitioned table's primary key must contain the partition key: (id, occurred_at).
--     Built concurrently now, it becomes the legacy partition's share of the new key.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS audit_log_id_occurred_at ON audit_log (id, occurred_at);

-- 1b. A CHECK matching the legacy partition's bound, so that ATTACH PARTITION skips its scan.
--     NOT VALID is instant; VALIDATE scans under SHARE UPDATE EXCLUSIVE (writes go on).
--     From here on, rows with occurred_at >= cutoff are refused until phase 2 has run: the
--     API refuses occurred_at more than 5 minutes ahead, so only the last minutes before the
--     cutoff matter, hence "not in the last day of a month".
ALTER TABLE audit_log ADD CONSTRAINT audit_log_legacy_range CHECK (occurred_at < :'cutoff'::timestamptz) NOT VALID;
ALTER TABLE audit_log VALIDATE CONSTRAINT audit_log_legacy_range;

-- ---------------------------------------------------------------------------------------------
-- Phase 2: the switch, in one short transaction.
-- ---------------------------------------------------------------------------------------------
BEGIN;
-- Give up rather than queue behind a long query (and make every write queue behind us).
SET LOCAL lock_timeout = '5s';
LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;

ALTER TABLE audit_log RENAME TO audit_log_legacy;
-- The old single-column key goes; the index from 1a becomes the key (instant: both columns
-- are NOT NULL). It must back a constraint for the parent's key to adopt it below instead
-- of building a new one. Index names are schema-wide, so the legacy ones get their own.
ALTER TABLE audit_log_legacy DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log_legacy ADD CONSTRAINT audit_log_legacy_pkey PRIMARY KEY USING INDEX audit_log_id_occurred_at;
ALTER INDEX audit_log_keyset RENAME TO audit_log_legacy_keyset;
ALTER INDEX audit_log_tenant_keyset RENAME TO audit_log_legacy_tenant_keyset;

-- The same columns, defaults and checks as drizzle/0000_init.sql's audit_log.
CREATE TABLE audit_log (
	"id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid,
	"product" text,
	"action" text NOT NULL,
	"crud" text,
	"actor_id" text NOT NULL,
	"actor_name" text,
	"actor_type" text NOT NULL,
	"target_id" text,
	"target_type" text,
	"target_name" text,
	"description" text,
	"source_ip" text,
	"is_failure" boolean DEFAULT false NOT NULL,
	"fields" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"occurred_at" timestamp (3) with time zone NOT NULL,
	"received_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "audit_log_crud" CHECK ("crud" IS NULL OR "crud" IN ('c', 'r', 'u', 'd')),
	CONSTRAINT "audit_log_actor_type" CHECK ("actor_type" IN ('user', 'service', 'api_key', 'system'))
) PARTITION BY RANGE (occurred_at);

-- No scan: audit_log_legacy_range (validated in 1b) proves the bound.
ALTER TABLE audit_log ATTACH PARTITION audit_log_legacy FOR VALUES FROM (MINVALUE) TO (:'cutoff');

-- Key, indexes and foreign key on the parent: on the legacy partition the equivalent
-- existing index or constraint is attached, not built again.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id, occurred_at);
CREATE INDEX audit_log_keyset ON audit_log USING btree (occurred_at DESC NULLS LAST, id DESC NULLS LAST);
CREATE INDEX audit_log_tenant_keyset ON audit_log USING btree (tenant_id, occurred_at DESC NULLS LAST, id DESC NULLS LAST);
ALTER TABLE audit_log ADD CONSTRAINT audit_log_tenant_id_tenants_id_fk
	FOREIGN KEY (tenant_id) REFERENCES public.tenants (id) ON DELETE SET NULL ON UPDATE NO ACTION;

-- Anything outside every range (which the maintenance below keeps from happening).
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- Monthly partitions from `start` to `months_ahead` months past the current one, named
-- audit_log_yYYYYmMM. Idempotent; run it daily (cron, pg_cron, or a Kubernetes CronJob):
--   SELECT audit_log_ensure_partitions();
CREATE OR REPLACE FUNCTION audit_log_ensure_partitions(months_ahead int DEFAULT 3, start date DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	m date := coalesce(start, (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')::date);
	until_month date := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead))::date;
	made int := 0;
	part text;
BEGIN
	WHILE m <= until_month LOOP
		part := format('audit_log_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
		IF to_regclass(format('public.%I', part)) IS NULL THEN
			EXECUTE format(
				'CREATE TABLE public.%I PARTITION OF public.audit_log FOR VALUES FROM (%L) TO (%L)',
				part, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
			made := made + 1;
		END IF;
		m := (m + interval '1 month')::date;
	END LOOP;
	RETURN made;
END $$;

SELECT audit_log_ensure_partitions(3, :'cutoff'::date) AS partitions_created;

-- The CHECK did its job (the partition bound says the same now).
ALTER TABLE audit_log_legacy DROP CONSTRAINT audit_log_legacy_range;
COMMIT;

ANALYZE audit_log;

-- ---------------------------------------------------------------------------------------------
-- Afterwards (not run by this file)
-- ---------------------------------------------------------------------------------------------
-- Monitoring: the default partition must stay empty, and next month must exist:
--   SELECT count(*) FROM audit_log_default;                                        -- 0
--   SELECT to_regclass(format('audit_log_y%s', to_char(now() + interval '1 month', 'YYYY"m"MM')));  -- not null
-- Rows in audit_log_default make creating their month's partition fail; move them in one
-- transaction (writes to audit_log wait for it):
--   BEGIN;
--   CREATE TEMP TABLE moving ON COMMIT DROP AS SELECT * FROM audit_log_default WHERE occurred_at >= '2027-02-01';
--   DELETE FROM audit_log_default WHERE occurred_at >= '2027-02-01';
--   SELECT audit_log_ensure_partitions();
--   INSERT INTO audit_log SELECT * FROM moving;
--   COMMIT;
--
-- Retention: archive a month past the retention period, then drop it (brief lock on the parent):
--   \copy (SELECT * FROM audit_log_y2027m01) TO 'audit_log_y2027m01.csv' WITH (FORMAT csv, HEADER)
--   SET lock_timeout = '5s';
--   ALTER TABLE audit_log DETACH PARTITION audit_log_y2027m01;
--   DROP TABLE audit_log_y2027m01;
-- audit_log_legacy goes the same way once its newest row is past the retention period.
--
-- Rollback (before any month has been dropped): the data is all still there; make a plain
-- table again with CREATE TABLE audit_log_flat (LIKE audit_log INCLUDING ALL) and
-- INSERT … SELECT per partition, or keep the partitioned table: the application's queries
-- do not change.
