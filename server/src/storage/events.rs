//! Persisted room events (chat, shared-object changes), numbered per room.
//! An object's event also writes its row in `room_objects` (see
//! [`super::objects`]) in the same transaction. The history's retention
//! purges events only: objects keep their place however old their event.

use std::time::Duration;

use roomscale_protocol::events::{RoomEvent, RoomEventBody};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Result, StorageError, Store, is_foreign_key_violation, is_retryable_conflict};

/// Appends with the next id of the room in one statement, so the id is computed
/// and taken in the same transaction on both backends. Two writers racing for the
/// same id cannot both win: the primary key refuses the second, which retries
/// (PostgreSQL only; SQLite serializes the whole statement).
const APPEND_EVENT: &str = "\
    INSERT INTO room_events (room_id, id, user_id, name, sent_at, kind, body) \
    SELECT $1, COALESCE(MAX(id), 0) + 1, $2, $3, $4, $5, $6 \
    FROM room_events WHERE room_id = $1 \
    RETURNING id";

/// An object's resting state as its newest `object_set` left it.
const UPSERT_OBJECT: &str = "\
    INSERT INTO room_objects (room_id, object_id, state, event_id) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (room_id, object_id) DO UPDATE SET state = excluded.state, event_id = excluded.event_id";

const DELETE_OBJECT: &str = "DELETE FROM room_objects WHERE room_id = $1 AND object_id = $2";

/// The newest events first, so that LIMIT keeps the newest; reversed afterwards.
const EVENTS_AFTER: &str = "\
    SELECT id, user_id, name, sent_at, body FROM room_events \
    WHERE room_id = $1 AND id > $2 \
    ORDER BY id DESC LIMIT $3";

/// A room's events between two ids (both excluded), newest first, for paging
/// back from the newest.
const EVENTS_BETWEEN: &str = "\
    SELECT id, user_id, name, sent_at, body FROM room_events \
    WHERE room_id = $1 AND id > $2 AND id < $3 \
    ORDER BY id DESC LIMIT $4";

/// Rows read in the first round of a page; later rounds are sized by the
/// events seen so far, so a page of large events reads few rows.
const FIRST_PAGE_ROWS: usize = 16;
/// Most rows one round of a page reads.
const MOST_PAGE_ROWS: usize = 128;

/// Events sent before `$1`, except each room's newest: new ids continue from
/// it (`MAX(id) + 1`), so a client's `last_seen_id` stays meaningful.
const PURGE_OLDER_THAN: &str = "\
    DELETE FROM room_events WHERE sent_at < $1 AND id < \
    (SELECT MAX(newest.id) FROM room_events newest WHERE newest.room_id = room_events.room_id)";

/// Rooms whose history is longer than `$1` events.
const ROOMS_OVER_LIMIT: &str = "\
    SELECT room_id FROM room_events GROUP BY room_id HAVING COUNT(*) > $1";

/// The id of a room's `$2 + 1`-th newest event: it and everything older go.
const NTH_NEWEST_ID: &str = "\
    SELECT id FROM room_events WHERE room_id = $1 \
    ORDER BY id DESC LIMIT 1 OFFSET $2";

/// How often an append that lost a race for its id is tried, in all. Within one
/// server a room's actor appends one event at a time, so races only come from
/// several servers sharing a database, and a few tries settle them.
const APPEND_ATTEMPTS: u32 = 8;

impl Store {
    /// Stores an event with the room's next id and returns it as stored. When this
    /// returns `Ok` the event is durable (committed, and on SQLite synced), so it
    /// may be acknowledged to the sender. [`StorageError::RoomNotFound`] when the room does
    /// not exist (or was deleted meanwhile).
    pub async fn append_event(
        &self,
        room_id: Uuid,
        user_id: &str,
        name: &str,
        sent_at_ms: i64,
        body: &RoomEventBody,
    ) -> Result<RoomEvent> {
        let body_json = serde_json::to_string(body).map_err(StorageError::Encode)?;
        let room = room_id.to_string();
        let mut attempt = 1;
        let id: i64 = loop {
            match self
                .append_in_transaction(&room, user_id, name, sent_at_ms, body, &body_json)
                .await
            {
                Ok(id) => break id,
                Err(e) if is_foreign_key_violation(&e) => return Err(StorageError::RoomNotFound),
                Err(e) if attempt < APPEND_ATTEMPTS && is_retryable_conflict(&e) => {
                    // Back off a little more each time so the racers spread out.
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(RoomEvent {
            id: u64::try_from(id).map_err(|_| {
                StorageError::Unreadable(format!("room {room_id} numbered a new event {id}"))
            })?,
            user_id: user_id.to_string(),
            name: name.to_string(),
            sent_at: sent_at_ms,
            body: body.clone(),
        })
    }

    /// One try of [`Store::append_event`]: the event and, for an object's
    /// event, its row in `room_objects`, committed together so the objects a
    /// room loads are always those its events left.
    async fn append_in_transaction(
        &self,
        room: &str,
        user_id: &str,
        name: &str,
        sent_at_ms: i64,
        body: &RoomEventBody,
        body_json: &str,
    ) -> std::result::Result<i64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(APPEND_EVENT)
            .bind(room)
            .bind(user_id)
            .bind(name)
            .bind(sent_at_ms)
            .bind(event_kind(body))
            .bind(body_json)
            .fetch_one(&mut *tx)
            .await?;
        match body {
            RoomEventBody::Chat { .. } => {}
            RoomEventBody::ObjectSet { object_id, state } => {
                sqlx::query(UPSERT_OBJECT)
                    .bind(room)
                    .bind(object_id.as_str())
                    .bind(state.to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            RoomEventBody::ObjectRemove { object_id } => {
                sqlx::query(DELETE_OBJECT)
                    .bind(room)
                    .bind(object_id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The newest `limit` events of a room with an id above `after_id`, oldest
    /// first, and whether older events above `after_id` were left out to keep to
    /// the limit. An unknown room has no events.
    pub async fn events_after(
        &self,
        room_id: Uuid,
        after_id: u64,
        limit: usize,
    ) -> Result<(Vec<RoomEvent>, bool)> {
        // Ids are stored as BIGINT; a client claiming to have seen an id beyond
        // that range has seen everything there is.
        let Ok(after_id) = i64::try_from(after_id) else {
            return Ok((Vec::new(), false));
        };
        // One row more than asked tells whether any were left out.
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = sqlx::query(EVENTS_AFTER)
            .bind(room_id.to_string())
            .bind(after_id)
            .bind(fetch)
            .fetch_all(self.pool())
            .await?;
        let truncated = rows.len() > limit;
        let mut events = rows
            .iter()
            .take(limit)
            .map(|row| event_from_row(room_id, row))
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok((events, truncated))
    }
}

/// A page of a room's history: the newest events that fit, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<RoomEvent>,
    /// True when older events in the range were left out to keep to the limits.
    pub more: bool,
    /// The events' size as a JSON array, in bytes.
    pub bytes: usize,
}

impl Store {
    /// The newest events of a room with `after_id < id < before_id` that fit in
    /// `max_bytes` of JSON (as an array) and `max_events`, oldest first. At
    /// least one event comes back when there is one, however large, so paging
    /// always moves. Rows are read newest first in small rounds until the page
    /// is full: a long history costs no more to read than the page it gives.
    pub async fn events_page(
        &self,
        room_id: Uuid,
        after_id: u64,
        before_id: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<EventPage> {
        let room = room_id.to_string();
        // Ids are stored as BIGINT: nothing lies beyond its range.
        let Ok(after) = i64::try_from(after_id) else {
            return Ok(EventPage {
                events: Vec::new(),
                more: false,
                bytes: 2,
            });
        };
        let mut upper = i64::try_from(before_id).unwrap_or(i64::MAX);
        let mut picked: Vec<RoomEvent> = Vec::new();
        // The brackets of the array.
        let mut bytes = 2;
        let mut round = FIRST_PAGE_ROWS;
        let more = loop {
            // One row beyond what may be taken tells whether any were left out.
            let want = round.min(max_events - picked.len() + 1);
            let rows = sqlx::query(EVENTS_BETWEEN)
                .bind(&room)
                .bind(after)
                .bind(upper)
                .bind(i64::try_from(want).unwrap_or(i64::MAX))
                .fetch_all(self.pool())
                .await?;
            let exhausted = rows.len() < want;
            let mut full = false;
            for row in &rows {
                let event = event_from_row(room_id, row)?;
                // The event, and the comma before it.
                let size = serde_json::to_vec(&event)
                    .map_err(StorageError::Encode)?
                    .len()
                    + usize::from(!picked.is_empty());
                if picked.len() == max_events || (!picked.is_empty() && bytes + size > max_bytes) {
                    full = true;
                    break;
                }
                bytes += size;
                upper = i64::try_from(event.id).unwrap_or(i64::MAX);
                picked.push(event);
            }
            if full {
                break true;
            }
            if exhausted {
                break false;
            }
            let average = (bytes / picked.len().max(1)).max(1);
            round = (max_bytes.saturating_sub(bytes) / average + 1).clamp(1, MOST_PAGE_ROWS);
        };
        picked.reverse();
        Ok(EventPage {
            events: picked,
            more,
            bytes,
        })
    }

    /// Deletes history by the retention policy and returns how many events
    /// went: events sent before `older_than_ms` (Unix milliseconds) but each
    /// room's newest (which numbers the events to come), and in each room all
    /// but the newest `keep_per_room`. `None` sets no limit of
    /// that kind; `Some(0)` for `keep_per_room` also keeps everything, as the
    /// `--history-max-events 0` flag reads.
    pub async fn purge_history(
        &self,
        older_than_ms: Option<i64>,
        keep_per_room: Option<u64>,
    ) -> Result<u64> {
        let mut purged = 0;
        if let Some(cutoff) = older_than_ms {
            purged += sqlx::query(PURGE_OLDER_THAN)
                .bind(cutoff)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        if let Some(keep) = keep_per_room.filter(|&keep| keep > 0) {
            // Beyond BIGINT no room can hold more: nothing to trim.
            let Ok(keep) = i64::try_from(keep) else {
                return Ok(purged);
            };
            // Room by room, with the cut found through the primary key's
            // index, so no statement scans every room's events per row.
            let rooms: Vec<String> = sqlx::query_scalar(ROOMS_OVER_LIMIT)
                .bind(keep)
                .fetch_all(self.pool())
                .await?;
            for room in rooms {
                let cut: Option<i64> = sqlx::query_scalar(NTH_NEWEST_ID)
                    .bind(&room)
                    .bind(keep)
                    .fetch_optional(self.pool())
                    .await?;
                let Some(cut) = cut else { continue };
                purged += sqlx::query("DELETE FROM room_events WHERE room_id = $1 AND id <= $2")
                    .bind(&room)
                    .bind(cut)
                    .execute(self.pool())
                    .await?
                    .rows_affected();
            }
        }
        Ok(purged)
    }
}

/// The body's `type` tag, stored beside the JSON so events can be filtered by kind.
fn event_kind(body: &RoomEventBody) -> &'static str {
    match body {
        RoomEventBody::Chat { .. } => "chat",
        RoomEventBody::ObjectSet { .. } => "object_set",
        RoomEventBody::ObjectRemove { .. } => "object_remove",
    }
}

fn event_from_row(room_id: Uuid, row: &AnyRow) -> Result<RoomEvent> {
    let id: i64 = row.try_get("id")?;
    let body: String = row.try_get("body")?;
    let body = serde_json::from_str(&body).map_err(|e| {
        StorageError::Unreadable(format!(
            "event {id} of room {room_id} has an unreadable body: {e}"
        ))
    })?;
    Ok(RoomEvent {
        id: u64::try_from(id).map_err(|_| {
            StorageError::Unreadable(format!("room {room_id} has an event numbered {id}"))
        })?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        sent_at: row.try_get("sent_at")?,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_the_serialized_type_tag() {
        let bodies = [
            RoomEventBody::Chat { text: "hi".into() },
            RoomEventBody::ObjectSet {
                object_id: "ball".into(),
                state: serde_json::json!({"x": 1}),
            },
            RoomEventBody::ObjectRemove {
                object_id: "ball".into(),
            },
        ];
        for body in bodies {
            let value = serde_json::to_value(&body).unwrap();
            assert_eq!(value["type"], event_kind(&body), "{value}");
        }
    }
}
