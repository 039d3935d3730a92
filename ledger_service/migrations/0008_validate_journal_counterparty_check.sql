-- migrate: no-transaction
-- Checks every existing entry against 0007's counterparty_of_cause. Outside a
-- transaction, it takes a lock that lets movements append meanwhile.
ALTER TABLE journal_entries VALIDATE CONSTRAINT counterparty_of_cause;
