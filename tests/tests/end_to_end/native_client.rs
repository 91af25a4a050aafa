//! The native headless room client against a real server: presence, chat, poses,
//! and a server restart survived without losing or repeating a message, and
//! with the slots the restarted room hands out.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use roomscale_app::client::{Identity, RoomClient, RoomUpdate, ServerUrl};
use roomscale_protocol::events::{ClientKind, RoomEventBody};
use roomscale_protocol::pose::{self, AvatarPose};
use roomscale_server::{AppState, Config, Identity as Keys, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A server on a fixed loopback address that can be stopped and started again
/// on the same data directory.
pub(super) struct Server {
    /// The running server's state, for what a test reaches into (the SFU).
    pub(super) state: AppState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub(super) async fn start_server(addr: SocketAddr, data_dir: &Path) -> Server {
    let config = Config::for_tests(data_dir);
    let store = Store::connect(&config.database_url()).await.unwrap();
    let keys = Keys::load_or_create(&config.secret_key_path()).unwrap();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let state = AppState::new(config, store, keys, shutdown_rx.clone());
    let listener = TcpListener::bind(addr).await.unwrap();
    let serving = state.clone();
    let task = tokio::spawn(async move {
        let mut stop = shutdown_rx;
        roomscale_server::serve_app(listener, serving)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
    });
    Server {
        state,
        shutdown,
        task,
    }
}

impl Server {
    pub(super) async fn stop(self) {
        self.shutdown.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A server on a free loopback port over a fresh data directory, and a room
/// made there.
pub(super) struct LoopbackRoom {
    pub(super) server: Server,
    pub(super) url: ServerUrl,
    pub(super) id: String,
    addr: SocketAddr,
    data: tempfile::TempDir,
}

/// A new server on loopback with a room named `name`.
pub(super) async fn room_on_loopback(name: &str) -> LoopbackRoom {
    let data = tempfile::tempdir().unwrap();
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let server = start_server(addr, data.path()).await;
    let url = ServerUrl::parse(&format!("http://{addr}")).unwrap();
    let id = create_room(&url, name).await;
    LoopbackRoom {
        server,
        url,
        id,
        addr,
        data,
    }
}

impl LoopbackRoom {
    /// (server, url, room id, address, data directory): for a test that stops
    /// and starts the server by hand around what its clients notice meanwhile.
    pub(super) fn into_parts(self) -> (Server, ServerUrl, String, SocketAddr, tempfile::TempDir) {
        (self.server, self.url, self.id, self.addr, self.data)
    }

    /// Stops the whole server and starts it again on the same address and data.
    pub(super) async fn restart_server(self) -> LoopbackRoom {
        self.server.stop().await;
        LoopbackRoom {
            server: start_server(self.addr, self.data.path()).await,
            ..self
        }
    }
}

pub(super) async fn create_room(server: &ServerUrl, name: &str) -> String {
    roomscale_app::client::create_room(server, name, "")
        .await
        .unwrap()
        .id
}

pub(super) fn identity(name: &str) -> Identity {
    Identity {
        name: name.into(),
        colour: "#3a7bd5".into(),
        kind: ClientKind::Desktop,
    }
}

async fn next_matching<T>(
    client: &mut RoomClient,
    mut pick: impl FnMut(RoomUpdate) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let update = client.updates.recv().await.expect("the client is running");
            if let Some(found) = pick(update) {
                return found;
            }
        }
    })
    .await
    .expect("the expected update arrived within 10 s")
}

#[tokio::test]
async fn native_clients_share_presence_chat_and_poses_and_survive_a_server_restart() {
    let (server, url, room_id, addr, data) = room_on_loopback("Native").await.into_parts();

    let mut ada = RoomClient::join(&url, &room_id, identity("Ada"))
        .await
        .unwrap();
    let mut bo = RoomClient::join(&url, &room_id, identity("Bo"))
        .await
        .unwrap();
    let bo_id = bo.user_id.clone();
    next_matching(&mut ada, |u| match u {
        RoomUpdate::Presence(p) if p.user_ids().any(|id| id == bo_id) => Some(()),
        _ => None,
    })
    .await;

    let first = ada.chat("before the restart").await.unwrap();
    let heard = next_matching(&mut bo, |u| match u {
        RoomUpdate::Event(e) => Some(e),
        _ => None,
    })
    .await;
    assert_eq!(
        (heard.id, heard.body),
        (
            first,
            RoomEventBody::Chat {
                text: "before the restart".into()
            }
        )
    );

    let mut walking = AvatarPose::default();
    walking.head.position = [0.75, 1.6, -2.5];
    ada.set_pose(walking);
    let ada_slot = ada.slot();
    let seen = next_matching(&mut bo, |u| match u {
        RoomUpdate::Poses { poses, .. } => poses.into_iter().find(|(slot, _)| *slot == ada_slot),
        _ => None,
    })
    .await;
    assert!((seen.1.head.position[0] - 0.75).abs() <= pose::POSITION_ERROR_BOUND_M);

    // Restart the server on the same address and data.
    server.stop().await;
    let lost = next_matching(&mut bo, |u| match u {
        RoomUpdate::ConnectionLost { reason } => Some(reason),
        _ => None,
    })
    .await;
    assert!(!lost.is_empty());
    let server = start_server(addr, data.path()).await;
    next_matching(&mut bo, |u| {
        matches!(u, RoomUpdate::Joined { .. }).then_some(())
    })
    .await;
    next_matching(&mut ada, |u| {
        matches!(u, RoomUpdate::Joined { .. }).then_some(())
    })
    .await;

    // Ada has stood still since before the restart: the restarted room still
    // gets her pose, because a new membership has heard none.
    let seen = next_matching(&mut bo, |u| match u {
        RoomUpdate::Poses { poses, .. } => poses.into_iter().find(|(slot, _)| *slot == ada.slot()),
        _ => None,
    })
    .await;
    assert!((seen.1.head.position[0] - 0.75).abs() <= pose::POSITION_ERROR_BOUND_M);

    // After the rejoin: the old message is not delivered again, new ones flow.
    let second = ada.chat("after the restart").await.unwrap();
    assert!(second > first);
    let next_event = next_matching(&mut bo, |u| match u {
        RoomUpdate::Event(e) => Some(e),
        _ => None,
    })
    .await;
    assert_eq!(
        next_event.id, second,
        "no duplicate of the message from before the restart"
    );
    ada.leave().await;
    bo.leave().await;
    server.stop().await;
}

#[tokio::test]
async fn after_a_server_restart_the_client_has_the_slot_of_its_rejoin_and_poses_follow_new_slots() {
    let (server, url, room_id, addr, data) = room_on_loopback("Slots").await.into_parts();

    // Bo takes slot 1, Cy slot 2, Ada slot 3; Cy leaves. The restarted room
    // has only Ada and Bo to place, in slots 1 and 2 in whichever order they
    // rejoin, so Ada's slot changes whatever the order.
    let mut bo = RoomClient::join(&url, &room_id, identity("Bo"))
        .await
        .unwrap();
    let cy = RoomClient::join(&url, &room_id, identity("Cy"))
        .await
        .unwrap();
    let mut ada = RoomClient::join(&url, &room_id, identity("Ada"))
        .await
        .unwrap();
    assert_eq!((bo.slot(), cy.slot(), ada.slot()), (1, 2, 3));
    cy.leave().await;
    let first_slot = ada.slot();

    server.stop().await;
    for client in [&mut ada, &mut bo] {
        next_matching(client, |u| {
            matches!(u, RoomUpdate::ConnectionLost { .. }).then_some(())
        })
        .await;
    }
    let server = start_server(addr, data.path()).await;
    let rejoined_slot = next_matching(&mut ada, |u| match u {
        RoomUpdate::Joined { slot, .. } => Some(slot),
        _ => None,
    })
    .await;
    assert_ne!(
        rejoined_slot, first_slot,
        "the restarted room placed Ada anew"
    );
    assert_eq!(
        ada.slot(),
        rejoined_slot,
        "the client's slot is its rejoin's"
    );
    let bo_rejoined_slot = next_matching(&mut bo, |u| match u {
        RoomUpdate::Joined { slot, .. } => Some(slot),
        _ => None,
    })
    .await;

    // Presence as Ada sees it once Bo is back: both metas carry new slots,
    // and Ada's own is the one the client reports.
    let (bo_id, ada_id) = (bo.user_id.clone(), ada.user_id.clone());
    let presence = next_matching(&mut ada, |u| match u {
        RoomUpdate::Presence(p) if p.user_ids().any(|id| id == bo_id) => Some(p),
        _ => None,
    })
    .await;
    let slot_of = |user: &str| {
        presence
            .members()
            .find(|(id, _)| *id == user)
            .map(|(_, meta)| meta.slot)
            .unwrap()
    };
    assert_eq!(slot_of(&ada_id), ada.slot());
    let bo_slot = slot_of(&bo_id);
    assert_eq!((bo_rejoined_slot, bo.slot()), (bo_slot, bo_slot));
    assert_ne!(bo_slot, ada.slot());

    // Bo's poses reach Ada under Bo's new slot.
    let mut waving = AvatarPose::default();
    waving.head.position = [-1.25, 1.7, 0.5];
    bo.set_pose(waving);
    let seen = next_matching(&mut ada, |u| match u {
        RoomUpdate::Poses { poses, .. } => poses
            .into_iter()
            .find(|(_, pose)| (pose.head.position[0] + 1.25).abs() <= pose::POSITION_ERROR_BOUND_M),
        _ => None,
    })
    .await;
    assert_eq!(seen.0, bo_slot, "Bo's pose carries Bo's slot");

    ada.leave().await;
    bo.leave().await;
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_is_down_or_a_missing_room_says_what_to_do() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = ServerUrl::parse(&format!("http://{addr}")).unwrap();
    let error = RoomClient::join(
        &url,
        "6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f",
        identity("Ada"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("cannot reach the server") && error.contains("cargo xtask run"),
        "{error}"
    );

    let data = tempfile::tempdir().unwrap();
    let server = start_server(addr, data.path()).await;
    let error = RoomClient::join(
        &url,
        "6f1c2a7e-4b3d-4c5e-9f10-2a3b4c5d6e7f",
        identity("Ada"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("does not exist"), "{error}");
    server.stop().await;
}
