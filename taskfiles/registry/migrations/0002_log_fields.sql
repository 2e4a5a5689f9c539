-- 0002: structured fields on log lines, and each line's position in its attempt's log.
--
-- fields: the line's name -> text facts (`task log --field tool=pytest`); NULL when it
-- has none, so the record column keeps the shape it always had.
-- position: the line's number in its attempt's log, from 1, without gaps. A writer
-- takes the next one after the highest committed; the unique index makes a racing
-- writer fail and try again (the store retries), so a reader that sees a position has
-- seen every one before it: the live stream resumes after a position.

ALTER TABLE taskfiles_logs ADD COLUMN fields jsonb;
ALTER TABLE taskfiles_logs ADD COLUMN position integer;

UPDATE taskfiles_logs l SET position = n.position
FROM (
    SELECT id, row_number() OVER (PARTITION BY slug, attempt ORDER BY id) AS position
    FROM taskfiles_logs
) n
WHERE n.id = l.id;

ALTER TABLE taskfiles_logs ALTER COLUMN position SET NOT NULL;
CREATE UNIQUE INDEX taskfiles_logs_position ON taskfiles_logs (slug, attempt, position);
DROP INDEX taskfiles_logs_attempt;
