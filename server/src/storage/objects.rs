//! Each room's objects where they rest now (`room_objects`): written with
//! the object's events (see [`super::events`]), seeded with the starter props
//! when a room is created, and read when a room loads. Rows outlive the
//! history's retention: an object stays where it came to rest however old
//! the event that put it there.

use roomscale_protocol::objects::ObjectState;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::{Result, Store};

/// Ordered by id so a room's objects load (and get their handles) in a
/// stable order.
const ROOM_OBJECTS: &str =
    "SELECT object_id, state FROM room_objects WHERE room_id = $1 ORDER BY object_id";

const INSERT_OBJECT: &str = "INSERT INTO room_objects (room_id, object_id, state, event_id) \
     VALUES ($1, $2, $3, 0)";

impl Store {
    /// A room's objects as they rest now, by id. A row whose state no longer
    /// reads as an [`ObjectState`] is left out (and logged) rather than
    /// keeping the whole room from loading.
    pub async fn room_objects(&self, room_id: Uuid) -> Result<Vec<(String, ObjectState)>> {
        let rows = sqlx::query(ROOM_OBJECTS)
            .bind(room_id.to_string())
            .fetch_all(self.pool())
            .await?;
        let mut objects = Vec::with_capacity(rows.len());
        for row in &rows {
            let object_id: String = row.try_get("object_id")?;
            let state: String = row.try_get("state")?;
            let parsed = serde_json::from_str(&state)
                .map_err(|e| e.to_string())
                .and_then(|value| ObjectState::from_value(&value));
            match parsed {
                Ok(state) => objects.push((object_id, state)),
                Err(error) => tracing::warn!(
                    %room_id,
                    object_id,
                    "skipping a stored object whose state cannot be read: {error}"
                ),
            }
        }
        Ok(objects)
    }
}

/// Seeds a new room with [`roomscale_physics::starter_props`], in the
/// transaction that creates it.
pub(super) async fn insert_starter_props(
    tx: &mut Transaction<'static, Any>,
    room_id: Uuid,
) -> std::result::Result<(), sqlx::Error> {
    let room = room_id.to_string();
    for (object_id, state) in roomscale_physics::starter_props() {
        sqlx::query(INSERT_OBJECT)
            .bind(&room)
            .bind(object_id)
            .bind(state.to_value().to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
