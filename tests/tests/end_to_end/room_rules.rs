//! The native room client and a room's rules, against a real server: a long
//! history joins in one small reply and pages back every event exactly once;
//! a rejoin after a long absence fills its whole gap; the owner and the
//! moderators it names moderate from the client and everyone hears of each
//! act; a removed member and the members of a deleted room are told why and
//! nothing reconnects; the headless app exits with the reason; and the app's
//! network side (what the window and the headset use) owns the rooms it
//! creates, loads older chat on demand and holds a moderator's mute.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use roomscale_app::client::{
    self, ClientError, RoomClient, RoomUpdate, ServerUrl, Session, create_room_as,
};
use roomscale_app::net::{Net, NetCommand, NetEvent};
use roomscale_app::scene::RoomScene;
use roomscale_protocol::events::{
    ErrorCode, ModeratePush, ModerationNotice, RoomEvent, RoomEventBody,
};
use roomscale_protocol::limits::MAX_REPLAY_BYTES;
use roomscale_protocol::presence::Role;
use roomscale_server::Store;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::native_client::{Server, create_room, identity, start_server};

/// Chat stored for the history tests: well over 200 KB in all.
const STORED_EVENTS: usize = 300;
const STORED_TEXT_CHARS: usize = 900;

/// A server on a free loopback port, its data in a new directory: (the
/// directory, which must outlive the server; the address, to start it again
/// on; the server; its URL).
async fn serve() -> (tempfile::TempDir, SocketAddr, Server, ServerUrl) {
    // A port that was free a moment ago: the server binds it again on restart.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port");
    let data = tempfile::tempdir().unwrap();
    let url = ServerUrl::parse(&format!("http://{addr}")).unwrap();
    let server = start_server(addr, data.path()).await;
    (data, addr, server, url)
}

/// A new visitor named `name`, joined to the room.
async fn visitor_joins(url: &ServerUrl, room_id: &str, name: &str) -> RoomClient {
    RoomClient::join(url, room_id, identity(name))
        .await
        .unwrap_or_else(|e| panic!("{name} could not join: {e}"))
}

/// Asserts that `error` is the server refusing with `code`.
#[track_caller]
fn assert_refused(error: &ClientError, code: &str) {
    assert!(
        matches!(error, ClientError::Refused { code: got, .. } if got == code),
        "expected a refusal with {code}: {error}"
    );
}

/// The next moderation notice whose act `act` accepts.
async fn next_notice(
    client: &mut RoomClient,
    seen: &mut Vec<RoomUpdate>,
    act: impl Fn(&ModeratePush) -> bool,
) -> ModerationNotice {
    next_matching(client, seen, |u| match u {
        RoomUpdate::Moderation(n) if act(&n.act) => Some(n.clone()),
        _ => None,
    })
    .await
}

/// Waits until `client` is joined again.
async fn rejoined(client: &mut RoomClient, seen: &mut Vec<RoomUpdate>) {
    next_matching(client, seen, |u| {
        matches!(u, RoomUpdate::Joined { .. }).then_some(())
    })
    .await;
}

/// Waits until `client` has the event with id `id`.
async fn event_arrived(client: &mut RoomClient, seen: &mut Vec<RoomUpdate>, id: u64) {
    next_matching(client, seen, |u| match u {
        RoomUpdate::Event(e) if e.id == id => Some(()),
        _ => None,
    })
    .await;
}

/// Stores `STORED_EVENTS` long chat messages in `room_id` straight into the
/// database, as a room that has been busy for a long time would have them.
/// The room must not be running (a running room learns of events only
/// through its own writes).
async fn store_long_history(store: &Store, room_id: &str) -> Vec<u64> {
    let room = room_id.parse().unwrap();
    let mut ids = Vec::new();
    for n in 0..STORED_EVENTS {
        let text = format!("{n:04} {}", "history ".repeat(STORED_TEXT_CHARS / 8));
        let event = store
            .append_event(
                room,
                "u-chatterbox",
                "Chatterbox",
                1_700_000_000_000 + n as i64,
                &RoomEventBody::Chat { text },
            )
            .await
            .unwrap();
        ids.push(event.id);
    }
    let bytes: usize = STORED_EVENTS * STORED_TEXT_CHARS;
    assert!(bytes > 200 * 1024, "the history is over 200 KB");
    ids
}

/// The next update `pick` accepts, within 10 s; `seen` gets every update read.
async fn next_matching<T>(
    client: &mut RoomClient,
    seen: &mut Vec<RoomUpdate>,
    mut pick: impl FnMut(&RoomUpdate) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let update = client.updates.recv().await.expect("the client is running");
            let found = pick(&update);
            seen.push(update);
            if let Some(found) = found {
                return found;
            }
        }
    })
    .await
    .expect("the expected update arrived within 10 s")
}

/// Like [`next_matching`], but an update already in `seen` counts too: for
/// what the server may send before or after another update.
async fn seen_or_next<T>(
    client: &mut RoomClient,
    seen: &mut Vec<RoomUpdate>,
    mut pick: impl FnMut(&RoomUpdate) -> Option<T>,
) -> T {
    if let Some(found) = seen.iter().find_map(&mut pick) {
        return found;
    }
    next_matching(client, seen, pick).await
}

fn events_in(updates: &[RoomUpdate]) -> Vec<RoomEvent> {
    updates
        .iter()
        .filter_map(|u| match u {
            RoomUpdate::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn json_bytes(events: &[RoomEvent]) -> usize {
    events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len())
        .sum()
}

#[tokio::test]
async fn a_long_history_joins_in_one_small_reply_and_pages_back_every_event_once() {
    let (_data, _, server, url) = serve().await;
    let room_id = create_room(&url, "Chatty").await;
    let stored = store_long_history(&server.state.store, &room_id).await;

    let mut bo = visitor_joins(&url, &room_id, "Bo").await;
    // The join's replay comes before the presence the join brings.
    let mut updates = Vec::new();
    next_matching(&mut bo, &mut updates, |u| {
        matches!(u, RoomUpdate::Presence(_)).then_some(())
    })
    .await;
    let replayed = events_in(&updates);
    let before_id = updates
        .iter()
        .find_map(|u| match u {
            RoomUpdate::OlderHistory { before_id } => Some(*before_id),
            _ => None,
        })
        .expect("the join says older history was left out");
    assert!(!replayed.is_empty() && replayed.len() < STORED_EVENTS);
    assert!(
        json_bytes(&replayed) <= MAX_REPLAY_BYTES,
        "the replay holds at most {MAX_REPLAY_BYTES} bytes of events"
    );
    assert_eq!(before_id, replayed[0].id);
    assert_eq!(
        replayed.last().unwrap().id,
        *stored.last().unwrap(),
        "the replay is the newest events"
    );

    // Page back to the start, as the chat's "load older" does.
    let mut all = replayed.clone();
    let mut scene = RoomScene::default();
    scene.joined(bo.slot());
    for update in updates {
        scene.apply(0.0, update);
    }
    let mut before = before_id;
    let mut pages = 0;
    loop {
        let page = bo.history(before).await.unwrap();
        pages += 1;
        assert!(!page.events.is_empty());
        assert!(json_bytes(&page.events) <= MAX_REPLAY_BYTES);
        assert!(page.events.iter().all(|e| e.id < before));
        let more = page.more;
        let oldest = page.events[0].id;
        all.splice(0..0, page.events.clone());
        assert_eq!(scene.history_before(), Some(before));
        scene.older_page(before, page);
        if !more {
            break;
        }
        before = oldest;
    }
    assert!(pages >= 4, "300 KB comes in several pages, not {pages}");
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, stored, "every stored event exactly once, oldest first");
    let shown: Vec<u64> = scene.chat().iter().filter_map(|line| line.id).collect();
    assert_eq!(shown, stored, "the chat shows each once");
    assert_eq!(scene.history_before(), None);
    bo.leave().await;
    server.stop().await;
}

#[tokio::test]
async fn a_rejoin_after_a_long_absence_fills_the_whole_gap_exactly_once() {
    let (data, addr, server, url) = serve().await;
    let room_id = create_room(&url, "Gap").await;
    let mut ada = visitor_joins(&url, &room_id, "Ada").await;
    let mut bo = visitor_joins(&url, &room_id, "Bo").await;
    let mut seen = Vec::new();
    let first = ada.chat("before the gap").await.unwrap();
    event_arrived(&mut bo, &mut seen, first).await;

    // The server goes away; meanwhile the room's history grows far beyond
    // what one join replays.
    server.stop().await;
    next_matching(&mut bo, &mut seen, |u| {
        matches!(u, RoomUpdate::ConnectionLost { .. }).then_some(())
    })
    .await;
    let config = roomscale_server::Config::for_tests(data.path());
    let store = Store::connect(&config.database_url()).await.unwrap();
    let missed = store_long_history(&store, &room_id).await;
    store.close().await;
    let server: Server = start_server(addr, data.path()).await;

    let mut after_rejoin = Vec::new();
    rejoined(&mut bo, &mut after_rejoin).await;
    // Ada is back too once her chat is stored.
    let last = loop {
        match ada.chat("after the gap").await {
            Ok(id) => break id,
            Err(ClientError::ConnectionLost) => rejoined(&mut ada, &mut Vec::new()).await,
            Err(other) => panic!("chat after the restart: {other}"),
        }
    };
    event_arrived(&mut bo, &mut after_rejoin, last).await;
    let ids: Vec<u64> = events_in(&after_rejoin).iter().map(|e| e.id).collect();
    let mut expected = missed.clone();
    expected.push(last);
    assert_eq!(
        ids, expected,
        "every event since the last one seen, once each, in order"
    );
    assert!(
        !after_rejoin
            .iter()
            .any(|u| matches!(u, RoomUpdate::OlderHistory { .. })),
        "a rejoin leaves no gap to fetch"
    );
    ada.leave().await;
    bo.leave().await;
    server.stop().await;
}

/// A room owned by Ada's session, with Ada in it.
async fn owned_room(url: &ServerUrl, name: &str) -> (Session, String, RoomClient) {
    let session = Session::create(url, "Ada").await.unwrap();
    let room = create_room_as(url, &session, name, "").await.unwrap();
    let ada = RoomClient::join_as(url, &room.id, identity("Ada"), session.clone())
        .await
        .unwrap();
    (session, room.id, ada)
}

#[tokio::test]
async fn the_owner_and_named_moderators_moderate_and_everyone_hears_each_act() {
    let (_data, _, server, url) = serve().await;
    let (_, room_id, mut ada) = owned_room(&url, "Moderated").await;
    let mut ada_seen = Vec::new();
    let governance = next_matching(&mut ada, &mut ada_seen, |u| match u {
        RoomUpdate::Governance(g) => Some(g.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        governance.owner_user_id.as_deref(),
        Some(ada.user_id.as_str())
    );

    let mut bo = visitor_joins(&url, &room_id, "Bo").await;
    let mut cy = visitor_joins(&url, &room_id, "Cy").await;
    let (bo_id, cy_id) = (bo.user_id.clone(), cy.user_id.clone());
    // Bo's view of the room, as the window would draw it.
    let mut bo_scene = RoomScene::default();
    bo_scene.joined(bo.slot());
    let mut bo_seen = Vec::new();
    next_matching(&mut bo, &mut bo_seen, |u| match u {
        RoomUpdate::Presence(p) if p.user_ids().any(|id| id == cy_id) => Some(()),
        _ => None,
    })
    .await;
    let ada_id = ada.user_id.clone();
    let presence = match bo_seen
        .iter()
        .rev()
        .find(|u| matches!(u, RoomUpdate::Presence(_)))
    {
        Some(RoomUpdate::Presence(p)) => p.clone(),
        _ => unreachable!("found above"),
    };
    let ada_meta = presence.members().find(|(id, _)| *id == ada_id).unwrap().1;
    assert_eq!(ada_meta.role, Role::Owner, "presence shows the owner");

    // A member may not moderate.
    let refused = bo
        .moderate(ModeratePush::Mute {
            user_id: cy_id.clone(),
            muted: true,
        })
        .await
        .unwrap_err();
    assert_refused(&refused, "forbidden");

    // The owner mutes Bo: everyone hears it, and Bo cannot unmute himself.
    ada.moderate(ModeratePush::Mute {
        user_id: bo_id.clone(),
        muted: true,
    })
    .await
    .unwrap();
    let notice = next_notice(&mut bo, &mut bo_seen, |_| true).await;
    assert_eq!(notice.by_user_id, ada_id);
    assert_eq!(notice.target_name.as_deref(), Some("Bo"));
    seen_or_next(&mut bo, &mut bo_seen, |u| match u {
        RoomUpdate::Presence(p) => p
            .members()
            .any(|(id, m)| id == bo_id && m.moderator_muted && m.muted)
            .then_some(()),
        _ => None,
    })
    .await;
    assert_refused(&bo.set_muted(false).await.unwrap_err(), "forbidden");

    // The owner names Bo a moderator; Bo locks the room.
    ada.moderate(ModeratePush::Moderator {
        user_id: bo_id.clone(),
        moderator: true,
    })
    .await
    .unwrap();
    let named = next_notice(&mut bo, &mut bo_seen, |act| {
        matches!(act, ModeratePush::Moderator { .. })
    })
    .await;
    assert!(named.governance.moderators.contains(&bo_id));
    seen_or_next(&mut bo, &mut bo_seen, |u| match u {
        RoomUpdate::Presence(p) => p
            .members()
            .any(|(id, m)| id == bo_id && m.role == Role::Moderator)
            .then_some(()),
        _ => None,
    })
    .await;
    bo.moderate(ModeratePush::Lock { locked: true })
        .await
        .unwrap();
    let locked = next_notice(&mut ada, &mut ada_seen, |act| {
        matches!(act, ModeratePush::Lock { .. })
    })
    .await;
    assert_eq!(locked.by_user_id, bo_id);
    assert!(locked.governance.locked);
    let dee = RoomClient::join(&url, &room_id, identity("Dee"))
        .await
        .unwrap_err();
    assert_refused(&dee, "room_locked");
    assert!(
        dee.to_string().contains("try again later"),
        "says what to do: {dee}"
    );

    // Bo, a moderator now, removes Cy: Cy is told why and does not come back.
    bo.moderate(ModeratePush::Remove {
        user_id: cy_id.clone(),
    })
    .await
    .unwrap();
    let why = next_matching(&mut cy, &mut Vec::new(), |u| match u {
        RoomUpdate::Closed(why) => Some(why.clone()),
        _ => None,
    })
    .await;
    assert_eq!(why.code, ErrorCode::Removed);
    assert!(why.reason.contains("rejoin"), "{}", why.reason);
    let after = tokio::time::timeout(Duration::from_secs(10), cy.updates.recv())
        .await
        .expect("the closed client's updates end");
    assert!(after.is_none(), "nothing after the close: {after:?}");
    assert!(matches!(
        cy.chat("still here?").await,
        Err(ClientError::Closed)
    ));
    next_notice(&mut bo, &mut bo_seen, |act| {
        matches!(act, ModeratePush::Remove { .. })
    })
    .await;

    // Every act is a line in Bo's chat log, names tagged.
    for update in bo_seen {
        bo_scene.apply(0.0, update);
    }
    let lines: Vec<String> = bo_scene
        .chat()
        .iter()
        .filter(|line| line.id.is_none())
        .map(|line| line.display())
        .collect();
    let ada_tagged = roomscale_app::scene::tagged("Ada", &ada_id);
    let bo_tagged = roomscale_app::scene::tagged("Bo", &bo_id);
    let cy_tagged = roomscale_app::scene::tagged("Cy", &cy_id);
    assert_eq!(
        lines,
        [
            format!("— {ada_tagged} muted {bo_tagged}"),
            format!("— {ada_tagged} made {bo_tagged} a moderator"),
            format!("— {bo_tagged} locked the room: nobody new can join"),
            format!("— {bo_tagged} removed {cy_tagged} from the room"),
        ]
    );
    assert!(bo_scene.governance().locked);
    assert_eq!(bo_scene.own_role(), Role::Moderator);
    ada.leave().await;
    bo.leave().await;
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_room_ends_every_visit_with_the_reason_and_nothing_reconnects() {
    let (_data, _, server, url) = serve().await;
    let (session, room_id, mut ada) = owned_room(&url, "Short-lived").await;
    let mut bo = visitor_joins(&url, &room_id, "Bo").await;
    client::delete_room_as(&url, &session, &room_id)
        .await
        .unwrap();
    for client in [&mut ada, &mut bo] {
        let mut updates = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(update) = client.updates.recv().await {
                updates.push(update);
            }
        })
        .await
        .expect("the client stops by itself");
        let closes: Vec<_> = updates
            .iter()
            .filter_map(|u| match u {
                RoomUpdate::Closed(why) => Some(why.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(closes.len(), 1, "{updates:?}");
        assert_eq!(closes[0].code, ErrorCode::RoomDeleted);
        assert!(
            !updates.iter().any(|u| matches!(
                u,
                RoomUpdate::Joined { .. } | RoomUpdate::ConnectionLost { .. }
            )),
            "no reconnect: {updates:?}"
        );
        assert!(matches!(updates.last(), Some(RoomUpdate::Closed(_))));
    }
    // A new join is refused with the reason.
    let refused = RoomClient::join(&url, &room_id, identity("Cy"))
        .await
        .unwrap_err();
    assert!(matches!(refused, ClientError::Refused { .. }), "{refused}");
    server.stop().await;
}

/// The `roomscale` binary beside this test's, when it was built.
fn app_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("roomscale");
    path.exists().then_some(path)
}

#[tokio::test]
async fn the_headless_app_removed_from_a_room_exits_with_the_reason() {
    let Some(app) = app_binary() else {
        println!("skipped: the roomscale binary is not built (cargo build -p roomscale-app)");
        return;
    };
    let (_data, addr, server, url) = serve().await;
    let (_, room_id, ada) = owned_room(&url, "Bouncer").await;

    let mut child = tokio::process::Command::new(app)
        .args([
            "join",
            &format!("http://{addr}/rooms/{room_id}"),
            "--headless",
            "--name",
            "Cy",
            "--seconds",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    // "joined "Bouncer" as <user id> (slot N)"
    let cy_id = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("joined ") {
                let after_as = rest.split(" as ").nth(1).unwrap();
                return after_as.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("the app ended before joining");
    })
    .await
    .expect("the app joined within 20 s");
    ada.moderate(ModeratePush::Remove { user_id: cy_id })
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the removed app exits at once, not after its 60 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit status {:?}", output.status);
    assert!(
        stderr.contains("A moderator removed you from this room"),
        "stderr: {stderr}"
    );
    ada.leave().await;
    server.stop().await;
}

#[tokio::test]
async fn a_member_who_is_removed_cannot_join_again_and_is_told_so() {
    let (_data, _, server, url) = serve().await;
    let (_, room_id, ada) = owned_room(&url, "Firm").await;
    let cy_session = Session::create(&url, "Cy").await.unwrap();
    let mut cy = RoomClient::join_as(&url, &room_id, identity("Cy"), cy_session.clone())
        .await
        .unwrap();
    ada.moderate(ModeratePush::Remove {
        user_id: cy.user_id.clone(),
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    next_matching(&mut cy, &mut seen, |u| {
        matches!(u, RoomUpdate::Closed(_)).then_some(())
    })
    .await;
    let again = RoomClient::join_as(&url, &room_id, identity("Cy"), cy_session)
        .await
        .unwrap_err();
    assert_refused(&again, "removed");
    assert!(again.to_string().contains("removed you"), "{again}");
    ada.leave().await;
    server.stop().await;
}

/// The next event from the app's network side that `pick` accepts, within 10 s.
fn next_net_event<T>(net: &Net, mut pick: impl FnMut(NetEvent) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    tokio::task::block_in_place(|| {
        loop {
            let left = deadline
                .checked_duration_since(std::time::Instant::now())
                .expect("the expected network event arrived within 10 s");
            let event = net
                .events
                .recv_timeout(left)
                .expect("the expected network event arrived within 10 s");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_creates_a_room_it_moderates_and_pages_back_its_whole_history() {
    let (_data, _, server, url) = serve().await;

    // The app makes a room: it owns it, so it may moderate there.
    let app = Net::start(url.clone(), identity("Ada")).unwrap();
    app.send(NetCommand::CreateRoom("Ada's".into()));
    let room_id = next_net_event(&app, |event| match event {
        NetEvent::Rooms(rooms) => rooms
            .into_iter()
            .find(|room| room.name == "Ada's")
            .map(|room| room.id),
        _ => None,
    });
    // A long history, stored before anyone is in the room.
    let stored = store_long_history(&server.state.store, &room_id).await;
    app.send(NetCommand::Join(room_id.clone()));
    let (ada_id, slot) = next_net_event(&app, |event| match event {
        NetEvent::Joined { user_id, slot, .. } => Some((user_id, slot)),
        _ => None,
    });
    let mut scene = RoomScene::default();
    scene.joined(slot);
    next_net_event(&app, |event| match event {
        NetEvent::Update(update) => {
            let presence = matches!(update, RoomUpdate::Presence(_));
            scene.apply(0.0, update);
            presence.then_some(())
        }
        _ => None,
    });
    assert_eq!(scene.own_role(), Role::Owner);
    assert!(scene.may_lock());

    // "Load older messages" until there are none.
    while let Some(before_id) = scene.history_before() {
        app.send(NetCommand::LoadOlderHistory(before_id));
        let (asked, page) = next_net_event(&app, |event| match event {
            NetEvent::History { before_id, page } => Some((before_id, page)),
            _ => None,
        });
        scene.older_page(asked, page);
    }
    let shown: Vec<u64> = scene.chat().iter().filter_map(|line| line.id).collect();
    assert_eq!(shown, stored, "every stored message once, oldest first");

    // Bo comes in; the app mutes him from the room.
    let mut bo = visitor_joins(&url, &room_id, "Bo").await;
    let bo_id = bo.user_id.clone();
    next_net_event(&app, |event| match event {
        NetEvent::Update(update) => {
            let bo_in =
                matches!(&update, RoomUpdate::Presence(p) if p.user_ids().any(|id| id == bo_id));
            scene.apply(0.0, update);
            bo_in.then_some(())
        }
        _ => None,
    });
    assert!(scene.allowed_on(&bo_id).mute && scene.allowed_on(&bo_id).name_moderator);
    app.send(NetCommand::Moderate(ModeratePush::Mute {
        user_id: bo_id.clone(),
        muted: true,
    }));
    let notice = next_notice(&mut bo, &mut Vec::new(), |_| true).await;
    assert_eq!(notice.by_user_id, ada_id);
    bo.leave().await;
    // The app's runtime stops as the window's would, blocking this thread.
    tokio::task::block_in_place(|| app.shut_down(Duration::from_secs(2)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_muted_by_a_moderator_does_not_unmute_itself_and_says_why() {
    let (_data, _, server, url) = serve().await;
    let (_, room_id, ada) = owned_room(&url, "Quiet please").await;

    let app = Net::start(url.clone(), identity("Bo")).unwrap();
    app.send(NetCommand::Join(room_id.clone()));
    let (bo_id, slot) = next_net_event(&app, |event| match event {
        NetEvent::Joined { user_id, slot, .. } => Some((user_id, slot)),
        _ => None,
    });
    let mut scene = RoomScene::default();
    scene.joined(slot);
    ada.moderate(ModeratePush::Mute {
        user_id: bo_id.clone(),
        muted: true,
    })
    .await
    .unwrap();
    // Presence and the notice, in whichever order they come.
    next_net_event(&app, |event| match event {
        NetEvent::Update(update) => {
            scene.apply(0.0, update);
            let heard = scene.chat().iter().any(|line| line.id.is_none());
            (heard && scene.own_moderator_muted()).then_some(())
        }
        _ => None,
    });
    assert_eq!(scene.own_role(), Role::Member);
    assert_eq!(
        scene.allowed_on(&ada.user_id),
        Default::default(),
        "a member is offered no moderation"
    );
    let line = scene.chat().last().unwrap().display();
    assert!(line.contains("muted Bo ("), "{line}");

    // The visitor asks to unmute: the app refuses and says why.
    app.send(NetCommand::SetMuted(false));
    let said = next_net_event(&app, |event| match event {
        NetEvent::Status(message) => Some(message),
        _ => None,
    });
    assert_eq!(said, roomscale_app::net::MODERATOR_MUTED);
    // The app's runtime stops as the window's would, blocking this thread.
    tokio::task::block_in_place(|| app.shut_down(Duration::from_secs(2)));
    ada.leave().await;
    server.stop().await;
}

#[tokio::test]
async fn a_member_locked_out_after_a_restart_is_told_why_and_does_not_knock_again_soon() {
    let (data, addr, server, url) = serve().await;
    let (_, room_id, ada) = owned_room(&url, "Closed doors").await;
    let mut bo = visitor_joins(&url, &room_id, "Bo").await;
    ada.moderate(ModeratePush::Lock { locked: true })
        .await
        .unwrap();
    let mut seen = Vec::new();
    next_notice(&mut bo, &mut seen, |_| true).await;

    // After a restart Bo is someone new at a locked door.
    server.stop().await;
    let server = start_server(addr, data.path()).await;
    let refused = next_matching(&mut bo, &mut seen, |u| match u {
        RoomUpdate::ConnectionLost { reason } if reason.contains("locked") => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        refused.contains("try again later"),
        "says what to do: {refused}"
    );
    // The next try waits far longer than a network failure's backoff.
    let next = tokio::time::timeout(Duration::from_secs(5), bo.updates.recv()).await;
    assert!(
        next.is_err(),
        "no second knock within 5 s: {:?}",
        next.ok().flatten()
    );
    bo.leave().await;
    ada.leave().await;
    server.stop().await;
}
