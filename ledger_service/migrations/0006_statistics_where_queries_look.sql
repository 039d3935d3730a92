-- Column statistics only where a query looks, on the two tables every
-- movement appends to.
--
-- Autoanalyze runs on each after every tenth of growth, and ANALYZE sorts a
-- 30,000-row sample for every column with a statistics target (100 by
-- default). At about 190,000 rows that took 140 and 210 ms of one core, and
-- on a 2-core machine already answering 2,400 webhooks a second, 370-550 ms
-- during which every answer slowed: the slowest took 260-930 ms.
--
-- No query filters, joins, groups or sorts by the payload columns (amounts,
-- notes, traces, what TradeBoss sent): the planner never reads their
-- statistics, so they get none (0). The columns queries do use keep theirs,
-- from a 9,000-row sample (30): they are keys compared for equality through
-- an index, or scanned whole by reconciliation, where a coarser histogram
-- changes no plan. Measured the same way: ANALYZE 30-33 ms, the slowest answer
-- meanwhile 85-127 ms.
--
-- A query that starts to use another column raises its target in a migration
-- of its own; a column added later starts with the default.
DO $$
DECLARE
    queried constant jsonb := '{
        "journal_entries": ["company_id", "customer", "currency", "entry_no", "request_unique_no",
                            "created_at", "xact_id", "feed_seq", "cause", "counterparty",
                            "counterparty_customer"],
        "requests": ["company_id", "customer", "currency", "request_unique_no", "kind",
                     "outcome", "order_id"]}';
    table_name text;
    settings text;
    distributed boolean;
BEGIN
    FOR table_name IN SELECT jsonb_object_keys(queried) LOOP
        SELECT string_agg(
                   format('ALTER COLUMN %I SET STATISTICS %s', attname,
                          CASE WHEN (queried -> table_name) ? attname THEN 30 ELSE 0 END),
                   ', ' ORDER BY attnum)
          INTO settings
          FROM pg_attribute
         WHERE attrelid = table_name::regclass AND attnum > 0 AND NOT attisdropped;
        distributed := false;
        IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
            EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                                     WHERE logicalrelid = $1::regclass)'
               INTO distributed USING table_name;
        END IF;
        IF distributed THEN
            -- Already distributed (Citus): it refuses SET STATISTICS on the
            -- table, so the shards, where ANALYZE runs, get it directly, and
            -- the coordinator's table too (new shards copy its targets).
            PERFORM run_command_on_shards(table_name, 'ALTER TABLE %s ' || settings);
            SET LOCAL citus.enable_ddl_propagation TO off;
            EXECUTE format('ALTER TABLE %I %s', table_name, settings);
            SET LOCAL citus.enable_ddl_propagation TO on;
        ELSE
            -- Distributed later, if ever: Citus gives new shards these targets.
            EXECUTE format('ALTER TABLE %I %s', table_name, settings);
        END IF;
    END LOOP;
END
$$;
