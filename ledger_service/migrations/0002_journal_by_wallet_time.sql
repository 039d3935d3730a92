-- migrate: no-transaction
-- A wallet's balance at a point in time is the balance_after of its last
-- entry created by then: one backward step of this index, however long the
-- wallet's journal (GetBalance as_of_time).
CREATE INDEX CONCURRENTLY IF NOT EXISTS journal_entries_by_wallet_time
    ON journal_entries (company_id, customer, currency, created_at, entry_no);
