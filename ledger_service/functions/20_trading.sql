-- TradeBoss's execute and cancel, each one transaction in one round trip,
-- called with named arguments (ledger_service/adjustments.py).

-- The execute. Python decides what it can without the wallet (p_refusal: the
-- first problem with the input, in the order of the proto's Outcome enum;
-- p_delta: the signed change); this function decides the rest, top to bottom:
--   lock the wallet (if it exists) -> exactly once -> the recorded refusal
--   -> wallet exists -> amount exact at the wallet's scale -> userName
--   -> overdraft -> balance limit -> post -> record.
DROP FUNCTION IF EXISTS ledger_adjust;
CREATE FUNCTION ledger_adjust(
    p_company_id bigint, p_customer text, p_request_unique_no text, p_currency text,
    p_user_name text, p_operation_type operation_type, p_amount numeric,
    p_amount_as_sent text, p_amount_digits integer, p_biz_type integer, p_order_id bigint,
    p_request_time_ms bigint, p_client_ip text, p_metadata text,
    p_header_timestamp_ms bigint, p_input_notes text,
    p_refusal request_outcome, p_refused_field text,
    p_delta numeric, p_may_overdraw boolean, p_overtrading_policy overtrading_policy,
    p_balance_limit numeric, p_trace_id text,
    OUT status movement_status, OUT balance numeric, OUT digits smallint, OUT user_name text,
    OUT refused_field text, OUT seen requests)
LANGUAGE plpgsql AS $$
DECLARE
    v_wallet_found boolean;
    v_held numeric;
    v_applied numeric := 0;
BEGIN
    -- Serializes every request on this wallet, and nothing else. An internal
    -- account is no TradeBoss wallet: not found.
    SELECT a.balance, a.digits, a.user_name, a.held INTO balance, digits, user_name, v_held
    FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = p_currency
      AND a.kind = 'wallet'
    FOR UPDATE;
    v_wallet_found := FOUND;

    -- Exactly once: a number already recorded gets its first answer again.
    SELECT * INTO seen FROM requests r
    WHERE r.company_id = p_company_id AND r.customer = p_customer
      AND r.request_unique_no = p_request_unique_no;
    IF FOUND THEN
        status := 'SEEN';
        RETURN;
    END IF;

    refused_field := p_refused_field;
    IF p_refusal IS NOT NULL THEN
        status := p_refusal::text::movement_status;
    ELSIF NOT v_wallet_found THEN
        status := 'ACCOUNT_NOT_FOUND';
        refused_field := 'currency';
    ELSIF p_amount <> round(p_amount, digits) THEN
        -- Scale by value: 3 with amountDigits 0 is 3.00 on a 2-digit wallet.
        status := 'ACCOUNT_SCALE_MISMATCH';
        refused_field := 'amount';
    ELSIF user_name IS NOT NULL AND user_name <> p_user_name THEN
        status := 'USER_NAME_MISMATCH';
        refused_field := 'user_name';
    ELSIF p_delta < 0 AND NOT p_may_overdraw
          AND balance - ledger_held(p_company_id, p_customer, p_currency, v_held) + p_delta < 0 THEN
        -- No overdraft: a debit may not spend below zero nor what holds
        -- reserve, unless it is an ABNORMAL_OVERTRADING. Credits never need
        -- the check.
        status := 'INSUFFICIENT_BALANCE';
    ELSIF abs(balance + p_delta) >= p_balance_limit THEN
        status := 'BALANCE_LIMIT_EXCEEDED';
        refused_field := 'amount';
    ELSE
        IF user_name IS NULL THEN
            -- The first execute that passes binds the wallet's userName.
            UPDATE accounts a SET user_name = p_user_name
            WHERE a.company_id = p_company_id AND a.customer = p_customer
              AND a.currency = p_currency;
            user_name := p_user_name;
        END IF;
        balance := ledger_post_entry(p_company_id, p_customer, p_currency, p_delta, 'clearing',
                                     'adjustment', p_request_unique_no, p_operation_type,
                                     p_overtrading_policy, p_trace_id);
        v_applied := p_delta;
        status := 'APPLIED';
    END IF;

    -- The primary key makes the number count once, even across wallets of
    -- one customer racing (the loser's whole statement rolls back).
    INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                          user_name, operation_type, amount, amount_as_sent, amount_digits,
                          biz_type, order_id, request_time_ms, client_ip, metadata,
                          header_timestamp_ms, input_notes, refused_field, applied_amount,
                          balance_after, overtrading_policy, trace_id)
    VALUES (p_company_id, p_customer, p_request_unique_no, 'adjustment', p_currency,
            status::text::request_outcome, p_user_name, p_operation_type, p_amount,
            p_amount_as_sent, p_amount_digits, p_biz_type, p_order_id, p_request_time_ms,
            p_client_ip, p_metadata, p_header_timestamp_ms, p_input_notes, refused_field,
            v_applied, CASE WHEN v_wallet_found THEN balance END,
            CASE WHEN status = 'APPLIED' THEN p_overtrading_policy END, p_trace_id);
END
$$;

-- The cancel. p_currency and p_user_name are NULL when the cancel did not
-- send them; p_request_unique_no is NULL when its own number is unusable.
-- A cancel is refused only for its target (TARGET_*: nothing written).
-- `record_key` is the number the cancel is recorded under.
DROP FUNCTION IF EXISTS ledger_cancel;
CREATE FUNCTION ledger_cancel(
    p_company_id bigint, p_customer text, p_request_unique_no text,
    p_reverse_request_unique_no text, p_currency text, p_user_name text,
    p_amount numeric, p_amount_as_sent text, p_amount_digits integer, p_biz_type integer,
    p_order_id bigint, p_request_time_ms bigint, p_client_ip text, p_metadata text,
    p_cancel_remark text, p_header_timestamp_ms bigint, p_input_notes text, p_trace_id text,
    OUT status movement_status, OUT balance numeric, OUT digits smallint, OUT user_name text,
    OUT seen requests, OUT reversed_amount numeric, OUT target_amount numeric,
    OUT tombstone_written boolean, OUT record_key text)
LANGUAGE plpgsql AS $$
DECLARE
    -- Where a cancel is recorded when its own number cannot be used.
    v_derived_key text := '~cancel~' || p_reverse_request_unique_no;
    v_currency text := p_currency;
    v_target requests;
    v_reversed_at timestamptz;
BEGIN
    reversed_amount := 0;
    tombstone_written := false;
    IF v_currency IS NULL THEN
        -- No currency sent: the wallet of the execute it names (a request's
        -- currency never changes, so reading it before the lock is safe).
        SELECT r.currency INTO v_currency FROM requests r
        WHERE r.company_id = p_company_id AND r.customer = p_customer
          AND r.request_unique_no = p_reverse_request_unique_no;
    END IF;
    -- The same wallet lock as ledger_adjust: an execute and its cancel never
    -- interleave.
    SELECT a.balance, a.digits, a.user_name INTO balance, digits, user_name FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = v_currency
    FOR UPDATE;

    -- Exactly once for the cancel itself: its own number, naming the same
    -- execute, is a repeat. A number that is unusable or already belongs to
    -- another request must not strand the reversal: the cancel is recorded
    -- under the key derived from its target instead.
    record_key := coalesce(p_request_unique_no, v_derived_key);
    SELECT * INTO seen FROM requests r
    WHERE r.company_id = p_company_id AND r.customer = p_customer
      AND r.request_unique_no = record_key;
    IF FOUND AND NOT (seen.kind = 'cancel'
                      AND seen.reverse_request_unique_no = p_reverse_request_unique_no) THEN
        record_key := v_derived_key;
        SELECT * INTO seen FROM requests r
        WHERE r.company_id = p_company_id AND r.customer = p_customer
          AND r.request_unique_no = record_key;
    END IF;
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
                              user_name, amount, amount_as_sent, amount_digits,
                              reverse_request_unique_no, trace_id)
        VALUES (p_company_id, p_customer, p_reverse_request_unique_no, 'tombstone',
                coalesce(p_currency, ''), 'ALREADY_CANCELLED', coalesce(p_user_name, ''),
                p_amount, p_amount_as_sent, p_amount_digits, record_key, p_trace_id);
        tombstone_written := true;
        status := 'NEVER_RECEIVED';
    ELSIF v_target.kind NOT IN ('adjustment', 'tombstone') THEN
        status := 'TARGET_NOT_ADJUSTMENT';
        RETURN;
    ELSIF p_currency IS NOT NULL AND v_target.currency <> ''
          AND v_target.currency <> p_currency THEN
        status := 'TARGET_CURRENCY_MISMATCH';
        RETURN;
    ELSIF p_user_name IS NOT NULL AND v_target.user_name <> ''
          AND v_target.user_name <> p_user_name THEN
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
        -- refuses a second reversal. The time is read first: Citus refuses a
        -- volatile function inside an UPDATE of a distributed table.
        v_reversed_at := clock_timestamp();
        UPDATE requests SET reversed_by = record_key, reversed_at = v_reversed_at
        WHERE company_id = p_company_id AND customer = p_customer
          AND request_unique_no = p_reverse_request_unique_no AND reversed_by IS NULL;
        reversed_amount := -v_target.applied_amount;
        target_amount := v_target.amount;
        balance := ledger_post_entry(p_company_id, p_customer, v_target.currency,
                                     reversed_amount, 'clearing', 'reversal', record_key,
                                     v_target.operation_type, v_target.overtrading_policy,
                                     p_trace_id);
        status := 'REVERSED';
    END IF;

    INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                          user_name, amount, amount_as_sent, amount_digits, biz_type, order_id,
                          request_time_ms, client_ip, metadata, cancel_remark,
                          header_timestamp_ms, input_notes, reverse_request_unique_no,
                          applied_amount, balance_after, trace_id)
    VALUES (p_company_id, p_customer, record_key, 'cancel',
            coalesce(p_currency, v_target.currency, ''), status::text::request_outcome,
            coalesce(p_user_name, ''), p_amount, p_amount_as_sent, p_amount_digits, p_biz_type,
            p_order_id, p_request_time_ms, p_client_ip, p_metadata, p_cancel_remark,
            p_header_timestamp_ms, p_input_notes, p_reverse_request_unique_no, reversed_amount,
            balance, p_trace_id);
END
$$;

-- Group commit (ledger_service/group_commit.py): the executes and cancels that
-- arrived while the previous transaction was in flight, applied in one
-- statement and one commit. Parallel arrays, one element per movement, in
-- arrival order; p_is_cancel says which function each element goes to, and
-- the arguments the other function does not take are NULL there.
-- Every wallet the batch names is locked first (ledger_lock_accounts, one
-- global order, so two batches never deadlock on each other); then the movements run in arrival
-- order, so two on one wallet apply in the order they came. Each returns its
-- own row: a refusal is an outcome like any other and never fails the batch.
-- p_routing_customer is one of the batch's customers: on a Citus cluster the
-- call is delegated to the worker holding its shard, and group commit batches
-- only wallets of that worker (shard_routing.py); here it is not read.
DROP FUNCTION IF EXISTS ledger_apply_batch;
CREATE FUNCTION ledger_apply_batch(
    p_routing_customer text, p_is_cancel boolean[], p_company_id bigint[], p_customer text[],
    p_request_unique_no text[], p_currency text[], p_user_name text[], p_amount numeric[],
    p_amount_as_sent text[], p_amount_digits integer[], p_biz_type integer[],
    p_order_id bigint[], p_request_time_ms bigint[], p_client_ip text[], p_metadata text[],
    p_header_timestamp_ms bigint[], p_input_notes text[], p_trace_id text[],
    p_operation_type operation_type[], p_refusal request_outcome[], p_refused_field text[],
    p_delta numeric[], p_may_overdraw boolean[], p_overtrading_policy overtrading_policy[],
    p_reverse_request_unique_no text[], p_cancel_remark text[], p_balance_limit numeric)
RETURNS TABLE (status movement_status, balance numeric, digits smallint, user_name text,
               refused_field text, seen requests, reversed_amount numeric,
               target_amount numeric, tombstone_written boolean, record_key text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    -- The wallet of each movement; a cancel sent without a currency names
    -- the wallet of its target (a request's currency never changes).
    v_wallet_currency text[] := p_currency;
    v_target_currency text;
BEGIN
    FOR i IN 1 .. cardinality(p_is_cancel) LOOP
        IF p_is_cancel[i] AND p_currency[i] IS NULL THEN
            -- SELECT INTO, not an assignment from a subquery: Citus would
            -- send the assignment's text to the shard as a query.
            SELECT t.currency INTO v_target_currency FROM requests t
            WHERE t.company_id = p_company_id[i] AND t.customer = p_customer[i]
              AND t.request_unique_no = p_reverse_request_unique_no[i];
            v_wallet_currency[i] := v_target_currency;
        END IF;
    END LOOP;
    PERFORM ledger_lock_accounts(p_company_id, p_customer, v_wallet_currency);

    -- Each movement is an assignment, not SELECT ... INTO r FROM: PL/pgSQL
    -- evaluates a lone function call as a simple expression, without an
    -- executor started and ended for it (4% of PostgreSQL's CPU per request).
    FOR i IN 1 .. cardinality(p_is_cancel) LOOP
        IF p_is_cancel[i] THEN
            r := ledger_cancel(
                p_company_id => p_company_id[i], p_customer => p_customer[i],
                p_request_unique_no => p_request_unique_no[i],
                p_reverse_request_unique_no => p_reverse_request_unique_no[i],
                p_currency => p_currency[i], p_user_name => p_user_name[i],
                p_amount => p_amount[i], p_amount_as_sent => p_amount_as_sent[i],
                p_amount_digits => p_amount_digits[i], p_biz_type => p_biz_type[i],
                p_order_id => p_order_id[i], p_request_time_ms => p_request_time_ms[i],
                p_client_ip => p_client_ip[i], p_metadata => p_metadata[i],
                p_cancel_remark => p_cancel_remark[i],
                p_header_timestamp_ms => p_header_timestamp_ms[i],
                p_input_notes => p_input_notes[i], p_trace_id => p_trace_id[i]);
            refused_field := NULL;
            reversed_amount := r.reversed_amount;
            target_amount := r.target_amount;
            tombstone_written := r.tombstone_written;
            record_key := r.record_key;
        ELSE
            r := ledger_adjust(
                p_company_id => p_company_id[i], p_customer => p_customer[i],
                p_request_unique_no => p_request_unique_no[i], p_currency => p_currency[i],
                p_user_name => p_user_name[i], p_operation_type => p_operation_type[i],
                p_amount => p_amount[i], p_amount_as_sent => p_amount_as_sent[i],
                p_amount_digits => p_amount_digits[i], p_biz_type => p_biz_type[i],
                p_order_id => p_order_id[i], p_request_time_ms => p_request_time_ms[i],
                p_client_ip => p_client_ip[i], p_metadata => p_metadata[i],
                p_header_timestamp_ms => p_header_timestamp_ms[i],
                p_input_notes => p_input_notes[i], p_refusal => p_refusal[i],
                p_refused_field => p_refused_field[i], p_delta => p_delta[i],
                p_may_overdraw => p_may_overdraw[i],
                p_overtrading_policy => p_overtrading_policy[i],
                p_balance_limit => p_balance_limit, p_trace_id => p_trace_id[i]);
            refused_field := r.refused_field;
            reversed_amount := NULL;
            target_amount := NULL;
            tombstone_written := NULL;
            record_key := NULL;
        END IF;
        status := r.status;
        balance := r.balance;
        digits := r.digits;
        user_name := r.user_name;
        seen := r.seen;
        RETURN NEXT;
    END LOOP;
END
$$;
