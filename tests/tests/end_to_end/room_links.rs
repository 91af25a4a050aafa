//! `roomscale join roomscale://…` against a real server on loopback: the
//! headless app joins the room the link names and speaks there, and a link
//! with a broken room id fails before any connection, saying what is wrong.

use std::path::PathBuf;
use std::time::Duration;

use roomscale_app::client::{RoomClient, RoomUpdate};
use roomscale_protocol::events::RoomEventBody;

use crate::native_client::{identity, room_on_loopback};

/// The `roomscale` binary beside this test's, when it was built.
fn app_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("roomscale");
    path.exists().then_some(path)
}

#[tokio::test]
async fn the_headless_app_joins_the_room_a_roomscale_link_names() {
    let Some(app) = app_binary() else {
        println!("skipped: the roomscale binary is not built (cargo build -p roomscale-app)");
        return;
    };
    let room = room_on_loopback("Linked").await;
    let mut ada = RoomClient::join(&room.url, &room.id, identity("Ada"))
        .await
        .unwrap();
    // Upper case and a trailing slash, as a hand-copied link may have.
    let link = format!(
        "roomscale://{}/rooms/{}/",
        room.url.authority(),
        room.id.to_ascii_uppercase()
    );
    let said = "hello through a roomscale link";
    let run = tokio::process::Command::new(&app)
        .args(["join", &link, "--headless", "--name", "Linker"])
        .args(["--say", said, "--seconds", "2"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the app leaves after its 2 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{link}: {:?}\n{stdout}{stderr}",
        output.status
    );
    assert!(stdout.starts_with("joined \"Linked\" as "), "{stdout}");

    // The room's other member hears what the app said there.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(update) = ada.updates.recv().await {
            if let RoomUpdate::Event(event) = update
                && let RoomEventBody::Chat { text } = &event.body
            {
                return (event.name.clone(), text.clone());
            }
        }
        panic!("Ada's client stopped before the chat line came");
    })
    .await
    .expect("Ada hears the chat line within 10 s");
    assert_eq!(heard, ("Linker".to_string(), said.to_string()));

    // A cut-short room id fails at once, naming the problem and a good link.
    let broken = format!(
        "roomscale://{}/rooms/{}",
        room.url.authority(),
        &room.id[..20]
    );
    let refused = tokio::process::Command::new(&app)
        .args(["join", &broken, "--headless", "--seconds", "2"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{broken} was accepted");
    assert!(
        stderr.contains("is not a room id") && stderr.contains("roomscale://localhost:4000/rooms/"),
        "{stderr}"
    );
    ada.leave().await;
    room.server.stop().await;
}
