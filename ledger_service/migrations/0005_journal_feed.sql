-- The journal feed's position (WatchJournal: ledger_service/feed.py says why
-- this order is safe to resume from): the transaction that wrote the entry,
-- and the order entries were written in. Both are column defaults, so
-- ledger_post_entry writes them without naming them.
--
-- feed_seq is an identity column rather than a default of nextval(): the
-- runtime role may insert without a grant on its sequence (like
-- operator_actions.action_id), and nobody can supply a value of their own.
--
-- The entries written before this migration all get its transaction id (the
-- default below is stable, so PostgreSQL stores it once without rewriting the
-- table) and a feed_seq wallet by wallet in entry_no order: any order that
-- keeps each wallet's entries in entry_no order is a correct one for them.
-- Numbering them rewrites those rows once, under this migration's lock.
ALTER TABLE journal_entries
    ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN feed_seq bigint;

-- The append-only trigger is defined after the migrations run, so a fresh
-- database has none yet; an existing one lets this numbering through.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_trigger
               WHERE tgrelid = 'journal_entries'::regclass
                 AND tgname = 'journal_entries_append_only') THEN
        ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only;
    END IF;
END
$$;

UPDATE journal_entries j SET feed_seq = numbered.feed_seq
FROM (SELECT company_id, customer, currency, entry_no,
             row_number() OVER (ORDER BY company_id, customer, currency, entry_no) AS feed_seq
      FROM journal_entries) numbered
WHERE (j.company_id, j.customer, j.currency, j.entry_no)
    = (numbered.company_id, numbered.customer, numbered.currency, numbered.entry_no);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_trigger
               WHERE tgrelid = 'journal_entries'::regclass
                 AND tgname = 'journal_entries_append_only') THEN
        ALTER TABLE journal_entries ENABLE TRIGGER journal_entries_append_only;
    END IF;
END
$$;

ALTER TABLE journal_entries
    ALTER COLUMN feed_seq SET NOT NULL,
    ALTER COLUMN feed_seq ADD GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME journal_feed_seq);
SELECT setval('journal_feed_seq', coalesce(max(feed_seq), 0) + 1, false) FROM journal_entries;

-- The feed reads pages in this order. Built here, not concurrently: the
-- statements above hold the table's lock anyway.
CREATE INDEX journal_entries_by_feed_position ON journal_entries (xact_id, feed_seq);
