-- Exports for finance read the journal by period.
CREATE INDEX journal_entries_by_time ON journal_entries (created_at);
