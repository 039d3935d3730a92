-- Find a request's journal entry by its number: operators ask for it, and
-- reconciliation joins requests to entries this way. Without it a planner
-- with stale statistics (after a bulk load) picked nested loops over the
-- whole journal.
CREATE INDEX journal_entries_by_request
    ON journal_entries (company_id, customer, request_unique_no);
