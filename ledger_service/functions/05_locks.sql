-- The one way a money-moving transaction takes its accounts, before it writes
-- anything: first an advisory lock per account key, all in one global order
-- (so two transactions never deadlock on each other), then the rows.
--
-- Why advisory locks first: a transaction gets its transaction id at its first
-- write (a row lock is a write). Taking every account's advisory lock before
-- that means a transaction that waited for another on a shared account gets
-- a larger transaction id than the one it waited for, so ordering the journal
-- by (transaction id, sequence) is an order every account's own entries agree
-- with: the order the journal feed (WatchJournal) sends entries in.
DROP FUNCTION IF EXISTS ledger_lock_accounts;
CREATE FUNCTION ledger_lock_accounts(
    p_company_id bigint[], p_customer text[], p_currency text[])
RETURNS void
-- plpgsql, not sql: Citus cannot plan the statements of a SQL function that
-- use its parameters.
LANGUAGE plpgsql AS $$
DECLARE
    v_wallet record;
BEGIN
    PERFORM pg_advisory_xact_lock(k)
    FROM (SELECT DISTINCT hashtextextended(c::text || '/' || cu || '/' || coalesce(cur, ''), 0) AS k
          FROM unnest(p_company_id, p_customer, p_currency) AS t(c, cu, cur)) keys
    ORDER BY k;
    -- One statement per wallet, in one global order: on a Citus cluster each
    -- is a single-shard query (a FOR UPDATE spanning shards is refused).
    FOR v_wallet IN
        SELECT DISTINCT c, cu, cur FROM unnest(p_company_id, p_customer, p_currency) AS t(c, cu, cur)
        WHERE cur IS NOT NULL
        ORDER BY c, cu, cur
    LOOP
        PERFORM FROM accounts a
        WHERE a.company_id = v_wallet.c AND a.customer = v_wallet.cu AND a.currency = v_wallet.cur
        FOR UPDATE;
    END LOOP;
END
$$;
