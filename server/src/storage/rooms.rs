//! Rooms: the persistent places people meet in.

use std::time::SystemTime;

use roomscale_protocol::events::RoomSummary;
use serde::{Deserialize, Serialize, Serializer};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Store, rfc3339, unix_millis};
use crate::error::{FieldErrors, Result};

pub const MAX_ROOM_NAME_CHARS: usize = 80;
pub const MAX_ROOM_DESCRIPTION_CHARS: usize = 500;

/// A stored room. Timestamps are Unix milliseconds; the JSON form shows them as
/// RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub inserted_at: i64,
    pub updated_at: i64,
}

/// A room's editable fields, as the forms and the JSON API send them. Missing
/// fields read as empty, so that "name is blank" is reported as a field error
/// rather than as a malformed request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewRoom {
    pub name: String,
    pub description: String,
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

    fn from_row(row: &AnyRow) -> Result<Room> {
        let id: String = row.try_get("id")?;
        Ok(Room {
            id: id.parse().map_err(|e| {
                anyhow::anyhow!("room id {id:?} in the database is not a UUID: {e}")
            })?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            inserted_at: row.try_get("inserted_at")?,
            updated_at: row.try_get("updated_at")?,
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
        }
        RoomJson {
            id: self.id,
            name: &self.name,
            description: &self.description,
            inserted_at: rfc3339(self.inserted_at),
            updated_at: rfc3339(self.updated_at),
        }
        .serialize(serializer)
    }
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
    })
}

const ROOM_COLUMNS: &str = "id, name, description, inserted_at, updated_at";

impl Store {
    pub async fn create_room(&self, input: &NewRoom) -> Result<Room> {
        let input = validate_room(input)?;
        let now = unix_millis(SystemTime::now());
        let room = Room {
            id: Uuid::new_v4(),
            name: input.name,
            description: input.description,
            inserted_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO rooms (id, name, description, inserted_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(room.id.to_string())
        .bind(&room.name)
        .bind(&room.description)
        .bind(room.inserted_at)
        .bind(room.updated_at)
        .execute(self.pool())
        .await?;
        Ok(room)
    }

    /// Every room, newest first.
    pub async fn list_rooms(&self) -> Result<Vec<Room>> {
        // `id` breaks ties between rooms created in the same millisecond so the
        // order is at least stable.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms ORDER BY inserted_at DESC, id DESC"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(Room::from_row).collect()
    }

    pub async fn get_room(&self, id: Uuid) -> Result<Option<Room>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Room::from_row).transpose()
    }

    /// Replaces a room's name and description; `None` when there is no such room.
    pub async fn update_room(&self, id: Uuid, input: &NewRoom) -> Result<Option<Room>> {
        let input = validate_room(input)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE rooms SET name = $2, description = $3, updated_at = $4 WHERE id = $1 \
             RETURNING {ROOM_COLUMNS}"
        )))
        .bind(id.to_string())
        .bind(&input.name)
        .bind(&input.description)
        .bind(unix_millis(SystemTime::now()))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(Room::from_row).transpose()
    }

    /// Deletes a room and, through the foreign key, its events; `false` when
    /// there was no such room.
    pub async fn delete_room(&self, id: Uuid) -> Result<bool> {
        let result = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn check(
        name: &str,
        description: &str,
        expected: std::result::Result<(&str, &str), &[(&str, &str)]>,
    ) {
        let input = NewRoom {
            name: name.into(),
            description: description.into(),
        };
        match (validate_room(&input), expected) {
            (Ok(room), Ok((want_name, want_description))) => {
                assert_eq!(
                    (room.name.as_str(), room.description.as_str()),
                    (want_name, want_description)
                );
            }
            (Err(Error::Validation(errors)), Err(want)) => {
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
