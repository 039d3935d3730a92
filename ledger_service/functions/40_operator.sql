-- Operator action: bind the wallet to another userName, with who and why.
-- Statuses: ACCOUNT_NOT_FOUND (nothing written), REBOUND.
DROP FUNCTION IF EXISTS ledger_rebind_user_name;
CREATE FUNCTION ledger_rebind_user_name(
    p_company_id bigint, p_customer text, p_currency text, p_user_name text, p_reason text,
    p_operator text, p_trace_id text,
    OUT status movement_status, OUT balance numeric, OUT digits smallint,
    OUT previous_user_name text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT a.balance, a.digits, a.user_name INTO balance, digits, previous_user_name
    FROM accounts a
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = p_currency
    FOR UPDATE;
    IF NOT FOUND THEN
        status := 'ACCOUNT_NOT_FOUND';
        RETURN;
    END IF;
    UPDATE accounts a SET user_name = p_user_name
    WHERE a.company_id = p_company_id AND a.customer = p_customer AND a.currency = p_currency;
    INSERT INTO operator_actions (company_id, customer, currency, action, old_value, new_value,
                                  reason, operator, trace_id)
    VALUES (p_company_id, p_customer, p_currency, 'rebind_user_name', previous_user_name,
            p_user_name, p_reason, p_operator, p_trace_id);
    status := 'REBOUND';
END
$$;
