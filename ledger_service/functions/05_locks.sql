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
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(k)
    FROM (SELECT DISTINCT hashtextextended(c::text || '/' || cu || '/' || coalesce(cur, ''), 0) AS k
          FROM unnest(p_company_id, p_customer, p_currency) AS t(c, cu, cur)) keys
    ORDER BY k;
    SELECT FROM accounts a
    WHERE (a.company_id, a.customer, a.currency) IN (
        SELECT * FROM unnest(p_company_id, p_customer, p_currency))
    ORDER BY a.company_id, a.customer, a.currency
    FOR UPDATE;
$$;
