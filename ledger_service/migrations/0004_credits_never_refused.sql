-- Credits are never refused for lack of balance: only a debit (a negative
-- amount) is checked against zero. 0003 compared every movement, so a
-- NORMAL_CLOSE or a deposit into a wallet already below zero (after an
-- ABNORMAL_OVERTRADING) was refused. Found by tests/test_model.py.

CREATE OR REPLACE FUNCTION ledger_adjust(
    p_company_id bigint, p_customer text, p_currency text, p_user_name text,
    p_request_unique_no text, p_operation_type text, p_amount numeric,
    p_amount_digits smallint, p_delta numeric, p_may_overdraw boolean,
    p_overtrading_policy text, p_biz_type integer, p_order_id bigint,
    p_request_time_ms bigint, p_client_ip text, p_metadata text, p_trace_id text,
    OUT status text, OUT balance numeric, OUT digits smallint, OUT user_name text,
    OUT seen requests)
LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text := 'APPLIED';
    v_applied numeric := 0;
BEGIN
    SELECT * INTO status, balance, digits, user_name
    FROM ledger_lock_wallet(p_company_id, p_customer, p_currency, p_amount_digits,
                            p_user_name);
    IF status <> 'OK' THEN
        RETURN;
    END IF;

    -- Exactly once: a number already recorded gets its first answer again.
    SELECT * INTO seen FROM requests r
    WHERE r.company_id = p_company_id AND r.customer = p_customer
      AND r.request_unique_no = p_request_unique_no;
    IF FOUND THEN
        status := 'SEEN';
        RETURN;
    END IF;

    -- No overdraft: a debit may not go below zero, unless it is an
    -- ABNORMAL_OVERTRADING. Credits never need the check.
    IF p_delta < 0 AND balance + p_delta < 0 AND NOT p_may_overdraw THEN
        v_outcome := 'INSUFFICIENT_BALANCE';
    ELSE
        balance := ledger_post_entry(p_company_id, p_customer, p_currency, p_delta,
                                     'adjustment', p_request_unique_no, p_operation_type,
                                     p_overtrading_policy, p_trace_id);
        v_applied := p_delta;
    END IF;

    INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                          user_name, operation_type, amount, amount_digits, biz_type,
                          order_id, request_time_ms, client_ip, metadata, applied_amount,
                          balance_after, overtrading_policy, trace_id)
    VALUES (p_company_id, p_customer, p_request_unique_no, 'adjustment', p_currency,
            v_outcome, p_user_name, p_operation_type, p_amount, p_amount_digits, p_biz_type,
            p_order_id, p_request_time_ms, p_client_ip, p_metadata, v_applied, balance,
            p_overtrading_policy, p_trace_id);
    status := v_outcome;
END
$$;

CREATE OR REPLACE FUNCTION ledger_fund(
    p_company_id bigint, p_customer text, p_currency text, p_kind text,
    p_amount numeric, p_fraction_digits integer, p_idempotency_key text, p_note text,
    p_trace_id text,
    OUT status text, OUT balance numeric, OUT digits smallint, OUT user_name text,
    OUT seen requests)
LANGUAGE plpgsql AS $$
DECLARE
    v_delta numeric := CASE WHEN p_kind = 'deposit' THEN p_amount ELSE -p_amount END;
    v_outcome text := 'APPLIED';
    v_applied numeric := 0;
BEGIN
    SELECT * INTO status, balance, digits, user_name
    FROM ledger_lock_wallet(p_company_id, p_customer, p_currency, NULL, '');
    IF status <> 'OK' THEN
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

    -- A withdrawal never takes the balance below zero; a deposit always lands.
    IF v_delta < 0 AND balance + v_delta < 0 THEN
        v_outcome := 'INSUFFICIENT_BALANCE';
    ELSE
        balance := ledger_post_entry(p_company_id, p_customer, p_currency, v_delta, p_kind,
                                     p_idempotency_key, NULL, NULL, p_trace_id);
        v_applied := v_delta;
    END IF;
    INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                          amount, amount_digits, note, applied_amount, balance_after, trace_id)
    VALUES (p_company_id, p_customer, p_idempotency_key, p_kind, p_currency, v_outcome,
            p_amount, digits, p_note, v_applied, balance, p_trace_id);
    status := v_outcome;
END
$$;
