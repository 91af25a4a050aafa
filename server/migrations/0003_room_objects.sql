-- Each room's objects where they rest now: the state of the newest stored
-- object_set of each object, kept beside the events so a room loads its
-- objects without reading its history, and so they outlive the history's
-- retention. Portable between SQLite and PostgreSQL like 0001.

CREATE TABLE room_objects (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    object_id TEXT NOT NULL,
    -- JSON of roomscale_protocol::objects::ObjectState.
    state TEXT NOT NULL,
    -- The event that put it there; 0 for the props a room is created with.
    event_id BIGINT NOT NULL,
    PRIMARY KEY (room_id, object_id)
);
