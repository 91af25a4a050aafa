//! Rooms: the persistent places people meet in, who owns and moderates them,
//! whether they are listed, and their soft deletion.
//!
//! A deleted room keeps its row (with `deleted_at`) for [`DELETED_ROOMS_KEPT`],
//! during which its owner or the admin may restore it; afterwards the janitor
//! purges it, and its events, objects and moderators go with it through the
//! foreign keys. A new room starts with the physics crate's starter props.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use roomscale_protocol::events::{Governance, RoomSummary};
use serde::{Deserialize, Serialize, Serializer};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{FieldErrors, Result, StorageError, Store};
use crate::time::{rfc3339, unix_millis};

pub const MAX_ROOM_NAME_CHARS: usize = 80;
pub const MAX_ROOM_DESCRIPTION_CHARS: usize = 500;

/// How long a deleted room can be restored before it is purged for good.
pub const DELETED_ROOMS_KEPT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether the room list shows a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed on /rooms and GET /api/rooms.
    #[default]
    Public,
    /// Reached only through its link (and listed to its owner).
    Unlisted,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;

    fn from_str(text: &str) -> Result<Visibility, String> {
        match text {
            "public" => Ok(Visibility::Public),
            "unlisted" => Ok(Visibility::Unlisted),
            other => Err(format!(
                "{:?} is not a visibility; use \"public\" or \"unlisted\"",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// A stored room. Timestamps are Unix milliseconds; the JSON form shows them as
/// RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub inserted_at: i64,
    pub updated_at: i64,
    /// The visitor who created the room; `None` for rooms made before rooms had
    /// owners, which only the admin manages.
    pub owner_id: Option<String>,
    pub visibility: Visibility,
    /// A locked room refuses new joins.
    pub locked: bool,
    /// When the room was deleted; `None` while it is live.
    pub deleted_at: Option<i64>,
}

/// A room's editable fields, as the forms and the JSON API send them. Missing
/// fields read as empty, so that "name is blank" is reported as a field error
/// rather than as a malformed request. A missing visibility means public for a
/// new room and "unchanged" for an edit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewRoom {
    pub name: String,
    pub description: String,
    pub visibility: Option<Visibility>,
}

impl Room {
    /// The room as a join reply names it.
    pub fn summary(&self) -> RoomSummary {
        RoomSummary {
            id: self.id.to_string(),
            name: self.name.clone(),
            description: self.description.clone(),
        }
    }

    /// Who runs the room, as the join reply and moderation notices tell it.
    pub fn governance(&self, moderators: Vec<String>) -> Governance {
        Governance {
            owner_user_id: self.owner_id.clone(),
            moderators,
            locked: self.locked,
        }
    }

    /// True when `user_id` created the room.
    pub fn is_owned_by(&self, user_id: &str) -> bool {
        self.owner_id.as_deref() == Some(user_id)
    }

    /// Where the room list continues after this room.
    pub fn cursor(&self) -> RoomCursor {
        RoomCursor {
            inserted_at: self.inserted_at,
            id: self.id,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Room> {
        let id: String = row.try_get("id")?;
        let visibility: String = row.try_get("visibility")?;
        let locked: i64 = row.try_get("locked")?;
        Ok(Room {
            id: id.parse().map_err(|e| {
                StorageError::Unreadable(format!("room id {id:?} is not a UUID: {e}"))
            })?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            inserted_at: row.try_get("inserted_at")?,
            updated_at: row.try_get("updated_at")?,
            owner_id: row.try_get("owner_id")?,
            visibility: visibility
                .parse()
                .map_err(|e| StorageError::Unreadable(format!("room {id}: {e}")))?,
            locked: locked != 0,
            deleted_at: row.try_get("deleted_at")?,
        })
    }
}

impl Serialize for Room {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct RoomJson<'a> {
            id: Uuid,
            name: &'a str,
            description: &'a str,
            inserted_at: String,
            updated_at: String,
            owner_id: Option<&'a str>,
            visibility: Visibility,
            locked: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            deleted_at: Option<String>,
        }
        RoomJson {
            id: self.id,
            name: &self.name,
            description: &self.description,
            inserted_at: rfc3339(self.inserted_at),
            updated_at: rfc3339(self.updated_at),
            owner_id: self.owner_id.as_deref(),
            visibility: self.visibility,
            locked: self.locked,
            deleted_at: self.deleted_at.map(rfc3339),
        }
        .serialize(serializer)
    }
}

/// A place in the room list (newest first): the list goes on with the rooms
/// created before this one. Written `<inserted_at>.<id>` in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCursor {
    pub inserted_at: i64,
    pub id: Uuid,
}

impl fmt::Display for RoomCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.inserted_at, self.id)
    }
}

impl FromStr for RoomCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<RoomCursor, String> {
        let parsed = text.split_once('.').and_then(|(time, id)| {
            Some(RoomCursor {
                inserted_at: time.parse().ok()?,
                id: id.parse().ok()?,
            })
        });
        parsed.ok_or_else(|| {
            format!(
                "{:?} is not a room list cursor; use the `after` of the Link header the \
                 previous page came with",
                text.chars().take(80).collect::<String>()
            )
        })
    }
}

/// Which page of the room list to read: rooms a viewer may see listed (public
/// ones, and the viewer's own unlisted ones), newest first.
#[derive(Debug, Clone, Default)]
pub struct RoomListQuery {
    /// Whose unlisted rooms to include.
    pub viewer: Option<String>,
    /// Start after this room (the JSON API's cursor).
    pub after: Option<RoomCursor>,
    /// Rooms to skip first (the pages' numbered pages).
    pub offset: u64,
    pub limit: u64,
}

/// Checks a room's fields and returns them as they are stored (trimmed), or a
/// message for each field that is not acceptable.
pub fn validate_room(input: &NewRoom) -> Result<NewRoom> {
    let name = input.name.trim();
    let description = input.description.trim();
    let mut errors = FieldErrors::new();

    let name_chars = name.chars().count();
    if name.is_empty() {
        errors.add("name", "must not be blank");
    } else if name_chars > MAX_ROOM_NAME_CHARS {
        errors.add(
            "name",
            format!("is {name_chars} characters long; at most {MAX_ROOM_NAME_CHARS} are allowed"),
        );
    } else if name.chars().any(char::is_control) {
        errors.add(
            "name",
            "must not contain control characters such as line breaks",
        );
    }

    let description_chars = description.chars().count();
    if description_chars > MAX_ROOM_DESCRIPTION_CHARS {
        errors.add(
            "description",
            format!(
                "is {description_chars} characters long; at most {MAX_ROOM_DESCRIPTION_CHARS} are allowed"
            ),
        );
    } else if description
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        errors.add("description", "must not contain control characters");
    }

    errors.into_result()?;
    Ok(NewRoom {
        name: name.to_string(),
        description: description.to_string(),
        visibility: input.visibility,
    })
}

const ROOM_COLUMNS: &str =
    "id, name, description, inserted_at, updated_at, owner_id, visibility, locked, deleted_at";

impl Store {
    /// Stores a new room owned by `owner_id` (`None`: a room only the admin
    /// manages).
    pub async fn create_room(&self, input: &NewRoom, owner_id: Option<&str>) -> Result<Room> {
        let input = validate_room(input)?;
        let now = unix_millis(SystemTime::now());
        let room = Room {
            id: Uuid::new_v4(),
            name: input.name,
            description: input.description,
            inserted_at: now,
            updated_at: now,
            owner_id: owner_id.map(str::to_string),
            visibility: input.visibility.unwrap_or_default(),
            locked: false,
            deleted_at: None,
        };
        // The room and its starter props together: no room is ever seen
        // without its table's props.
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO rooms (id, name, description, inserted_at, updated_at, owner_id, \
             visibility, locked, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, NULL)",
        )
        .bind(room.id.to_string())
        .bind(&room.name)
        .bind(&room.description)
        .bind(room.inserted_at)
        .bind(room.updated_at)
        .bind(room.owner_id.clone())
        .bind(room.visibility.as_str())
        .execute(&mut *tx)
        .await?;
        super::objects::insert_starter_props(&mut tx, room.id).await?;
        tx.commit().await?;
        Ok(room)
    }

    /// Every room that is not deleted, listed or not, newest first.
    pub async fn list_rooms(&self) -> Result<Vec<Room>> {
        // `id` breaks ties between rooms created in the same millisecond so the
        // order is at least stable.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE deleted_at IS NULL \
             ORDER BY inserted_at DESC, id DESC"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Room::from_row).collect()
    }

    /// One page of the room list as `query.viewer` sees it, newest first.
    pub async fn list_rooms_page(&self, query: &RoomListQuery) -> Result<Vec<Room>> {
        // A cursor that starts nowhere is one past the newest possible room; the
        // viewer "" owns nothing, since user ids are never empty.
        let (after_time, after_id) = match query.after {
            Some(cursor) => (cursor.inserted_at, cursor.id.to_string()),
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE deleted_at IS NULL \
             AND (visibility = 'public' OR owner_id = $1) \
             AND (inserted_at < $2 OR (inserted_at = $2 AND ($3 = '' OR id < $3))) \
             ORDER BY inserted_at DESC, id DESC LIMIT $4 OFFSET $5"
        )))
        .bind(query.viewer.clone().unwrap_or_default())
        .bind(after_time)
        .bind(after_id)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Room::from_row).collect()
    }

    /// A live room; `None` when there is none with this id or it was deleted.
    pub async fn get_room(&self, id: Uuid) -> Result<Option<Room>> {
        Ok(self
            .get_room_including_deleted(id)
            .await?
            .filter(|room| room.deleted_at.is_none()))
    }

    /// A room, deleted or not (until it is purged).
    pub async fn get_room_including_deleted(&self, id: Uuid) -> Result<Option<Room>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Room::from_row).transpose()
    }

    /// Replaces a live room's name and description, and its visibility when the
    /// input names one; `None` when there is no such live room.
    pub async fn update_room(&self, id: Uuid, input: &NewRoom) -> Result<Option<Room>> {
        let input = validate_room(input)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE rooms SET name = $2, description = $3, updated_at = $4, \
             visibility = COALESCE($5, visibility) \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {ROOM_COLUMNS}"
        )))
        .bind(id.to_string())
        .bind(&input.name)
        .bind(&input.description)
        .bind(unix_millis(SystemTime::now()))
        .bind(input.visibility.map(Visibility::as_str))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Room::from_row).transpose()
    }

    /// Marks a live room deleted (restorable for [`DELETED_ROOMS_KEPT`]); `false`
    /// when there was no such live room.
    pub async fn delete_room(&self, id: Uuid) -> Result<bool> {
        let result =
            sqlx::query("UPDATE rooms SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id.to_string())
                .bind(unix_millis(SystemTime::now()))
                .execute(self.pool())
                .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Brings back a room deleted less than [`DELETED_ROOMS_KEPT`] ago; `false`
    /// when there is no such deleted room (never deleted, or deleted too long ago).
    pub async fn restore_room(&self, id: Uuid) -> Result<bool> {
        let kept_since = unix_millis(SystemTime::now() - DELETED_ROOMS_KEPT);
        let result = sqlx::query(
            "UPDATE rooms SET deleted_at = NULL \
             WHERE id = $1 AND deleted_at IS NOT NULL AND deleted_at > $2",
        )
        .bind(id.to_string())
        .bind(kept_since)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes for good, with their events and moderators, the rooms deleted
    /// before `older_than_ms` (Unix milliseconds); returns how many.
    pub async fn purge_deleted_rooms(&self, older_than_ms: i64) -> Result<u64> {
        let result =
            sqlx::query("DELETE FROM rooms WHERE deleted_at IS NOT NULL AND deleted_at < $1")
                .bind(older_than_ms)
                .execute(self.pool())
                .await?;
        Ok(result.rows_affected())
    }

    /// The co-moderators the owner named, by user id.
    pub async fn room_moderators(&self, id: Uuid) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT user_id FROM room_moderators WHERE room_id = $1 ORDER BY user_id")
                .bind(id.to_string())
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("user_id")?))
            .collect()
    }

    /// Locks (no new joins) or unlocks a room.
    pub async fn set_room_locked(&self, id: Uuid, locked: bool) -> Result<()> {
        sqlx::query("UPDATE rooms SET locked = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(i64::from(locked))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Names `user_id` a co-moderator of the room, or takes that back.
    pub async fn set_room_moderator(&self, id: Uuid, user_id: &str, moderator: bool) -> Result<()> {
        let query = if moderator {
            "INSERT INTO room_moderators (room_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (room_id, user_id) DO NOTHING"
        } else {
            "DELETE FROM room_moderators WHERE room_id = $1 AND user_id = $2"
        };
        sqlx::query(query)
            .bind(id.to_string())
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        name: &str,
        description: &str,
        expected: std::result::Result<(&str, &str), &[(&str, &str)]>,
    ) {
        let input = NewRoom {
            name: name.into(),
            description: description.into(),
            visibility: None,
        };
        match (validate_room(&input), expected) {
            (Ok(room), Ok((want_name, want_description))) => {
                assert_eq!(
                    (room.name.as_str(), room.description.as_str()),
                    (want_name, want_description)
                );
            }
            (Err(StorageError::Invalid(errors)), Err(want)) => {
                for (field, fragment) in want {
                    let message = errors
                        .get(field)
                        .unwrap_or_else(|| panic!("no error for {field}: {errors}"));
                    assert!(
                        message.contains(fragment),
                        "{field}: {message:?} lacks {fragment:?}"
                    );
                }
                assert_eq!(
                    errors.to_string().matches(": ").count(),
                    want.len(),
                    "{errors}"
                );
            }
            (got, want) => panic!("{name:?}/{description:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn room_fields_are_trimmed_and_checked() {
        check(
            "  Lobby ",
            " A place\nto meet ",
            Ok(("Lobby", "A place\nto meet")),
        );
        check(
            &"é".repeat(80),
            &"d".repeat(500),
            Ok((&"é".repeat(80), &"d".repeat(500))),
        );
        check("", "", Err(&[("name", "must not be blank")]));
        check(" \t ", "", Err(&[("name", "must not be blank")]));
        check(
            &"n".repeat(81),
            "",
            Err(&[("name", "is 81 characters long; at most 80")]),
        );
        check("a\nb", "", Err(&[("name", "control characters")]));
        check(
            "",
            &"d".repeat(501),
            Err(&[
                ("name", "blank"),
                ("description", "is 501 characters long; at most 500"),
            ]),
        );
    }
}
