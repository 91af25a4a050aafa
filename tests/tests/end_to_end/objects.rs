//! Shared objects between two native clients and a real server: one carries
//! cube-1 and throws it, the other sees it follow (interpolated like an
//! avatar) and come to rest where the thrower put it; a grab while it is held
//! is refused with the holder's name; a throw caught mid-air ends the
//! thrower's flight and the catcher puts it down. Both clients drive the app's own
//! `RoomScene` and `Objects`, as the desktop and headset frame loops do.

use std::time::{Duration, Instant};

use roomscale_app::client::{ClientError, RoomClient};
use roomscale_app::objects::{GrabOutcome, ShownObject};
use roomscale_app::scene::RoomScene;

use super::native_client::{LoopbackRoom, identity, room_on_loopback};

const IDENTITY: [f32; 4] = [0.0, 0.0, 0.0, 1.0];
/// How close the watcher's view and the thrower's must agree, in metres.
const AGREE_M: f32 = 0.05;
/// One frame at 90 Hz.
const FRAME: Duration = Duration::from_micros(11_111);

/// A client with the scene its frame loop would keep.
struct Visitor {
    client: RoomClient,
    scene: RoomScene,
    started: Instant,
}

impl Visitor {
    async fn join(room: &LoopbackRoom, name: &str, started: Instant) -> Visitor {
        let client = RoomClient::join(&room.url, &room.id, identity(name))
            .await
            .unwrap();
        let mut scene = RoomScene::default();
        scene.joined(client.slot());
        Visitor {
            client,
            scene,
            started,
        }
    }

    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Takes in every update that arrived.
    fn drain(&mut self) {
        while let Ok(update) = self.client.updates.try_recv() {
            let now = self.now();
            self.scene.apply(now, update);
        }
    }

    /// Grabs `object_id` as a hand does: the scene's own check, then the
    /// server's answer, which goes back into the scene.
    async fn grab(&mut self, object_id: &str) -> GrabOutcome {
        let now = self.now();
        let request = self
            .scene
            .objects_mut()
            .grab(object_id, now)
            .unwrap_or_else(|| panic!("the scene lets {object_id} be grabbed"));
        let outcome = GrabOutcome::from_result(self.client.grab(&request.object_id).await);
        let now = self.now();
        self.scene
            .objects_mut()
            .on_grab_reply(object_id, outcome.clone(), now);
        outcome
    }

    /// Lets go of `object_id`: the scene starts its flight, the server hears.
    async fn let_go(&mut self, object_id: &str) {
        let now = self.now();
        let release = self.scene.objects_mut().release(object_id, now).unwrap();
        self.client.release(&release.object_id).await.unwrap();
    }

    fn cube(&self) -> Option<ShownObject> {
        self.scene.objects().shown("cube-1", self.now())
    }

    /// Advances this visitor's own throws and sends what they need, as
    /// `Net::pump_objects` does for a window.
    async fn pump(&mut self) {
        let now = self.now();
        let tick = self.scene.objects_mut().tick(now);
        for release in tick.releases {
            self.client.release(&release.object_id).await.unwrap();
        }
        for (object_id, state) in tick.rests {
            self.client
                .set_object(&object_id, &state)
                .await
                .expect("the thrower's rest is stored");
        }
        self.client.set_object_poses(tick.poses);
    }
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// A server with a room named `room_name`, Ada and Bo in it, both showing
/// the room's objects: (room, Ada, Bo, when they started).
async fn ada_and_bo(room_name: &str) -> (LoopbackRoom, Visitor, Visitor, Instant) {
    let room = room_on_loopback(room_name).await;
    let started = Instant::now();
    let mut ada = Visitor::join(&room, "Ada", started).await;
    let mut bo = Visitor::join(&room, "Bo", started).await;
    until(
        &mut ada,
        &mut bo,
        Duration::from_secs(5),
        "the snapshot",
        |a, b| a.cube().is_some() && b.cube().is_some(),
    )
    .await;
    (room, ada, bo, started)
}

/// Drains both visitors every frame until `done` says so, or fails after `limit`.
async fn until(
    ada: &mut Visitor,
    bo: &mut Visitor,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Visitor, &Visitor) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        ada.drain();
        bo.drain();
        ada.pump().await;
        if done(ada, bo) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(FRAME).await;
    }
}

#[tokio::test]
async fn a_cube_carried_and_thrown_by_one_native_client_is_followed_and_rests_alike_for_another() {
    // Every new room starts with cube-1 on the table.
    let (room, mut ada, mut bo, started) = ada_and_bo("Objects").await;
    let start = ada.cube().unwrap();
    assert!(start.resting);
    assert!(
        (start.position[1] - 0.8).abs() < 0.02,
        "on the table: {start:?}"
    );

    // Ada grabs it.
    let outcome = ada.grab("cube-1").await;
    assert!(
        matches!(outcome, GrabOutcome::Granted { .. }),
        "{outcome:?}"
    );
    let now = ada.now();
    ada.scene
        .objects_mut()
        .hold_at("cube-1", start.position, IDENTITY, now);
    until(
        &mut ada,
        &mut bo,
        Duration::from_secs(5),
        "Bo hears who holds it",
        |_, b| {
            b.cube()
                .and_then(|c| c.holder)
                .is_some_and(|h| h.name == "Ada" && !h.throwing)
        },
    )
    .await;

    // Bo's grab while Ada holds it is refused, naming her: by the server...
    match bo.client.grab("cube-1").await {
        Err(ClientError::ObjectHeld {
            holder: Some(holder),
            ..
        }) => assert_eq!(holder.name, "Ada"),
        other => panic!("Bo's grab was not refused with the holder: {other:?}"),
    }
    // ...and by Bo's own scene, which knows already.
    let now = bo.now();
    assert_eq!(bo.scene.objects_mut().grab("cube-1", now), None);
    assert_eq!(
        bo.scene.objects_mut().take_notices(),
        ["cube-1 is held by Ada"]
    );

    // Ada carries it up and sideways for a second, then holds it still.
    let carry_start = ada.now();
    let hand = |t: f64| {
        let f = (t / 1.0).clamp(0.0, 1.0) as f32;
        let eased = f * f * (3.0 - 2.0 * f);
        [
            start.position[0] + 0.5 * eased,
            start.position[1] + 0.4 * eased,
            start.position[2] + 0.3 * eased,
        ]
    };
    let mut carried: Vec<(f64, [f32; 3])> = Vec::new();
    let mut seen: Vec<(f64, [f32; 3])> = Vec::new();
    while ada.now() - carry_start < 1.5 {
        let now = ada.now();
        let at = hand(now - carry_start);
        ada.scene.objects_mut().hold_at("cube-1", at, IDENTITY, now);
        carried.push((now, at));
        ada.drain();
        bo.drain();
        ada.pump().await;
        if let Some(cube) = bo.cube() {
            seen.push((bo.now(), cube.position));
        }
        tokio::time::sleep(FRAME).await;
    }
    // Bo follows: once the stream is under way, what he shows is where Ada's
    // hand was within the last quarter second (he shows ~100 ms behind).
    let mut followed = 0;
    for (t, position) in seen.iter().filter(|(t, _)| t - carry_start > 0.3) {
        let nearest = carried
            .iter()
            .filter(|(c, _)| (t - 0.3..=*t).contains(c))
            .map(|(_, hand)| distance(*hand, *position))
            .fold(f32::INFINITY, f32::min);
        assert!(
            nearest <= AGREE_M,
            "at {t:.3} s Bo shows {position:?}, {nearest:.3} m from where Ada's hand was"
        );
        followed += 1;
    }
    assert!(
        followed > 50,
        "only {followed} frames of Bo's view compared"
    );
    let top = hand(1.0);
    let shown = bo.cube().unwrap();
    assert!(
        distance(shown.position, top) <= 0.005,
        "held still, Bo shows it where Ada holds it: {shown:?} vs {top:?}"
    );

    // A swing along +X and up, then she lets go.
    let swing_start = ada.now();
    while ada.now() - swing_start < 0.2 {
        let now = ada.now();
        let s = (now - swing_start) as f32;
        let at = [top[0] + 2.0 * s, top[1] + 1.0 * s, top[2]];
        ada.scene.objects_mut().hold_at("cube-1", at, IDENTITY, now);
        ada.drain();
        bo.drain();
        ada.pump().await;
        tokio::time::sleep(FRAME).await;
    }
    ada.let_go("cube-1").await;
    let released_at = ada.cube().unwrap().position;

    // Bo sees it thrown, then both show it resting at the same place.
    let mut saw_throw = false;
    until(
        &mut ada,
        &mut bo,
        Duration::from_secs(10),
        "the rest",
        |a, b| {
            saw_throw |= b.cube().and_then(|c| c.holder).is_some_and(|h| h.throwing);
            a.cube().is_some_and(|c| c.resting) && b.cube().is_some_and(|c| c.resting)
        },
    )
    .await;
    assert!(saw_throw, "Bo never saw the cube thrown");
    let (a, b) = (ada.cube().unwrap(), bo.cube().unwrap());
    assert!(
        distance(a.position, b.position) <= AGREE_M,
        "Ada shows it at {:?}, Bo at {:?}",
        a.position,
        b.position
    );
    assert!(
        a.position[0] > released_at[0] + 0.2,
        "it flew on along +X: released at {released_at:?}, rests at {:?}",
        a.position
    );
    assert!(
        (a.position[1] - 0.05).abs() < 0.01 || (a.position[1] - 0.8).abs() < 0.01,
        "it lies on the floor or the table: {:?}",
        a.position
    );
    assert!(!a.held_by_me && a.holder.is_none());

    // A newcomer's snapshot agrees.
    let carl = Visitor::join(&room, "Carl", started).await;
    let mut carl = carl;
    let deadline = Instant::now() + Duration::from_secs(5);
    while carl.cube().is_none() {
        assert!(Instant::now() < deadline, "Carl's snapshot within 5 s");
        carl.drain();
        tokio::time::sleep(FRAME).await;
    }
    let c = carl.cube().unwrap();
    assert!(
        c.resting && distance(c.position, a.position) <= 0.002,
        "{c:?}"
    );

    ada.client.leave().await;
    bo.client.leave().await;
    carl.client.leave().await;
    room.server.stop().await;
}

#[tokio::test]
async fn a_native_client_catches_a_cube_another_threw_and_the_throwers_flight_ends() {
    let (room, mut ada, mut bo, _) = ada_and_bo("Catching").await;
    let start = ada.cube().unwrap().position;

    // Ada lifts the cube 1.5 m above the table and tosses it up.
    ada.grab("cube-1").await;
    let lift = ada.now();
    while ada.now() - lift < 0.3 {
        let now = ada.now();
        let up = (now - lift) as f32 * 5.0;
        ada.scene.objects_mut().hold_at(
            "cube-1",
            [start[0], start[1] + up, start[2]],
            IDENTITY,
            now,
        );
        ada.drain();
        bo.drain();
        ada.pump().await;
        tokio::time::sleep(FRAME).await;
    }
    ada.let_go("cube-1").await;

    // Bo hears it is thrown and catches it in the air.
    until(
        &mut ada,
        &mut bo,
        Duration::from_secs(5),
        "Bo hears of the throw",
        |_, b| {
            b.cube()
                .and_then(|c| c.holder)
                .is_some_and(|h| h.throwing && h.name == "Ada")
        },
    )
    .await;
    assert!(
        ada.cube().unwrap().held_by_me,
        "the cube is still in Ada's flight when Bo reaches for it"
    );
    // (A thrown object may be caught: Bo's scene lets him grab it.)
    let outcome = bo.grab("cube-1").await;
    assert!(
        matches!(outcome, GrabOutcome::Granted { .. }),
        "the catch: {outcome:?}"
    );
    let now = bo.now();
    let catch_at = [start[0] + 0.8, 1.4, start[2] + 0.5];
    bo.scene
        .objects_mut()
        .hold_at("cube-1", catch_at, IDENTITY, now);

    // Ada's flight ends: she hears who caught it and sends nothing more.
    until(
        &mut ada,
        &mut bo,
        Duration::from_secs(5),
        "Ada hears of the catch",
        |a, _| {
            a.cube()
                .and_then(|c| c.holder)
                .is_some_and(|h| h.name == "Bo" && !h.throwing)
        },
    )
    .await;
    let now = ada.now();
    let tick = ada.scene.objects_mut().tick(now);
    assert!(
        tick.poses.is_empty() && tick.rests.is_empty(),
        "Ada still flies it: {tick:?}"
    );
    assert!(!ada.cube().unwrap().held_by_me);

    // Bo holds it still for a moment; Ada sees it in his hand.
    let held_from = bo.now();
    while bo.now() - held_from < 0.5 {
        let now = bo.now();
        bo.scene
            .objects_mut()
            .hold_at("cube-1", catch_at, IDENTITY, now);
        ada.drain();
        bo.drain();
        bo.pump().await;
        tokio::time::sleep(FRAME).await;
    }
    let seen = ada.cube().unwrap();
    assert!(
        distance(seen.position, catch_at) <= 0.005,
        "Ada shows the caught cube at {:?}, Bo holds it at {catch_at:?}",
        seen.position
    );

    // He lets it drop; both see it rest at the same place.
    bo.let_go("cube-1").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ada.drain();
        bo.drain();
        bo.pump().await;
        if ada.cube().is_some_and(|c| c.resting) && bo.cube().is_some_and(|c| c.resting) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped cube rests within 10 s"
        );
        tokio::time::sleep(FRAME).await;
    }
    let (a, b) = (ada.cube().unwrap(), bo.cube().unwrap());
    assert!(
        distance(a.position, b.position) <= AGREE_M,
        "{a:?} vs {b:?}"
    );
    assert!(
        (a.position[0] - catch_at[0]).abs() < 0.1 && (a.position[1] - 0.05).abs() < 0.01,
        "dropped straight down to the floor: {:?}",
        a.position
    );

    ada.client.leave().await;
    bo.client.leave().await;
    room.server.stop().await;
}
