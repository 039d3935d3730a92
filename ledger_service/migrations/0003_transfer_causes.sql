-- The journal causes of transfers and holds (0004). A new enum value can only
-- be used once committed, so they come alone, before the tables that use them.
ALTER TYPE entry_cause ADD VALUE IF NOT EXISTS 'transfer';
ALTER TYPE entry_cause ADD VALUE IF NOT EXISTS 'hold';
ALTER TYPE entry_cause ADD VALUE IF NOT EXISTS 'hold_post';
ALTER TYPE entry_cause ADD VALUE IF NOT EXISTS 'hold_void';
ALTER TYPE entry_cause ADD VALUE IF NOT EXISTS 'hold_expiry';
