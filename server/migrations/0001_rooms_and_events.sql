-- Portable between SQLite and PostgreSQL: the same file runs on both.
-- Ids are UUID text, timestamps BIGINT Unix milliseconds; no AUTOINCREMENT or
-- SERIAL, because event ids are numbered per room by the server (see
-- storage/events.rs) and room ids are random.

CREATE TABLE rooms (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The room list shows the newest first.
CREATE INDEX rooms_by_inserted_at ON rooms (inserted_at);

CREATE TABLE room_events (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    -- The body's "type" tag, so the kind can be queried without parsing JSON.
    kind TEXT NOT NULL,
    -- JSON of roomscale_protocol::events::RoomEventBody.
    body TEXT NOT NULL,
    PRIMARY KEY (room_id, id)
);
