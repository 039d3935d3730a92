-- The ledger's tables. Every account-scoped table starts its primary key with
-- (company_id, customer): that is the key a distributed PostgreSQL (Citus)
-- would shard by, and every hot-path statement names it in its WHERE clause.

CREATE TABLE accounts (
    company_id   bigint      NOT NULL,
    customer     text        NOT NULL,
    currency     text        NOT NULL,
    digits       smallint    NOT NULL CHECK (digits BETWEEN 0 AND 18),
    user_name    text,
    balance      numeric     NOT NULL DEFAULT 0,
    -- Number of journal entries; the next entry gets entry_count + 1, so the
    -- journal of an account has no gaps.
    entry_count  bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, customer, currency)
);

-- Append-only: the trigger below refuses UPDATE, DELETE and TRUNCATE.
CREATE TABLE journal_entries (
    company_id         bigint      NOT NULL,
    customer           text        NOT NULL,
    currency           text        NOT NULL,
    entry_no           bigint      NOT NULL,
    amount             numeric     NOT NULL,
    balance_after      numeric     NOT NULL,
    cause              text        NOT NULL
        CHECK (cause IN ('deposit', 'withdrawal', 'adjustment', 'reversal')),
    request_unique_no  text        NOT NULL,
    operation_type     text,
    overtrading_policy text,
    trace_id           text        NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (company_id, customer, currency, entry_no),
    FOREIGN KEY (company_id, customer, currency) REFERENCES accounts
);

CREATE FUNCTION journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal_entries is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER journal_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only();

-- Every request number the ledger has seen, with the outcome it was given, so
-- a repeat gets the same answer (success or refusal). Request numbers are
-- scoped to a customer of a company (see README, "Request numbers").
CREATE TABLE requests (
    company_id                bigint      NOT NULL,
    customer                  text        NOT NULL,
    request_unique_no         text        NOT NULL,
    kind                      text        NOT NULL
        CHECK (kind IN ('adjustment', 'cancel', 'deposit', 'withdrawal', 'tombstone')),
    currency                  text        NOT NULL,
    outcome                   text        NOT NULL,
    user_name                 text        NOT NULL DEFAULT '',
    operation_type            text,
    amount                    numeric,
    amount_digits             smallint,
    biz_type                  integer,
    order_id                  bigint,
    request_time_ms           bigint,
    client_ip                 text,
    metadata                  text,
    note                      text,
    reverse_request_unique_no text,
    -- Signed amount that moved the balance; 0 when nothing moved.
    applied_amount            numeric     NOT NULL DEFAULT 0,
    balance_after             numeric,
    overtrading_policy        text,
    -- For an applied adjustment: the cancel that reversed it.
    reversed_by               text,
    reversed_at               timestamptz,
    trace_id                  text        NOT NULL DEFAULT '',
    created_at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (company_id, customer, request_unique_no),
    FOREIGN KEY (company_id, customer, currency) REFERENCES accounts
);
