-- 0003: what gc folds for run metrics before it archives events and removes entries
-- (registry/rollup.py): one row per ended run, per scheduled retry, and per removed
-- entry's cost. `key` names the event or entry a row came from, so a row is folded once.

CREATE TABLE taskfiles_rollups (
    key text PRIMARY KEY,
    kind text NOT NULL,
    time text NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX taskfiles_rollups_time ON taskfiles_rollups (time);
