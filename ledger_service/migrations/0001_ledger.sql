-- The ledger's tables. Functions and triggers are not here: they live in
-- ledger_service/functions/*.sql, re-applied on every migrate, so a fix is an
-- edit of the one current definition.
--
-- Double entry: every journal entry is a transfer between a customer's wallet
-- and one of its company's system accounts of the same currency (TradeBoss
-- clearing for trading, operator funding for deposits and withdrawals).
-- A system account is touched by every trade of its company, so it is not a
-- row that each transaction locks: its balance is spread over the wallets'
-- rows (clearing_share, funding_share: this wallet's part of it), which the
-- transaction locks anyway. So a webhook stays on one row (one shard on
-- Citus), and the company's clearing balance is SUM(clearing_share).
--
-- Every account-scoped table starts its primary key with (company_id,
-- customer): the key a distributed PostgreSQL (Citus) would shard by.
--
-- Amounts are numeric(38, 18): 20 integer and 18 fractional digits. The
-- ledger refuses a movement that would take a balance to 10^19 or beyond, and
-- a reversal moves at most one amount (< 10^18), so every value fits.

CREATE TYPE request_kind AS ENUM ('adjustment', 'cancel', 'deposit', 'withdrawal', 'tombstone');

-- The outcome a request was recorded with (a subset of ledger.v1.Outcome).
CREATE TYPE request_outcome AS ENUM (
    'APPLIED', 'INSUFFICIENT_BALANCE', 'BALANCE_LIMIT_EXCEEDED', 'ALREADY_CANCELLED',
    'REVERSED', 'ALREADY_REVERSED', 'NOT_APPLIED', 'NEVER_RECEIVED',
    'INVALID_ARGUMENT', 'INVALID_AMOUNT', 'AMOUNT_SIGN_MISMATCH', 'TOO_MANY_DIGITS',
    'ACCOUNT_NOT_FOUND', 'ACCOUNT_SCALE_MISMATCH', 'USER_NAME_MISMATCH');

CREATE TYPE entry_cause AS ENUM ('deposit', 'withdrawal', 'adjustment', 'reversal');

-- A company's system accounts, one of each per currency.
CREATE TYPE system_account AS ENUM ('clearing', 'funding');

CREATE TYPE operation_type AS ENUM ('OPEN_POSITION', 'NORMAL_CLOSE', 'ABNORMAL_OVERTRADING');

CREATE TYPE overtrading_policy AS ENUM ('deduct', 'ignore');

CREATE TABLE accounts (
    company_id     bigint         NOT NULL,
    customer       text           NOT NULL,
    currency       text           NOT NULL,
    digits         smallint       NOT NULL CHECK (digits BETWEEN 0 AND 18),
    user_name      text,
    balance        numeric(38, 18) NOT NULL DEFAULT 0,
    -- This wallet's part of its company's clearing and funding accounts.
    clearing_share numeric(38, 18) NOT NULL DEFAULT 0,
    funding_share  numeric(38, 18) NOT NULL DEFAULT 0,
    -- Number of journal entries; the next entry gets entry_count + 1, so the
    -- journal of an account has no gaps.
    entry_count    bigint         NOT NULL DEFAULT 0,
    created_at     timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, customer, currency),
    -- Conservation, row by row: what the wallet holds came from (or went to)
    -- its company's system accounts.
    CONSTRAINT money_is_conserved CHECK (balance + clearing_share + funding_share = 0)
);

-- Append-only (a trigger refuses UPDATE, DELETE and TRUNCATE; the runtime
-- role is granted SELECT and INSERT only: docs/deployment.md).
CREATE TABLE journal_entries (
    company_id         bigint             NOT NULL,
    customer           text               NOT NULL,
    currency           text               NOT NULL,
    entry_no           bigint             NOT NULL,
    -- The transfer: the wallet's balance moves by amount, the counterparty
    -- system account of the same company and currency by -amount.
    amount             numeric(38, 18)    NOT NULL,
    counterparty       system_account     NOT NULL,
    balance_after      numeric(38, 18)    NOT NULL,
    cause              entry_cause        NOT NULL,
    request_unique_no  text               NOT NULL,
    operation_type     operation_type,
    overtrading_policy overtrading_policy,
    trace_id           text               NOT NULL DEFAULT '',
    created_at         timestamptz        NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (company_id, customer, currency, entry_no),
    FOREIGN KEY (company_id, customer, currency) REFERENCES accounts,
    CONSTRAINT counterparty_of_cause CHECK (
        (cause IN ('adjustment', 'reversal') AND counterparty = 'clearing')
        OR (cause IN ('deposit', 'withdrawal') AND counterparty = 'funding'))
);
-- Exports for finance read the journal by period.
CREATE INDEX journal_entries_by_time ON journal_entries (created_at);
-- A request's journal entry by its number: operators ask for it, and
-- reconciliation joins requests to entries this way.
CREATE INDEX journal_entries_by_request
    ON journal_entries (company_id, customer, request_unique_no);

-- Every request number the ledger has seen, with the outcome it was given, so
-- a repeat gets the same answer (success or refusal). Request numbers are
-- scoped to a customer of a company (README, "Decisions"). A refused execute
-- may name a wallet that does not exist, so there is no foreign key to it.
CREATE TABLE requests (
    company_id                bigint          NOT NULL,
    customer                  text            NOT NULL,
    request_unique_no         text            NOT NULL,
    kind                      request_kind    NOT NULL,
    -- '' when the request did not carry a usable one.
    currency                  text            NOT NULL,
    outcome                   request_outcome NOT NULL,
    user_name                 text            NOT NULL DEFAULT '',
    operation_type            operation_type,
    -- NULL when the amount sent was not a plain decimal (amount_as_sent has it).
    amount                    numeric(38, 18),
    amount_as_sent            text,
    amount_digits             integer,
    biz_type                  integer,
    order_id                  bigint,
    request_time_ms           bigint,
    client_ip                 text,
    metadata                  text,
    cancel_remark             text,
    funding_note              text,
    -- TradeBoss's `timestamp` header when it parsed.
    header_timestamp_ms       bigint,
    -- What the ledger noted about the input: free text cut to its stored
    -- length, optional fields it could not use.
    input_notes               text,
    -- For a recorded refusal: the request field at fault.
    refused_field             text,
    reverse_request_unique_no text,
    -- Signed amount that moved the wallet's balance; 0 when nothing moved.
    applied_amount            numeric(38, 18) NOT NULL DEFAULT 0,
    balance_after             numeric(38, 18),
    overtrading_policy        overtrading_policy,
    -- For an applied adjustment: the cancel that reversed it.
    reversed_by               text,
    reversed_at               timestamptz,
    trace_id                  text            NOT NULL DEFAULT '',
    created_at                timestamptz     NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (company_id, customer, request_unique_no)
);

-- Operators' changes to a wallet that are not money movements (a userName
-- rebound), with who and why. Append-only like the journal.
CREATE TABLE operator_actions (
    action_id   bigint GENERATED ALWAYS AS IDENTITY,
    company_id  bigint      NOT NULL,
    customer    text        NOT NULL,
    currency    text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('rebind_user_name')),
    old_value   text,
    new_value   text        NOT NULL,
    reason      text        NOT NULL,
    operator    text        NOT NULL,
    trace_id    text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (company_id, customer, action_id),
    FOREIGN KEY (company_id, customer, currency) REFERENCES accounts
);

-- Nobody but the owner may rewrite history, whatever the trigger says.
REVOKE UPDATE, DELETE, TRUNCATE ON journal_entries, operator_actions FROM PUBLIC;

-- What a money-moving function answers (mirrored by MovementStatus in
-- ledger_service/statuses.py; a test keeps the two equal): SEEN (the number
-- is known, the caller replays it), a refusal of the target (nothing
-- written), REBOUND, or the outcome the request was recorded with.
CREATE TYPE movement_status AS ENUM (
    'SEEN', 'TARGET_NOT_ADJUSTMENT', 'TARGET_CURRENCY_MISMATCH', 'TARGET_USER_NAME_MISMATCH',
    'REBOUND',
    'APPLIED', 'INSUFFICIENT_BALANCE', 'BALANCE_LIMIT_EXCEEDED', 'ALREADY_CANCELLED',
    'REVERSED', 'ALREADY_REVERSED', 'NOT_APPLIED', 'NEVER_RECEIVED',
    'INVALID_ARGUMENT', 'INVALID_AMOUNT', 'AMOUNT_SIGN_MISMATCH', 'TOO_MANY_DIGITS',
    'ACCOUNT_NOT_FOUND', 'ACCOUNT_SCALE_MISMATCH', 'USER_NAME_MISMATCH');
