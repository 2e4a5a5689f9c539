-- 0001: the registry on PostgreSQL: entries, lease history, events, logs, cycle records.
-- Applied by `task registry migrate` (registry/pgschema.py), which records it in
-- taskfiles_schema. The hot table (entries) holds one small row a task; history lives
-- in events, so vacuum keeps up.

CREATE TABLE taskfiles_entries (
    slug text PRIMARY KEY,
    state text NOT NULL,
    lease integer NOT NULL,
    host text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    row jsonb NOT NULL
);

-- The highest lease ever issued per slug: a lease is never reused, even after the
-- entry is removed. Its row is also the slug's lock (SELECT ... FOR UPDATE [SKIP LOCKED]).
CREATE TABLE taskfiles_leases (
    slug text PRIMARY KEY,
    high integer NOT NULL DEFAULT 0
);

-- One number per write transaction, shared by its events.
CREATE SEQUENCE taskfiles_txn;

CREATE TABLE taskfiles_events (
    id bigserial PRIMARY KEY,
    seq bigint NOT NULL,
    time text NOT NULL,
    type text NOT NULL,
    slug text,
    lease integer,
    actor jsonb NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    change jsonb,
    removed boolean NOT NULL DEFAULT false
);
CREATE INDEX taskfiles_events_slug ON taskfiles_events (slug, id);
CREATE INDEX taskfiles_events_time ON taskfiles_events (time);

-- Events older than `task gc`'s cutoff, moved here so the live table stays small.
CREATE TABLE taskfiles_events_archive (LIKE taskfiles_events INCLUDING DEFAULTS);

CREATE TABLE taskfiles_logs (
    id bigserial PRIMARY KEY,
    slug text NOT NULL,
    attempt integer NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX taskfiles_logs_attempt ON taskfiles_logs (slug, attempt, id);

-- The last heartbeat cycle of each host.
CREATE TABLE taskfiles_cycles (
    host text PRIMARY KEY,
    generated_at text NOT NULL,
    record jsonb NOT NULL
);
