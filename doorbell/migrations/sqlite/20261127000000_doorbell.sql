-- Calls seen, so that a webhook for a call that never started, or ended long ago, is refused.
CREATE TABLE calls (
    call_sid   TEXT PRIMARY KEY,
    caller     TEXT NOT NULL,
    started_at BIGINT NOT NULL
);

-- The audit log: one row per webhook answered or refused. `input` never holds a code in clear.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       BIGINT NOT NULL,
    call_sid TEXT NOT NULL,
    caller   TEXT NOT NULL,
    step     TEXT NOT NULL,
    input    TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX events_by_caller ON events (caller, outcome, at);

CREATE TABLE guest_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    label       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    valid_from  BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE lockouts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    caller       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
CREATE INDEX lockouts_by_caller ON lockouts (caller, locked_until);
