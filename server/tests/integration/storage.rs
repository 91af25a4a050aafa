//! The store against real databases. Every case runs on SQLite and on
//! PostgreSQL, through the same code, so the portable SQL is proven on both.

use std::future::Future;
use std::time::Duration;

use roomscale_protocol::events::RoomEventBody;
use roomscale_protocol::objects::ObjectState;
use roomscale_server::Store;
use roomscale_server::storage::{Backend, NewRoom, Room, StorageError};
use serde_json::json;
use uuid::Uuid;

use crate::common::with_postgres_database;

/// Generates, for each case, one test on a fresh SQLite file and one on a fresh
/// PostgreSQL database.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::on_sqlite(super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::on_postgres(concat!("postgres::", stringify!($case)), super::$case).await;
                }
            )*
        }
    };
}

on_both_backends!(
    rooms_are_created_read_updated_and_deleted,
    invalid_rooms_are_refused_field_by_field,
    rooms_are_listed_newest_first,
    event_ids_grow_per_room_independently,
    events_after_returns_the_newest_within_the_limit,
    deleting_a_room_deletes_its_events,
    concurrent_appends_get_distinct_consecutive_ids,
    objects_start_as_starter_props_follow_their_events_and_outlive_the_history,
);

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path())).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    case(store.clone()).await;
    store.close().await;
}

async fn on_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Store) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    with_postgres_database(name, |url| async move {
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        case(store.clone()).await;
        store.close().await;
    })
    .await;
}

fn sqlite_url(dir: &std::path::Path) -> String {
    roomscale_server::config::sqlite_url(&dir.join("roomscale.db"))
}

fn new_room(name: &str, description: &str) -> NewRoom {
    NewRoom {
        name: name.into(),
        description: description.into(),
        visibility: None,
    }
}

fn chat(text: &str) -> RoomEventBody {
    RoomEventBody::Chat { text: text.into() }
}

async fn rooms_are_created_read_updated_and_deleted(store: Store) {
    let room = store
        .create_room(&new_room("  Lobby ", "Where people meet"), None)
        .await
        .unwrap();
    assert_eq!(room.name, "Lobby", "names are stored trimmed");
    assert_eq!(room.description, "Where people meet");
    assert_eq!(room.inserted_at, room.updated_at);
    assert_eq!(store.get_room(room.id).await.unwrap(), Some(room.clone()));
    assert_eq!(store.list_rooms().await.unwrap(), vec![room.clone()]);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let updated = store
        .update_room(room.id, &new_room("Atrium", "Bigger"))
        .await
        .unwrap()
        .expect("the room exists");
    assert_eq!(
        (updated.id, updated.inserted_at),
        (room.id, room.inserted_at)
    );
    assert_eq!(
        (updated.name.as_str(), updated.description.as_str()),
        ("Atrium", "Bigger")
    );
    assert!(updated.updated_at > room.updated_at);
    assert_eq!(store.get_room(room.id).await.unwrap(), Some(updated));

    assert!(store.delete_room(room.id).await.unwrap());
    assert_eq!(store.get_room(room.id).await.unwrap(), None);
    assert!(
        !store.delete_room(room.id).await.unwrap(),
        "a second delete finds nothing"
    );
    assert_eq!(
        store
            .update_room(room.id, &new_room("x", ""))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_room(Uuid::new_v4()).await.unwrap(), None);
    assert!(store.list_rooms().await.unwrap().is_empty());
}

async fn invalid_rooms_are_refused_field_by_field(store: Store) {
    async fn check(store: &Store, input: NewRoom, expected: &[(&str, &str)]) {
        let error = store
            .create_room(&input, None)
            .await
            .expect_err("must be refused");
        let StorageError::Invalid(fields) = error else {
            panic!("{input:?}: expected a validation error, got {error:?}");
        };
        for (field, fragment) in expected {
            let message = fields
                .get(field)
                .unwrap_or_else(|| panic!("{input:?}: no {field} error in {fields}"));
            assert!(
                message.contains(fragment),
                "{field}: {message:?} lacks {fragment:?}"
            );
        }
    }
    check(&store, new_room("", ""), &[("name", "must not be blank")]).await;
    check(
        &store,
        new_room("   ", "fine"),
        &[("name", "must not be blank")],
    )
    .await;
    check(
        &store,
        new_room(&"n".repeat(81), ""),
        &[("name", "at most 80")],
    )
    .await;
    check(
        &store,
        new_room("ok", &"d".repeat(501)),
        &[("description", "at most 500")],
    )
    .await;
    check(
        &store,
        new_room("", &"d".repeat(501)),
        &[("name", "blank"), ("description", "at most 500")],
    )
    .await;
    assert!(
        store.list_rooms().await.unwrap().is_empty(),
        "nothing invalid was stored"
    );

    let room = store
        .create_room(&new_room("Lobby", ""), None)
        .await
        .unwrap();
    let error = store
        .update_room(room.id, &new_room(" ", ""))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Invalid(_)), "{error:?}");
    assert_eq!(store.get_room(room.id).await.unwrap(), Some(room));
}

async fn rooms_are_listed_newest_first(store: Store) {
    let mut created: Vec<Room> = Vec::new();
    for name in ["first", "second", "third"] {
        created.push(store.create_room(&new_room(name, ""), None).await.unwrap());
        // Timestamps are milliseconds: keep creations apart.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    created.reverse();
    assert_eq!(store.list_rooms().await.unwrap(), created);
}

async fn event_ids_grow_per_room_independently(store: Store) {
    let a = store
        .create_room(&new_room("A", ""), None)
        .await
        .unwrap()
        .id;
    let b = store
        .create_room(&new_room("B", ""), None)
        .await
        .unwrap()
        .id;
    let object = RoomEventBody::ObjectSet {
        object_id: "ball".into(),
        state: json!({"position": [1.5, 0.0, -2.0], "held_by": null}),
    };
    let appends = [
        (a, chat("a1"), 1),
        (b, chat("b1"), 1),
        (a, object.clone(), 2),
        (
            a,
            RoomEventBody::ObjectRemove {
                object_id: "ball".into(),
            },
            3,
        ),
        (b, chat("b2"), 2),
    ];
    let mut stored = Vec::new();
    for (i, (room, body, expected_id)) in appends.into_iter().enumerate() {
        let sent_at = 1_700_000_000_000 + i as i64;
        let event = store
            .append_event(room, "user-1", "Ada", sent_at, &body)
            .await
            .unwrap();
        assert_eq!(event.id, expected_id, "{body:?}");
        assert_eq!(
            (event.user_id.as_str(), event.name.as_str(), event.sent_at),
            ("user-1", "Ada", sent_at)
        );
        assert_eq!(event.body, body);
        stored.push((room, event));
    }
    // What was returned is exactly what is read back, bodies included.
    for room in [a, b] {
        let (events, truncated) = store.events_after(room, 0, 100).await.unwrap();
        let expected: Vec<_> = stored
            .iter()
            .filter(|(r, _)| *r == room)
            .map(|(_, e)| e.clone())
            .collect();
        assert_eq!(events, expected);
        assert!(!truncated);
    }
}

async fn events_after_returns_the_newest_within_the_limit(store: Store) {
    let room = store
        .create_room(&new_room("History", ""), None)
        .await
        .unwrap()
        .id;
    for i in 1..=10 {
        store
            .append_event(room, "u", "Ada", i, &chat(&format!("m{i}")))
            .await
            .unwrap();
    }
    async fn check(
        store: &Store,
        room: Uuid,
        after: u64,
        limit: usize,
        ids: &[u64],
        truncated: bool,
    ) {
        let (events, got_truncated) = store.events_after(room, after, limit).await.unwrap();
        let got: Vec<u64> = events.iter().map(|e| e.id).collect();
        assert_eq!(
            (got.as_slice(), got_truncated),
            (ids, truncated),
            "after {after}, limit {limit}"
        );
        for event in &events {
            assert_eq!(event.body, chat(&format!("m{}", event.id)));
        }
    }
    check(
        &store,
        room,
        0,
        100,
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        false,
    )
    .await;
    check(&store, room, 0, 10, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], false).await;
    check(&store, room, 0, 4, &[7, 8, 9, 10], true).await;
    check(&store, room, 6, 4, &[7, 8, 9, 10], false).await;
    check(&store, room, 5, 4, &[7, 8, 9, 10], true).await;
    check(&store, room, 8, 4, &[9, 10], false).await;
    check(&store, room, 10, 4, &[], false).await;
    check(&store, room, 99, 4, &[], false).await;
    check(&store, room, u64::MAX, 4, &[], false).await;
    check(&store, room, 0, 0, &[], true).await;
    check(&store, Uuid::new_v4(), 0, 10, &[], false).await;
}

async fn deleting_a_room_deletes_its_events(store: Store) {
    let doomed = store
        .create_room(&new_room("Doomed", ""), None)
        .await
        .unwrap()
        .id;
    let kept = store
        .create_room(&new_room("Kept", ""), None)
        .await
        .unwrap()
        .id;
    for room in [doomed, doomed, kept] {
        store
            .append_event(room, "u", "Ada", 0, &chat("hi"))
            .await
            .unwrap();
    }
    assert!(store.delete_room(doomed).await.unwrap());
    // Deletion is soft until the purge; the purge takes the events along.
    let after_the_delete = roomscale_server::time::unix_millis(std::time::SystemTime::now()) + 1;
    assert_eq!(
        store.purge_deleted_rooms(after_the_delete).await.unwrap(),
        1
    );
    // Counted directly: `events_after` alone could not tell orphans from nothing.
    let pool = store.pool();
    let count = |room: Uuid| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM room_events WHERE room_id = $1")
            .bind(room.to_string())
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(count(doomed).await, 0, "the deleted room's events are gone");
    assert_eq!(count(kept).await, 1, "other rooms keep theirs");
    let error = store
        .append_event(doomed, "u", "Ada", 0, &chat("late"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::RoomNotFound),
        "appending to a deleted room: {error:?}"
    );
}

async fn concurrent_appends_get_distinct_consecutive_ids(store: Store) {
    let room = store
        .create_room(&new_room("Busy", ""), None)
        .await
        .unwrap()
        .id;
    const WRITERS: u64 = 16;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_event(room, "u", "Ada", 0, &chat(&format!("w{i}")))
                    .await
                    .unwrap()
                    .id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=WRITERS).collect::<Vec<_>>());
}

#[tokio::test]
async fn sqlite_connections_are_durable_and_enforce_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path())).await.unwrap();
    let pragma = |name: &'static str| {
        let store = store.clone();
        async move {
            let mut conn = store.pool().acquire().await.unwrap();
            let row: sqlx::any::AnyRow = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            use sqlx::Row as _;
            row.try_get::<String, _>(0)
                .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                .unwrap()
        }
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("synchronous").await, "2", "FULL");
    assert_eq!(pragma("foreign_keys").await, "1");
    assert_eq!(pragma("busy_timeout").await, "5000");
    store.close().await;
}

#[tokio::test]
async fn an_acknowledged_sqlite_append_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let store = Store::connect(&url).await.unwrap();
    let room = store
        .create_room(&new_room("Durable", ""), None)
        .await
        .unwrap();
    let event = store
        .append_event(room.id, "u", "Ada", 42, &chat("still here"))
        .await
        .unwrap();
    // Dropped without a clean close first, the way a crash would leave it; the
    // WAL holds the commit.
    drop(store);

    let reopened = Store::connect(&url).await.unwrap();
    assert_eq!(
        reopened.get_room(room.id).await.unwrap(),
        Some(room.clone())
    );
    let (events, _) = reopened.events_after(room.id, 0, 10).await.unwrap();
    assert_eq!(events, vec![event]);
    let next = reopened
        .append_event(room.id, "u", "Ada", 43, &chat("next"))
        .await
        .unwrap();
    assert_eq!(next.id, 2, "numbering continues after a reopen");
    reopened.close().await;
}

#[tokio::test]
async fn unsupported_database_urls_say_what_is_supported() {
    let error = Store::connect("mysql://localhost/roomscale")
        .await
        .unwrap_err();
    let message = roomscale_server::error::ErrorChain(&error).to_string();
    assert!(
        message.contains("use sqlite://PATH or postgres://"),
        "{message}"
    );
}

#[tokio::test]
async fn databases_that_cannot_be_opened_say_where_and_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = dir.path().join("no such directory").join("roomscale.db");
    let url = roomscale_server::config::sqlite_url(&missing_dir);
    let error = Store::connect(&url).await.unwrap_err();
    assert!(matches!(error, StorageError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("no such directory"),
        "names the file: {message}"
    );
    assert!(
        message.contains("check that the file's directory exists"),
        "says what to do: {message}"
    );

    // Nothing listens on port 1 of loopback: refused at once. The password
    // never reaches the message.
    let error = Store::connect("postgres://roomscale:hunter2@127.0.0.1:1/roomscale")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StorageError::Connect { .. }), "{error:?}");
    assert!(message.contains("127.0.0.1:1/roomscale"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("that PostgreSQL is running"), "{message}");
}

async fn objects_start_as_starter_props_follow_their_events_and_outlive_the_history(store: Store) {
    let room = store
        .create_room(&new_room("Props", ""), None)
        .await
        .unwrap()
        .id;
    let ids = |objects: &[(String, ObjectState)]| {
        objects.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()
    };
    let mut starter: Vec<(String, ObjectState)> = roomscale_physics::starter_props();
    starter.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!starter.is_empty());
    assert_eq!(
        store.room_objects(room).await.unwrap(),
        starter,
        "a new room has the starter props, by id"
    );

    let moved = ObjectState {
        position: [1.0, 0.05, 2.0],
        ..starter[0].1.clone()
    };
    let set = |id: &str, state: &ObjectState| RoomEventBody::ObjectSet {
        object_id: id.into(),
        state: state.to_value(),
    };
    store
        .append_event(room, "u", "Ada", 1, &set(&starter[0].0, &moved))
        .await
        .unwrap();
    let spawned = ObjectState {
        position: [-3.0, 0.06, 0.0],
        ..starter[1].1.clone()
    };
    store
        .append_event(room, "u", "Ada", 2, &set("zz-new", &spawned))
        .await
        .unwrap();
    store
        .append_event(
            room,
            "u",
            "Ada",
            3,
            &RoomEventBody::ObjectRemove {
                object_id: starter[1].0.clone(),
            },
        )
        .await
        .unwrap();
    store
        .append_event(room, "u", "Ada", 4, &chat("and a chat"))
        .await
        .unwrap();
    let objects = store.room_objects(room).await.unwrap();
    let mut expected_ids = ids(&starter);
    expected_ids.remove(1);
    expected_ids.push("zz-new".into());
    assert_eq!(ids(&objects), expected_ids);
    assert_eq!(
        objects[0].1, moved,
        "the newest object_set is where it rests"
    );
    assert_eq!(objects.last().unwrap().1, spawned);
    let event_id: i64 = sqlx::query_scalar(
        "SELECT event_id FROM room_objects WHERE room_id = $1 AND object_id = $2",
    )
    .bind(room.to_string())
    .bind(&starter[0].0)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(event_id, 1, "the row names the event that put it there");

    // The history's retention takes the events, never the objects.
    store.purge_history(Some(i64::MAX), None).await.unwrap();
    store.purge_history(None, Some(1)).await.unwrap();
    assert_eq!(store.room_objects(room).await.unwrap(), objects);

    // An event that fails stores no object either: one transaction.
    assert!(store.delete_room(room).await.unwrap());
    let after_the_delete = roomscale_server::time::unix_millis(std::time::SystemTime::now()) + 1;
    store.purge_deleted_rooms(after_the_delete).await.unwrap();
    let error = store
        .append_event(room, "u", "Ada", 5, &set("ghost", &moved))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::RoomNotFound), "{error:?}");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM room_objects WHERE room_id = $1")
        .bind(room.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "a purged room's objects went with it");
}
