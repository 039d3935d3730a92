-- Operator funding: a transfer between the operator's funding account and the
-- wallet. p_kind is 'deposit' or 'withdrawal'; called with named arguments
-- (ledger_service/funding.py). Statuses: ACCOUNT_NOT_FOUND, TOO_MANY_DIGITS
-- (nothing written; `digits` says the scale), SEEN, and the recorded
-- INSUFFICIENT_BALANCE, BALANCE_LIMIT_EXCEEDED, APPLIED.
DROP FUNCTION IF EXISTS ledger_fund;
CREATE FUNCTION ledger_fund(
    p_company_id bigint, p_customer text, p_currency text, p_kind request_kind,
    p_amount numeric, p_fraction_digits integer, p_idempotency_key text, p_note text,
    p_balance_limit numeric, p_trace_id text,
    OUT status movement_status, OUT balance numeric, OUT digits smallint, OUT user_name text,
    OUT seen requests)
LANGUAGE plpgsql AS $$
DECLARE
    v_delta numeric := CASE WHEN p_kind = 'deposit' THEN p_amount ELSE -p_amount END;
    v_applied numeric := 0;
    v_held numeric;
    v_allow_negative boolean;
BEGIN
    PERFORM ledger_lock_accounts(ARRAY[p_company_id], ARRAY[p_customer], ARRAY[p_currency]);
    SELECT a.balance, a.digits, a.user_name, a.held, a.allow_negative
    INTO balance, digits, user_name, v_held, v_allow_negative
    FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = p_currency;
    IF NOT FOUND THEN
        status := 'ACCOUNT_NOT_FOUND';
        RETURN;
    END IF;
    IF p_fraction_digits > digits THEN
        status := 'TOO_MANY_DIGITS';
        RETURN;
    END IF;

    SELECT * INTO seen FROM requests r
    WHERE r.company_id = p_company_id AND r.customer = p_customer
      AND r.request_unique_no = p_idempotency_key;
    IF FOUND THEN
        status := 'SEEN';
        RETURN;
    END IF;

    -- A withdrawal never takes the balance below zero nor spends what holds
    -- reserve (an internal account opened with allow_negative may go below);
    -- a deposit always lands within the stated maximum.
    IF v_delta < 0 AND NOT v_allow_negative
       AND balance - ledger_held(p_company_id, p_customer, p_currency, v_held) + v_delta < 0 THEN
        status := 'INSUFFICIENT_BALANCE';
    ELSIF abs(balance + v_delta) >= p_balance_limit THEN
        status := 'BALANCE_LIMIT_EXCEEDED';
    ELSE
        balance := ledger_post_entry(p_company_id, p_customer, p_currency, v_delta, 'funding',
                                     p_kind::text::entry_cause, p_idempotency_key, NULL, NULL,
                                     p_trace_id);
        v_applied := v_delta;
        status := 'APPLIED';
    END IF;
    INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                          amount, amount_digits, funding_note, applied_amount, balance_after,
                          trace_id)
    VALUES (p_company_id, p_customer, p_idempotency_key, p_kind, p_currency,
            status::text::request_outcome, p_amount, digits, p_note, v_applied, balance,
            p_trace_id);
END
$$;
