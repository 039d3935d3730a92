-- History is never rewritten: the journal and the operator actions log refuse
-- UPDATE, DELETE and TRUNCATE, whoever asks.
CREATE OR REPLACE FUNCTION journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Two triggers a table, each created by a statement of its own (EXECUTE),
-- because of how Citus forwards triggers to the shards of a distributed
-- table: it sends the CREATE TRIGGER text as it was received (a text of
-- several statements is refused there), and it keeps TRUNCATE triggers on
-- the coordinator only (a trigger that also names UPDATE would never reach
-- the shards).
DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['journal_entries', 'operator_actions'] LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only()',
            v_table || '_append_only', v_table);
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only()',
            v_table || '_no_truncate', v_table);
    END LOOP;
END
$$;
