-- The only way a balance changes: a transfer between an account and its other
-- side, appended to the journal together with what it moves on the account's
-- row. The other side is one of the company's system accounts
-- (p_counterparty: the row's share of it moves by -amount, no other row is
-- locked) or another account of the same company and currency
-- (p_counterparty_customer: the row's transfer_share moves by -amount, and the
-- caller posts the mirror entry on that account). p_held_change moves the
-- amount open holds reserve. The caller holds the account's row lock.
DROP FUNCTION IF EXISTS ledger_post_entry;
CREATE FUNCTION ledger_post_entry(
    p_company_id bigint, p_customer text, p_currency text, p_amount numeric,
    p_counterparty system_account, p_cause entry_cause, p_request_unique_no text,
    p_operation_type operation_type, p_overtrading_policy overtrading_policy, p_trace_id text,
    p_counterparty_customer text DEFAULT NULL, p_held_change numeric DEFAULT 0)
RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    v_balance numeric;
    v_held numeric;
    v_entry_no bigint;
BEGIN
    UPDATE accounts
    SET balance = balance + p_amount,
        clearing_share = clearing_share - CASE WHEN p_counterparty = 'clearing' THEN p_amount ELSE 0 END,
        funding_share = funding_share - CASE WHEN p_counterparty = 'funding' THEN p_amount ELSE 0 END,
        transfer_share = transfer_share
            - CASE WHEN p_counterparty_customer IS NOT NULL THEN p_amount ELSE 0 END,
        held = held + p_held_change,
        entry_count = entry_count + 1
    WHERE company_id = p_company_id AND customer = p_customer AND currency = p_currency
    RETURNING balance, held, entry_count INTO v_balance, v_held, v_entry_no;
    INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount, counterparty,
                                 counterparty_customer, balance_after, held_change, held_after,
                                 cause, request_unique_no, operation_type, overtrading_policy,
                                 trace_id)
    VALUES (p_company_id, p_customer, p_currency, v_entry_no, p_amount, p_counterparty,
            p_counterparty_customer, v_balance, p_held_change, v_held, p_cause,
            p_request_unique_no, p_operation_type, p_overtrading_policy, p_trace_id);
    RETURN v_balance;
END
$$;

-- Releases the account's holds that have expired: each becomes 'expired' and
-- gives its amount back to the available balance, with a journal entry. The
-- caller holds the account's locks; every movement that reads the available
-- balance calls this first, so an expired hold never blocks a debit, however
-- late the sweeper (ledger_expire_holds) comes.
DROP FUNCTION IF EXISTS ledger_release_expired;
CREATE FUNCTION ledger_release_expired(p_company_id bigint, p_customer text, p_currency text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    h transfers;
    v_released integer := 0;
    -- Read before the UPDATE: Citus refuses volatile functions in an UPDATE
    -- of a distributed table.
    v_now timestamptz := clock_timestamp();
BEGIN
    FOR h IN
        SELECT * FROM transfers t
        WHERE t.company_id = p_company_id AND t.customer = p_customer
          AND t.currency = p_currency AND t.state = 'open' AND t.expires_at <= now()
        ORDER BY t.expires_at, t.transfer_id
    LOOP
        UPDATE transfers t SET state = 'expired', closed_at = v_now
        WHERE t.company_id = h.company_id AND t.customer = h.customer
          AND t.transfer_id = h.transfer_id;
        PERFORM ledger_post_entry(p_company_id, p_customer, p_currency, 0, NULL, 'hold_expiry',
                                  h.transfer_id, NULL, NULL, h.trace_id, h.credit_customer,
                                  -h.amount);
        v_released := v_released + 1;
    END LOOP;
    RETURN v_released;
END
$$;

-- What the account's open holds reserve now, for an account whose locks the
-- caller holds and whose held amount it read: expired holds are released
-- first (only when something is held, so a wallet without holds pays nothing).
DROP FUNCTION IF EXISTS ledger_held;
CREATE FUNCTION ledger_held(p_company_id bigint, p_customer text, p_currency text, p_held numeric)
RETURNS numeric
LANGUAGE plpgsql AS $$
BEGIN
    IF p_held = 0 OR ledger_release_expired(p_company_id, p_customer, p_currency) = 0 THEN
        RETURN p_held;
    END IF;
    RETURN (SELECT a.held FROM accounts a
            WHERE a.company_id = p_company_id AND a.customer = p_customer
              AND a.currency = p_currency);
END
$$;
