-- Every money movement as one server-side function: one round trip, one
-- transaction (the statement's own), whole or not at all. Python validates
-- the input and decides the signed amount (ledger_service/money.py); these
-- functions do the rest in the order a reader expects:
--   lock the wallet -> check scale and userName -> look up the request number
--   -> refuse an overdraft -> move the balance with its journal entry
--   -> record the request.
-- Each returns a status word and the wallet's state; `seen` carries the
-- request already recorded under the number, for the caller to replay or to
-- name the conflict.

-- Locks the wallet row (serializing every request on it, and nothing else),
-- checks the caller's scale and userName, binds an unbound userName.
CREATE FUNCTION ledger_lock_wallet(
    p_company_id bigint, p_customer text, p_currency text,
    p_amount_digits smallint, p_user_name text,
    OUT status text, OUT balance numeric, OUT digits smallint, OUT user_name text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT a.balance, a.digits, a.user_name INTO balance, digits, user_name FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = p_currency
    FOR UPDATE;
    IF NOT FOUND THEN
        status := 'ACCOUNT_NOT_FOUND';
    ELSIF p_amount_digits IS NOT NULL AND p_amount_digits <> digits THEN
        status := 'ACCOUNT_SCALE_MISMATCH';
    ELSIF p_user_name <> '' AND user_name IS NOT NULL AND user_name <> p_user_name THEN
        status := 'USER_NAME_MISMATCH';
    ELSE
        IF p_user_name <> '' AND user_name IS NULL THEN
            UPDATE accounts a SET user_name = p_user_name
            WHERE a.company_id = p_company_id AND a.customer = p_customer
              AND a.currency = p_currency;
            user_name := p_user_name;
        END IF;
        status := 'OK';
    END IF;
END
$$;

-- The only way a balance changes: the balance and the journal entry that
-- proves it, together.
CREATE FUNCTION ledger_post_entry(
    p_company_id bigint, p_customer text, p_currency text, p_amount numeric,
    p_cause text, p_request_unique_no text, p_operation_type text,
    p_overtrading_policy text, p_trace_id text)
RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    v_balance numeric;
    v_entry_no bigint;
BEGIN
    UPDATE accounts SET balance = balance + p_amount, entry_count = entry_count + 1
    WHERE company_id = p_company_id AND customer = p_customer AND currency = p_currency
    RETURNING balance, entry_count INTO v_balance, v_entry_no;
    INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount,
                                 balance_after, cause, request_unique_no, operation_type,
                                 overtrading_policy, trace_id)
    VALUES (p_company_id, p_customer, p_currency, v_entry_no, p_amount, v_balance, p_cause,
            p_request_unique_no, p_operation_type, p_overtrading_policy, p_trace_id);
    RETURN v_balance;
END
$$;

-- TradeBoss's execute. Statuses: ACCOUNT_NOT_FOUND, ACCOUNT_SCALE_MISMATCH,
-- USER_NAME_MISMATCH (nothing written), SEEN (the number is known: `seen`),
-- INSUFFICIENT_BALANCE (the refusal recorded), APPLIED.
CREATE FUNCTION ledger_adjust(
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

    -- No overdraft: only ABNORMAL_OVERTRADING may go below zero.
    IF balance + p_delta < 0 AND NOT p_may_overdraw THEN
        v_outcome := 'INSUFFICIENT_BALANCE';
    ELSE
        balance := ledger_post_entry(p_company_id, p_customer, p_currency, p_delta,
                                     'adjustment', p_request_unique_no, p_operation_type,
                                     p_overtrading_policy, p_trace_id);
        v_applied := p_delta;
    END IF;

    -- The primary key makes the number count once, even across wallets of
    -- one customer racing (the loser's whole statement rolls back).
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

-- TradeBoss's cancel. Statuses: ACCOUNT_NOT_FOUND, ACCOUNT_SCALE_MISMATCH,
-- USER_NAME_MISMATCH, TARGET_NOT_ADJUSTMENT, TARGET_CURRENCY_MISMATCH,
-- TARGET_USER_NAME_MISMATCH (nothing written), SEEN (the cancel's own number
-- is known: `seen`), and the recorded answers NEVER_RECEIVED (with
-- tombstone_written), NOT_APPLIED, ALREADY_REVERSED, REVERSED.
CREATE FUNCTION ledger_cancel(
    p_company_id bigint, p_customer text, p_currency text, p_user_name text,
    p_request_unique_no text, p_reverse_request_unique_no text, p_amount numeric,
    p_amount_digits smallint, p_biz_type integer, p_order_id bigint,
    p_request_time_ms bigint, p_client_ip text, p_metadata text, p_cancel_remark text,
    p_trace_id text,
    OUT status text, OUT balance numeric, OUT digits smallint, OUT user_name text,
    OUT seen requests, OUT reversed_amount numeric, OUT target_amount numeric,
    OUT tombstone_written boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_target requests;
BEGIN
    reversed_amount := 0;
    tombstone_written := false;
    -- The same wallet lock as ledger_adjust: an execute and its cancel never
    -- interleave.
    SELECT * INTO status, balance, digits, user_name
    FROM ledger_lock_wallet(p_company_id, p_customer, p_currency, p_amount_digits,
                            p_user_name);
    IF status <> 'OK' THEN
        RETURN;
    END IF;

    -- Exactly once for the cancel itself.
    SELECT * INTO seen FROM requests r
    WHERE r.company_id = p_company_id AND r.customer = p_customer
      AND r.request_unique_no = p_request_unique_no;
    IF FOUND THEN
        status := 'SEEN';
        RETURN;
    END IF;

    SELECT * INTO v_target FROM requests r
    WHERE r.company_id = p_company_id AND r.customer = p_customer
      AND r.request_unique_no = p_reverse_request_unique_no
    FOR UPDATE;

    IF NOT FOUND THEN
        -- Never received: a tombstone under the execute's own number (same
        -- primary key, so the two can never both be written) refuses it if
        -- it arrives late.
        INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                              user_name, amount, amount_digits, reverse_request_unique_no,
                              trace_id)
        VALUES (p_company_id, p_customer, p_reverse_request_unique_no, 'tombstone', p_currency,
                'ALREADY_CANCELLED', p_user_name, p_amount, p_amount_digits,
                p_request_unique_no, p_trace_id);
        tombstone_written := true;
        status := 'NEVER_RECEIVED';
    ELSIF v_target.kind NOT IN ('adjustment', 'tombstone') THEN
        status := 'TARGET_NOT_ADJUSTMENT';
        RETURN;
    ELSIF v_target.currency <> p_currency THEN
        status := 'TARGET_CURRENCY_MISMATCH';
        RETURN;
    ELSIF v_target.user_name <> p_user_name THEN
        status := 'TARGET_USER_NAME_MISMATCH';
        RETURN;
    ELSIF v_target.kind = 'tombstone' THEN
        status := 'NEVER_RECEIVED';  -- another cancel gave it up already
    ELSIF v_target.outcome <> 'APPLIED' THEN
        status := 'NOT_APPLIED';
    ELSIF v_target.reversed_by IS NOT NULL THEN
        status := 'ALREADY_REVERSED';
    ELSE
        -- Reverse exactly what was applied, once: the conditional update
        -- refuses a second reversal.
        UPDATE requests SET reversed_by = p_request_unique_no, reversed_at = clock_timestamp()
        WHERE company_id = p_company_id AND customer = p_customer
          AND request_unique_no = p_reverse_request_unique_no AND reversed_by IS NULL;
        reversed_amount := -v_target.applied_amount;
        target_amount := v_target.amount;
        balance := ledger_post_entry(p_company_id, p_customer, p_currency, reversed_amount,
                                     'reversal', p_request_unique_no, v_target.operation_type,
                                     v_target.overtrading_policy, p_trace_id);
        status := 'REVERSED';
    END IF;

    INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                          user_name, amount, amount_digits, biz_type, order_id,
                          request_time_ms, client_ip, metadata, note,
                          reverse_request_unique_no, applied_amount, balance_after, trace_id)
    VALUES (p_company_id, p_customer, p_request_unique_no, 'cancel', p_currency, status,
            p_user_name, p_amount, p_amount_digits, p_biz_type, p_order_id, p_request_time_ms,
            p_client_ip, p_metadata, p_cancel_remark, p_reverse_request_unique_no,
            reversed_amount, balance, p_trace_id);
END
$$;

-- Operator funding. p_kind is 'deposit' or 'withdrawal'. Statuses:
-- ACCOUNT_NOT_FOUND, TOO_MANY_DIGITS (nothing written; `digits` says the
-- scale), SEEN, INSUFFICIENT_BALANCE (recorded), APPLIED.
CREATE FUNCTION ledger_fund(
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

    IF balance + v_delta < 0 THEN
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
