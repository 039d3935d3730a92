-- Transfers and holds between two accounts of one company and currency, for
-- internal services (ledger_service/transfers.py). The debit account is
-- (p_company_id, p_customer, p_currency), the credit account the same with
-- p_credit_customer. Checks, top to bottom: exactly once -> both accounts
-- exist -> the amount fits their scale -> funds (available = balance - held,
-- unless the debit account may go negative) -> balance limit -> post ->
-- record. The caller holds both accounts' locks (ledger_transfer_batch).
DROP FUNCTION IF EXISTS ledger_transfer;
CREATE FUNCTION ledger_transfer(
    p_company_id bigint, p_customer text, p_transfer_id text, p_kind transfer_kind,
    p_credit_customer text, p_currency text, p_amount numeric, p_fraction_digits integer,
    p_reference text, p_metadata text, p_expires_at timestamptz, p_balance_limit numeric,
    p_trace_id text,
    OUT status transfer_status, OUT debit_balance numeric, OUT debit_held numeric,
    OUT credit_balance numeric, OUT digits smallint, OUT seen transfers)
LANGUAGE plpgsql AS $$
DECLARE
    v_debit accounts;
    v_credit accounts;
    v_cause entry_cause := CASE WHEN p_kind = 'hold' THEN 'hold' ELSE 'transfer' END;
BEGIN
    SELECT * INTO seen FROM transfers t
    WHERE t.company_id = p_company_id AND t.customer = p_customer
      AND t.transfer_id = p_transfer_id;
    IF FOUND THEN
        status := 'SEEN';
    END IF;
    SELECT * INTO v_debit FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = p_currency;
    SELECT * INTO v_credit FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_credit_customer
      AND a.currency = p_currency;
    debit_balance := v_debit.balance;
    debit_held := v_debit.held;
    credit_balance := v_credit.balance;
    digits := least(v_debit.digits, v_credit.digits);
    IF status = 'SEEN' THEN
        RETURN;
    ELSIF v_debit IS NULL THEN
        status := 'DEBIT_ACCOUNT_NOT_FOUND';
        RETURN;
    ELSIF v_credit IS NULL THEN
        status := 'CREDIT_ACCOUNT_NOT_FOUND';
        RETURN;
    ELSIF p_fraction_digits > digits THEN
        status := 'TOO_MANY_DIGITS';
        RETURN;
    END IF;

    debit_held := ledger_held(p_company_id, p_customer, p_currency, v_debit.held);
    IF NOT v_debit.allow_negative AND v_debit.balance - debit_held - p_amount < 0 THEN
        status := 'INSUFFICIENT_FUNDS';
    ELSIF abs(v_debit.balance - p_amount) >= p_balance_limit
          OR abs(v_credit.balance + p_amount) >= p_balance_limit THEN
        status := 'BALANCE_LIMIT_EXCEEDED';
    ELSIF p_kind = 'hold' THEN
        -- Reserved on the debit account only; the credit account sees it when posted.
        PERFORM ledger_post_entry(p_company_id, p_customer, p_currency, 0, NULL, 'hold',
                                  p_transfer_id, NULL, NULL, p_trace_id, p_credit_customer,
                                  p_amount);
        debit_held := debit_held + p_amount;
        status := 'CREATED';
    ELSE
        debit_balance := ledger_post_entry(p_company_id, p_customer, p_currency, -p_amount,
                                           NULL, v_cause, p_transfer_id, NULL, NULL, p_trace_id,
                                           p_credit_customer);
        credit_balance := ledger_post_entry(p_company_id, p_credit_customer, p_currency,
                                            p_amount, NULL, v_cause, p_transfer_id, NULL, NULL,
                                            p_trace_id, p_customer);
        status := 'CREATED';
    END IF;
    INSERT INTO transfers (company_id, customer, transfer_id, kind, currency, credit_customer,
                           amount, reference, metadata, result, state, expires_at, trace_id)
    VALUES (p_company_id, p_customer, p_transfer_id, p_kind, p_currency, p_credit_customer,
            p_amount, p_reference, p_metadata, status,
            CASE WHEN p_kind = 'hold' AND status = 'CREATED' THEN 'open'::hold_state END,
            p_expires_at, p_trace_id);
END
$$;

-- CreateTransfers and CreateHold: up to N transfers in one statement and one
-- commit. Every account they name (debit and credit) is locked first
-- (ledger_lock_accounts), then each runs in the order sent with its own
-- result row: a refusal never fails the others.
DROP FUNCTION IF EXISTS ledger_transfer_batch;
CREATE FUNCTION ledger_transfer_batch(
    p_company_id bigint[], p_customer text[], p_transfer_id text[], p_kind transfer_kind[],
    p_credit_customer text[], p_currency text[], p_amount numeric[],
    p_fraction_digits integer[], p_reference text[], p_metadata text[],
    p_expires_at timestamptz[], p_trace_id text[], p_balance_limit numeric)
RETURNS TABLE (status transfer_status, debit_balance numeric, debit_held numeric,
               credit_balance numeric, digits smallint, seen transfers)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM ledger_lock_accounts(p_company_id || p_company_id, p_customer || p_credit_customer,
                                 p_currency || p_currency);
    FOR i IN 1 .. cardinality(p_transfer_id) LOOP
        SELECT * INTO r FROM ledger_transfer(
            p_company_id => p_company_id[i], p_customer => p_customer[i],
            p_transfer_id => p_transfer_id[i], p_kind => p_kind[i],
            p_credit_customer => p_credit_customer[i], p_currency => p_currency[i],
            p_amount => p_amount[i], p_fraction_digits => p_fraction_digits[i],
            p_reference => p_reference[i], p_metadata => p_metadata[i],
            p_expires_at => p_expires_at[i], p_balance_limit => p_balance_limit,
            p_trace_id => p_trace_id[i]);
        status := r.status;
        debit_balance := r.debit_balance;
        debit_held := r.debit_held;
        credit_balance := r.credit_balance;
        digits := r.digits;
        seen := r.seen;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Closes an open hold: p_post true turns p_amount of it (NULL: all) into a
-- transfer to its credit account and releases the rest; false voids it. A
-- hold past its expiry is released as expired instead, and the post or void
-- is refused. Statuses: HOLD_NOT_FOUND, HOLD_POSTED, HOLD_VOIDED,
-- HOLD_EXPIRED (the hold's state: the caller compares and replays or
-- refuses), POST_EXCEEDS_HOLD, TOO_MANY_DIGITS, BALANCE_LIMIT_EXCEEDED
-- (nothing written), POSTED, VOIDED.
DROP FUNCTION IF EXISTS ledger_close_hold;
CREATE FUNCTION ledger_close_hold(
    p_company_id bigint, p_customer text, p_currency text, p_hold_id text, p_post boolean,
    p_amount numeric,
    p_fraction_digits integer, p_balance_limit numeric, p_trace_id text,
    OUT status transfer_status, OUT debit_balance numeric, OUT debit_held numeric,
    OUT credit_balance numeric, OUT digits smallint, OUT hold transfers)
LANGUAGE plpgsql AS $$
DECLARE
    v_amount numeric;
    v_now timestamptz := clock_timestamp();  -- not in an UPDATE: Citus refuses it there
BEGIN
    -- Its accounts first (a hold's accounts never change), then the hold.
    SELECT * INTO hold FROM transfers t
    WHERE t.company_id = p_company_id AND t.customer = p_customer AND t.transfer_id = p_hold_id;
    -- A hold is named by its debit account, currency included.
    IF NOT FOUND OR hold.state IS NULL OR hold.currency <> p_currency THEN
        hold := NULL;
        status := 'HOLD_NOT_FOUND';
        RETURN;
    END IF;
    PERFORM ledger_lock_accounts(ARRAY[p_company_id, p_company_id],
                                 ARRAY[p_customer, hold.credit_customer],
                                 ARRAY[hold.currency, hold.currency]);
    SELECT * INTO hold FROM transfers t
    WHERE t.company_id = p_company_id AND t.customer = p_customer AND t.transfer_id = p_hold_id;
    SELECT a.balance, a.held, a.digits INTO debit_balance, debit_held, digits FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = hold.currency;
    SELECT a.balance, least(ledger_close_hold.digits, a.digits) INTO credit_balance, digits
    FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = hold.credit_customer
      AND a.currency = hold.currency;

    IF hold.state = 'open' AND hold.expires_at <= now() THEN
        debit_held := ledger_held(p_company_id, p_customer, hold.currency, debit_held);
        SELECT * INTO hold FROM transfers t
        WHERE t.company_id = p_company_id AND t.customer = p_customer
          AND t.transfer_id = p_hold_id;
    END IF;
    IF hold.state <> 'open' THEN
        status := CASE hold.state WHEN 'posted' THEN 'HOLD_POSTED' WHEN 'voided' THEN 'HOLD_VOIDED'
                                  ELSE 'HOLD_EXPIRED' END;
        RETURN;
    END IF;
    IF NOT p_post THEN
        PERFORM ledger_post_entry(p_company_id, p_customer, hold.currency, 0, NULL, 'hold_void',
                                  p_hold_id, NULL, NULL, p_trace_id, hold.credit_customer,
                                  -hold.amount);
        debit_held := debit_held - hold.amount;
        UPDATE transfers t SET state = 'voided', closed_at = v_now
        WHERE t.company_id = p_company_id AND t.customer = p_customer
          AND t.transfer_id = p_hold_id
        RETURNING * INTO hold;
        status := 'VOIDED';
        RETURN;
    END IF;

    v_amount := coalesce(p_amount, hold.amount);
    IF v_amount > hold.amount THEN
        status := 'POST_EXCEEDS_HOLD';
    ELSIF p_fraction_digits > digits THEN
        status := 'TOO_MANY_DIGITS';
    ELSIF abs(credit_balance + v_amount) >= p_balance_limit THEN
        status := 'BALANCE_LIMIT_EXCEEDED';
    ELSE
        -- What was reserved is released whole; what is posted moves.
        debit_balance := ledger_post_entry(p_company_id, p_customer, hold.currency, -v_amount,
                                           NULL, 'hold_post', p_hold_id, NULL, NULL, p_trace_id,
                                           hold.credit_customer, -hold.amount);
        debit_held := debit_held - hold.amount;
        credit_balance := ledger_post_entry(p_company_id, hold.credit_customer, hold.currency,
                                            v_amount, NULL, 'hold_post', p_hold_id, NULL, NULL,
                                            p_trace_id, p_customer);
        UPDATE transfers t
        SET state = 'posted', posted_amount = v_amount, closed_at = v_now
        WHERE t.company_id = p_company_id AND t.customer = p_customer
          AND t.transfer_id = p_hold_id
        RETURNING * INTO hold;
        status := 'POSTED';
    END IF;
END
$$;

-- The sweeper (ledger_service/holds.py): releases up to p_limit accounts'
-- expired holds, each account under its locks, oldest expiry first. Returns
-- the number of holds released.
DROP FUNCTION IF EXISTS ledger_expire_holds;
CREATE FUNCTION ledger_expire_holds(p_limit integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_company_id bigint[];
    v_customer text[];
    v_currency text[];
    v_released integer := 0;
BEGIN
    SELECT array_agg(company_id), array_agg(customer), array_agg(currency)
    INTO v_company_id, v_customer, v_currency
    FROM (SELECT DISTINCT t.company_id, t.customer, t.currency FROM (
              SELECT * FROM transfers
              WHERE state = 'open' AND expires_at <= now()
              ORDER BY expires_at LIMIT p_limit) t) due;
    IF v_company_id IS NULL THEN
        RETURN 0;
    END IF;
    -- All at once, so the sweeper keeps the one lock order too.
    PERFORM ledger_lock_accounts(v_company_id, v_customer, v_currency);
    FOR i IN 1 .. cardinality(v_company_id) LOOP
        v_released := v_released
            + ledger_release_expired(v_company_id[i], v_customer[i], v_currency[i]);
    END LOOP;
    RETURN v_released;
END
$$;
