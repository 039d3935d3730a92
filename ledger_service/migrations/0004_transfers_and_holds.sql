-- Transfers and holds between the accounts of one company and currency, for
-- internal services (ledger.v2 CreateTransfer(s), CreateHold, PostHold,
-- VoidHold; functions/50_transfers.sql).

-- A wallet is a TradeBoss customer's: webhooks reach it and it never goes
-- below zero but by ABNORMAL_OVERTRADING. An internal account is a service's
-- (fees, bonuses, payouts): only transfers, holds and funding reach it, and
-- it may go below zero when opened with allow_negative.
CREATE TYPE account_kind AS ENUM ('wallet', 'internal');

ALTER TABLE accounts
    ADD COLUMN kind account_kind NOT NULL DEFAULT 'wallet',
    ADD COLUMN allow_negative boolean NOT NULL DEFAULT false,
    -- What open holds reserve: the available balance is balance - held.
    ADD COLUMN held numeric(38, 18) NOT NULL DEFAULT 0 CHECK (held >= 0),
    -- Minus what this account received, net, by transfers from the other
    -- accounts of its company and currency. Each transfer adds +x to one row
    -- and -x to another, so over a company and currency these sum to zero
    -- (reconcile checks it), as the system shares do with the system balances.
    ADD COLUMN transfer_share numeric(38, 18) NOT NULL DEFAULT 0,
    ADD CONSTRAINT only_internal_may_go_negative CHECK (kind = 'internal' OR NOT allow_negative),
    DROP CONSTRAINT money_is_conserved,
    ADD CONSTRAINT money_is_conserved
        CHECK (balance + clearing_share + funding_share + transfer_share = 0);

ALTER TABLE journal_entries
    -- The other side when it is another account of the same company and
    -- currency (a transfer, a hold); then counterparty (a system account) is NULL.
    ADD COLUMN counterparty_customer text,
    -- The change to the account's held amount, and the held amount after it.
    ADD COLUMN held_change numeric(38, 18) NOT NULL DEFAULT 0,
    ADD COLUMN held_after numeric(38, 18) NOT NULL DEFAULT 0,
    ALTER COLUMN counterparty DROP NOT NULL,
    DROP CONSTRAINT counterparty_of_cause,
    ADD CONSTRAINT counterparty_of_cause CHECK (
        (cause IN ('adjustment', 'reversal') AND counterparty = 'clearing'
         AND counterparty_customer IS NULL)
        OR (cause IN ('deposit', 'withdrawal') AND counterparty = 'funding'
            AND counterparty_customer IS NULL)
        OR (cause IN ('transfer', 'hold', 'hold_post', 'hold_void', 'hold_expiry')
            AND counterparty IS NULL AND counterparty_customer IS NOT NULL));

CREATE TYPE transfer_kind AS ENUM ('transfer', 'hold');
CREATE TYPE hold_state AS ENUM ('open', 'posted', 'voided', 'expired');

-- What the transfer functions answer (mirrored by TransferStatus in
-- ledger_service/statuses.py; a test keeps the two equal). SEEN: the id is
-- known, the caller compares and replays; the *_NOT_FOUND, TOO_MANY_DIGITS,
-- HOLD_* refusals write nothing; INSUFFICIENT_FUNDS, BALANCE_LIMIT_EXCEEDED
-- and CREATED are recorded; POSTED, VOIDED, EXPIRED close a hold.
CREATE TYPE transfer_status AS ENUM (
    'SEEN', 'DEBIT_ACCOUNT_NOT_FOUND', 'CREDIT_ACCOUNT_NOT_FOUND', 'TOO_MANY_DIGITS',
    'INSUFFICIENT_FUNDS', 'BALANCE_LIMIT_EXCEEDED', 'CREATED',
    'HOLD_NOT_FOUND', 'HOLD_EXPIRED', 'HOLD_POSTED', 'HOLD_VOIDED', 'POST_EXCEEDS_HOLD',
    'POSTED', 'VOIDED');

-- Every transfer and hold an internal service asked for, under the caller's
-- id, scoped to the debit account's customer of a company (the same scope as
-- TradeBoss's request numbers, and the same shard on Citus).
CREATE TABLE transfers (
    company_id      bigint          NOT NULL,
    -- The debit account's customer.
    customer        text            NOT NULL,
    transfer_id     text            NOT NULL,
    kind            transfer_kind   NOT NULL,
    currency        text            NOT NULL,
    credit_customer text            NOT NULL,
    amount          numeric(38, 18) NOT NULL CHECK (amount > 0),
    reference       text            NOT NULL DEFAULT '',
    metadata        text            NOT NULL DEFAULT '',
    -- CREATED, or the refusal it was recorded with.
    result          transfer_status NOT NULL
        CHECK (result IN ('CREATED', 'INSUFFICIENT_FUNDS', 'BALANCE_LIMIT_EXCEEDED')),
    -- A created hold's life: open until posted, voided or expired.
    state           hold_state,
    expires_at      timestamptz,
    posted_amount   numeric(38, 18),
    closed_at       timestamptz,
    trace_id        text            NOT NULL DEFAULT '',
    created_at      timestamptz     NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (company_id, customer, transfer_id),
    CONSTRAINT two_accounts CHECK (customer <> credit_customer),
    CONSTRAINT hold_has_state CHECK ((kind = 'hold' AND result = 'CREATED') = (state IS NOT NULL)),
    CONSTRAINT posted_within_hold CHECK (
        (state = 'posted') = (posted_amount IS NOT NULL)
        AND (posted_amount IS NULL OR (posted_amount > 0 AND posted_amount <= amount)))
);
-- The sweeper releases expired holds oldest first; an account's open holds
-- are released when it is next locked.
CREATE INDEX open_holds_by_expiry ON transfers (expires_at) WHERE state = 'open';
CREATE INDEX open_holds_by_account ON transfers (company_id, customer, currency)
    WHERE state = 'open';
