-- The only way a balance changes: a transfer between the wallet and one of its
-- company's system accounts, appended to the journal together with both
-- balances it moves (the wallet's, and the wallet's share of the system
-- account: no other row is locked). The caller holds the wallet's row lock.
DROP FUNCTION IF EXISTS ledger_post_entry;
CREATE FUNCTION ledger_post_entry(
    p_company_id bigint, p_customer text, p_currency text, p_amount numeric,
    p_counterparty system_account, p_cause entry_cause, p_request_unique_no text,
    p_operation_type operation_type, p_overtrading_policy overtrading_policy, p_trace_id text)
RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    v_balance numeric;
    v_entry_no bigint;
BEGIN
    UPDATE accounts
    SET balance = balance + p_amount,
        clearing_share = clearing_share - CASE WHEN p_counterparty = 'clearing' THEN p_amount ELSE 0 END,
        funding_share = funding_share - CASE WHEN p_counterparty = 'funding' THEN p_amount ELSE 0 END,
        entry_count = entry_count + 1
    WHERE company_id = p_company_id AND customer = p_customer AND currency = p_currency
    RETURNING balance, entry_count INTO v_balance, v_entry_no;
    INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount, counterparty,
                                 balance_after, cause, request_unique_no, operation_type,
                                 overtrading_policy, trace_id)
    VALUES (p_company_id, p_customer, p_currency, v_entry_no, p_amount, p_counterparty,
            v_balance, p_cause, p_request_unique_no, p_operation_type, p_overtrading_policy,
            p_trace_id);
    RETURN v_balance;
END
$$;
