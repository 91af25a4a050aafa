-- Rooms get an owner, a visibility, a lock and a soft delete; owners name
-- co-moderators. Portable between SQLite and PostgreSQL like 0001: booleans
-- and times are BIGINT (0/1, Unix milliseconds), one column per ALTER.

-- The visitor (user id) who created the room; NULL for rooms made before
-- rooms had owners, which only the server's admin manages.
ALTER TABLE rooms ADD COLUMN owner_id TEXT NULL;
-- 'public' rooms are listed; 'unlisted' ones are reached only by their link.
ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
-- 1 when the room refuses new joins.
ALTER TABLE rooms ADD COLUMN locked BIGINT NOT NULL DEFAULT 0;
-- When the room was deleted; it can be restored until it is purged.
ALTER TABLE rooms ADD COLUMN deleted_at BIGINT NULL;

-- The purge looks for rooms deleted long ago.
CREATE INDEX rooms_by_deleted_at ON rooms (deleted_at);

CREATE TABLE room_moderators (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
