//! The voice control plane: muting enforced by the SFU, leaving for good, peer
//! caps, and bad datagrams. Each test plays the attack against the real server
//! and real str0m peers over loopback UDP, and checks that the honest members
//! are still served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use roomscale_protocol::events::IceCandidate;
use roomscale_server::address::ChannelAddress;
use roomscale_server::voice::{Route, Voice};
use serde_json::{Value, json};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};

use crate::common::TestServer;
use crate::common::ws::{AdaAndBo, TestSocket, assert_ok, assert_refused};
use crate::moderation::{Person, olgas_room};
use crate::voice::{LivePeer, answer_offer_for, client_peer, join_live, push_expect};

/// Long enough for a live publisher (a frame every 20 ms) to be heard often.
const LISTEN: Duration = Duration::from_secs(1);
/// Frames a listener must get in [`LISTEN`] to count as hearing someone.
const HEARD: usize = 10;
/// Frames already on their way when forwarding stops still arrive in this.
const IN_FLIGHT: Duration = Duration::from_millis(300);

/// Waits for a `speaking` broadcast about `user_id` saying `speaking`.
async fn expect_speaking(socket: &mut TestSocket, user_id: &str, speaking: bool) {
    socket
        .expect_text(|f| {
            f.event == "speaking"
                && f.payload["user_id"] == user_id
                && f.payload["speaking"] == speaking
        })
        .await;
}

async fn chat_reaches(from: &mut TestSocket, join_ref: &str, room: &str, to: &mut TestSocket) {
    let reply = from
        .request(Some(join_ref), room, "chat", json!({"text": "still here"}))
        .await;
    assert_ok(reply);
    let event = to.expect_event("event").await;
    assert_eq!(event["body"]["text"], "still here");
}

/// Pushes `event` on `room`, which the server must accept; returns the reply.
async fn push_ok(
    socket: &mut TestSocket,
    join_ref: &str,
    room: &str,
    event: &str,
    payload: Value,
) -> Value {
    assert_ok(push_expect(socket, join_ref, room, event, payload).await)
}

/// Ada and Bo in a new room, both publishing live audio: (the two, Bo's
/// peer, Ada's peer, the line on which Bo hears Ada). Ada's client sends loud
/// audio every 20 ms, muted or not, as a client that ignores its own mute
/// would.
async fn ada_heard_by_bo(
    server: &TestServer,
    room_name: &str,
) -> (AdaAndBo, LivePeer, LivePeer, Mid) {
    let mut people = server.ada_and_bo(room_name).await;
    let AdaAndBo {
        topic,
        ada,
        ada_ref,
        bo,
        bo_ref,
    } = &mut people;
    let bo_peer = join_live(bo, bo_ref, topic, Direction::SendOnly).await;
    let ada_peer = join_live(ada, ada_ref, topic, Direction::SendOnly).await;
    let ada_at_bo = answer_offer_for(bo, bo_ref, topic, &bo_peer, &ada.user_id).await;
    (people, bo_peer, ada_peer, ada_at_bo)
}

#[tokio::test]
async fn a_muted_member_is_not_forwarded_and_stops_speaking_at_once() {
    let server = TestServer::start().await;
    let (people, mut bo_peer, _ada_peer, mid) = ada_heard_by_bo(&server, "Muting").await;
    let (room, mut ada, ada_ref, mut bo, bo_ref) = people.into_parts();
    let ada_id = ada.user_id.clone();
    assert!(
        bo_peer.count_media(mid, LISTEN).await >= HEARD,
        "Ada is heard"
    );
    expect_speaking(&mut bo, &ada_id, true).await;

    // Muted and at once unmuted: far quicker than the hangover that ends
    // speech when frames stop, yet speaking ends with the mute itself.
    for muted in [true, false] {
        let set = json!({"muted": muted});
        push_ok(&mut ada, &ada_ref, &room, "set_muted", set).await;
    }
    expect_speaking(&mut bo, &ada_id, false).await;
    expect_speaking(&mut bo, &ada_id, true).await;

    // Muted for good: Ada keeps sending, and nothing of it is forwarded nor
    // counts as speech.
    let muted = json!({"muted": true});
    push_ok(&mut ada, &ada_ref, &room, "set_muted", muted).await;
    expect_speaking(&mut bo, &ada_id, false).await;
    bo_peer.count_media(mid, IN_FLIGHT).await;
    assert_eq!(
        bo_peer.count_media(mid, LISTEN).await,
        0,
        "the SFU forwards nothing of a muted member"
    );
    let spoke = bo.expect_text(|f| f.event == "speaking" && f.payload["speaking"] == true);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), spoke)
            .await
            .is_err(),
        "a muted member never counts as speaking"
    );

    // The room serves on, and Ada is heard again once unmuted.
    chat_reaches(&mut bo, &bo_ref, &room, &mut ada).await;
    let unmuted = json!({"muted": false});
    push_ok(&mut ada, &ada_ref, &room, "set_muted", unmuted).await;
    assert!(
        bo_peer.count_media(mid, LISTEN).await >= HEARD,
        "Ada is heard again once unmuted"
    );
}

/// A route for signaling sent straight to the SFU, as a connection sends it;
/// replies (when `msg_ref` is set) land in the returned outbox receiver.
fn route(
    member: u64,
    room: &str,
    msg_ref: Option<&str>,
) -> (Route, roomscale_server::outbox::OutboxReceiver) {
    let (outbox, receiver) = roomscale_server::outbox::outbox();
    let room_id = room.strip_prefix("room:").unwrap().parse().unwrap();
    let route = Route {
        member,
        user_id: Arc::from(format!("user-{member}").as_str()),
        room: room_id,
        address: ChannelAddress::new(outbox, Arc::from(room), Some(Arc::from("1"))),
        msg_ref: msg_ref.map(Arc::from),
    };
    (route, receiver)
}

/// A candidate for a member that has no voice: work for the SFU, no reply.
fn flood_candidate() -> IceCandidate {
    serde_json::from_value(json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}))
        .unwrap()
}

/// Keeps the SFU's signaling queue full from a thread of its own until
/// stopped; returns how many pushes were refused as busy.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Flood {
    /// Starts flooding and returns once the queue is full.
    async fn start(voice: Voice, room: &str) -> Flood {
        let (flood_route, _) = route(roomscale_server::room::next_member_id(), room, None);
        let stop = Arc::new(AtomicBool::new(false));
        let (full_tx, full) = tokio::sync::oneshot::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut full_tx = Some(full_tx);
                let mut refused = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if voice.ice(flood_route.clone(), flood_candidate()).is_err() {
                        refused += 1;
                        if let Some(full_tx) = full_tx.take() {
                            let _ = full_tx.send(());
                        }
                        std::thread::yield_now();
                    }
                }
                refused
            })
        };
        full.await.expect("the flood fills the signaling queue");
        Flood { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the flood thread ends")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_left_receives_nothing_more_even_under_a_signaling_flood() {
    let server = TestServer::start().await;
    let (room, mut ada, ada_ref, mut bo, bo_ref) = server.ada_and_bo("Leaving").await.into_parts();
    let (mut cy, cy_ref) = server.joined(&room, "Cy").await;
    let (ada_id, bo_id) = (ada.user_id.clone(), bo.user_id.clone());

    // Ada and Bo talk; Cy only listens.
    let mut bo_peer = join_live(&mut bo, &bo_ref, &room, Direction::SendOnly).await;
    let ada_peer = join_live(&mut ada, &ada_ref, &room, Direction::SendOnly).await;
    let ada_mid_at_bo = answer_offer_for(&mut bo, &bo_ref, &room, &bo_peer, &ada_id).await;
    answer_offer_for(&mut ada, &ada_ref, &room, &ada_peer, &bo_id).await;
    let mut cy_peer = join_live(&mut cy, &cy_ref, &room, Direction::RecvOnly).await;
    let ada_mid_at_cy = answer_offer_for(&mut cy, &cy_ref, &room, &cy_peer, &ada_id).await;
    assert!(bo_peer.count_media(ada_mid_at_bo, LISTEN).await >= HEARD);
    assert_eq!(server.state.metrics.voice_peers.get(), 3);

    // The signaling queue is kept full while Bo leaves the room.
    let voice = server.state.voice.clone().expect("voice runs");
    let flood = Flood::start(voice.clone(), &room).await;
    push_ok(&mut bo, &bo_ref, &room, "phx_leave", json!({})).await;

    // The SFU took the departure all the same: Ada's track for Bo is parked.
    let offer = ada.expect_event("rtc_offer").await;
    assert!(
        offer["sdp"].as_str().unwrap().contains("a=inactive"),
        "Bo's track is parked at Ada once Bo left: {offer}"
    );
    bo_peer.count_media(ada_mid_at_bo, IN_FLIGHT).await;
    assert_eq!(
        bo_peer.count_media(ada_mid_at_bo, LISTEN).await,
        0,
        "a member that left the room hears nothing more"
    );
    // Cy, still in the room, hears Ada through the flood.
    assert!(
        cy_peer.count_media(ada_mid_at_cy, LISTEN).await >= HEARD,
        "the members who stayed are still served"
    );
    let refused = flood.stop();
    assert!(refused > 0, "the flood kept the signaling queue full");
    assert_eq!(server.state.metrics.voice_peers.get(), 2);
    chat_reaches(&mut ada, &ada_ref, &room, &mut cy).await;
}

/// Waits for the next frame a route's outbox holds and decodes it.
async fn next_reply(receiver: &mut roomscale_server::outbox::OutboxReceiver) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(5), receiver.reliable.recv())
        .await
        .expect("the SFU replies within 5 s")
        .expect("the outbox is open");
    let text = message.into_text().expect("replies are text frames");
    let frame = roomscale_protocol::frame::decode_text(&text).expect("the reply decodes");
    assert_eq!(frame.event, "phx_reply", "{frame:?}");
    frame.payload
}

#[tokio::test]
async fn an_offer_still_queued_when_its_member_leaves_starts_no_peer() {
    let server = TestServer::start().await;
    let topic = format!("room:{}", server.create_room("Too late").await);
    let voice = server.state.voice.clone().expect("voice runs");

    // Signaling waits in the queue; the member's offer is behind it, and
    // the member leaves before the SFU has taken any of it (nothing here
    // yields to the SFU's task between these calls).
    let (backlog, _) = route(roomscale_server::room::next_member_id(), &topic, None);
    for _ in 0..200 {
        voice.ice(backlog.clone(), flood_candidate()).unwrap();
    }
    let departed = roomscale_server::room::next_member_id();
    let (late, mut late_replies) = route(departed, &topic, Some("2"));
    let (_rtc, offer, _pending) = client_peer();
    voice.offer(late, offer).unwrap();
    voice.leave(departed);

    let reply = next_reply(&mut late_replies).await;
    assert_eq!(reply["status"], "error", "{reply}");
    assert_eq!(reply["response"]["code"], "not_joined", "{reply}");
    assert!(
        reply["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("join it again"),
        "{reply}"
    );
    assert_eq!(server.state.metrics.voice_peers.get(), 0);

    // A member still in the room starts voice as ever.
    let (honest, mut honest_replies) =
        route(roomscale_server::room::next_member_id(), &topic, Some("3"));
    let (_rtc, offer, _pending) = client_peer();
    voice.offer(honest, offer).unwrap();
    let reply = next_reply(&mut honest_replies).await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(reply["response"]["sdp"].is_string(), "{reply}");
    assert_eq!(server.state.metrics.voice_peers.get(), 1);
}

/// Offers voice and expects it refused because voice is full.
async fn expect_voice_full(socket: &mut TestSocket, join_ref: &str, room: &str, what: &str) {
    let (_rtc, offer, _pending) = client_peer();
    let offered = push_expect(socket, join_ref, room, "rtc_offer", json!({"sdp": offer})).await;
    let reply = assert_refused(offered, "limit_reached", "room itself still works");
    let reason = reply["reason"].as_str().unwrap();
    assert!(reason.contains(what) && reason.contains("full"), "{reason}");
}

#[tokio::test]
async fn voice_peers_are_capped_per_room_and_per_server_and_the_room_still_works() {
    let server = TestServer::start_with(|config| {
        config.voice_max_peers_per_room = Some(2);
        config.voice_max_peers = 3;
    })
    .await;
    let (people, mut bo_peer, _ada_peer, mid) = ada_heard_by_bo(&server, "Two voices").await;
    let (room, mut ada, _, mut bo, bo_ref) = people.into_parts();

    // A third voice in the room is refused; the room serves Cy all the same.
    let (mut cy, cy_ref) = server.joined(&room, "Cy").await;
    expect_voice_full(&mut cy, &cy_ref, &room, "this room").await;
    chat_reaches(&mut cy, &cy_ref, &room, &mut ada).await;
    assert_eq!(server.state.metrics.voice_peers.get(), 2);
    assert!(
        bo_peer.count_media(mid, LISTEN).await >= HEARD,
        "the peers already in voice are unaffected"
    );

    // Another room: one more voice fits on the server, the next does not.
    let other = format!("room:{}", server.create_room("Elsewhere").await);
    let (mut dee, dee_ref) = server.joined(&other, "Dee").await;
    let (mut eve, eve_ref) = server.joined(&other, "Eve").await;
    let _dee_peer = join_live(&mut dee, &dee_ref, &other, Direction::SendOnly).await;
    expect_voice_full(&mut eve, &eve_ref, &other, "server").await;
    assert_eq!(server.state.metrics.voice_peers.get(), 3);
    assert!(server.state.metrics.errors("limit_reached") >= 2);

    // Once Bo leaves voice, Cy gets the place.
    push_ok(&mut bo, &bo_ref, &room, "voice_leave", json!({})).await;
    let _cy_peer = join_live(&mut cy, &cy_ref, &room, Direction::SendOnly).await;
    assert_eq!(server.state.metrics.voice_peers.get(), 3);
}

/// Datagrams that no honest peer sends: noise, and ones shaped like STUN,
/// DTLS, RTP and RTCP with nonsense inside.
fn bad_datagrams() -> Vec<Vec<u8>> {
    let noise: Vec<u8> = (0..200u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
    let mut datagrams = vec![noise.clone()];
    // STUN binding request header, a wrong length and no valid attributes.
    datagrams.push(
        [
            &[0x00, 0x01, 0x00, 0x40, 0x21, 0x12, 0xa4, 0x42][..],
            &noise[..60],
        ]
        .concat(),
    );
    // DTLS 1.2 records: a handshake and application data, epoch 0 and 1.
    for (content_type, epoch) in [(22u8, 0u8), (23, 1), (21, 0)] {
        let mut record = vec![content_type, 0xfe, 0xfd, 0x00, epoch];
        record.extend([0, 0, 0, 0, 0, 7]);
        record.extend((noise.len() as u16).to_be_bytes());
        record.extend(&noise);
        datagrams.push(record);
    }
    // DTLS record whose length runs past the datagram.
    datagrams.push(vec![
        22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 1, 2, 3,
    ]);
    // RTP (Opus payload type) and RTCP (sender report) that fail SRTP.
    datagrams.push(
        [
            &[0x80, 111, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef][..],
            &noise[..80],
        ]
        .concat(),
    );
    datagrams.push(
        [
            &[0x81, 200, 0x00, 0x06, 0xde, 0xad, 0xbe, 0xef][..],
            &noise[..40],
        ]
        .concat(),
    );
    datagrams
}

/// A fatal DTLS alert in plaintext (epoch 0), as only the handshake reads it.
const FATAL_ALERT: [u8; 15] = [21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 2, 40];

/// Starts voice for a publishing peer whose own socket, in the middle of the
/// DTLS handshake (once the SFU's first DTLS datagram reached it), sends the
/// SFU a fatal alert and the other bad datagrams before answering.
async fn join_live_sending_garbage_mid_handshake(
    socket: &mut TestSocket,
    join_ref: &str,
    room: &str,
    voice_addr: SocketAddr,
) -> LivePeer {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut api = rtc.sdp_api();
    let mic = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().expect("a new media line needs an offer");
    let sdp = json!({"sdp": offer.to_sdp_string()});
    let reply = push_ok(socket, join_ref, room, "rtc_offer", sdp).await;
    let answer = SdpAnswer::from_sdp_string(reply["sdp"].as_str().unwrap()).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();

    // ICE, until the SFU's first DTLS datagram arrives; it is held back.
    let mut buf = vec![0u8; 2048];
    let held = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let timeout = loop {
                match rtc.poll_output().unwrap() {
                    Output::Timeout(at) => break at,
                    Output::Transmit(t) => {
                        udp.send_to(&t.contents, t.destination).await.unwrap();
                    }
                    Output::Event(_) => {}
                }
            };
            let wait = timeout.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, udp.recv_from(&mut buf)).await {
                Ok(Ok((len, source))) => {
                    // RFC 7983: first bytes 20 to 63 are DTLS.
                    if (20..=63).contains(&buf[0]) {
                        break (buf[..len].to_vec(), source);
                    }
                    let receive = Receive::new(Protocol::Udp, source, local, &buf[..len]).unwrap();
                    rtc.handle_input(Input::Receive(Instant::now(), receive))
                        .unwrap();
                }
                _ => rtc.handle_input(Input::Timeout(Instant::now())).unwrap(),
            }
        }
    })
    .await
    .expect("the SFU starts DTLS within 10 s");

    udp.send_to(&FATAL_ALERT, voice_addr).await.unwrap();
    for datagram in bad_datagrams() {
        udp.send_to(&datagram, voice_addr).await.unwrap();
    }
    let (datagram, source) = held;
    let receive = Receive::new(Protocol::Udp, source, local, &datagram).unwrap();
    rtc.handle_input(Input::Receive(Instant::now(), receive))
        .unwrap();
    let mut peer = LivePeer::spawn(rtc, udp, Some(mic));
    peer.connected().await;
    peer
}

#[tokio::test]
async fn bad_datagrams_from_a_peers_own_address_do_not_disconnect_it() {
    let server = TestServer::start().await;
    let (room, mut ada, ada_ref, mut bo, bo_ref) = server.ada_and_bo("Noisy").await.into_parts();
    let (ada_id, bo_id) = (ada.user_id.clone(), bo.user_id.clone());
    let voice_addr = server.state.voice.as_ref().unwrap().local_addr();

    // Ada's own socket sends garbage mid-handshake: she connects all the same.
    let mut bo_peer = join_live(&mut bo, &bo_ref, &room, Direction::SendOnly).await;
    let mut ada_peer =
        join_live_sending_garbage_mid_handshake(&mut ada, &ada_ref, &room, voice_addr).await;
    assert!(
        server.state.metrics.errors("voice_bad_datagram") > 0,
        "the datagrams Ada's peer refused are counted"
    );
    let ada_at_bo = answer_offer_for(&mut bo, &bo_ref, &room, &bo_peer, &ada_id).await;
    let bo_at_ada = answer_offer_for(&mut ada, &ada_ref, &room, &ada_peer, &bo_id).await;
    assert!(bo_peer.count_media(ada_at_bo, LISTEN).await >= HEARD);
    assert!(ada_peer.count_media(bo_at_ada, LISTEN).await >= HEARD);

    // And again once connected, among her real traffic.
    for datagram in bad_datagrams() {
        for _ in 0..3 {
            ada_peer.send_raw(&datagram, voice_addr).await;
        }
    }
    ada_peer.send_raw(&FATAL_ALERT, voice_addr).await;

    // Voice still flows both ways, and the peers are both still there.
    bo_peer.count_media(ada_at_bo, IN_FLIGHT).await;
    assert!(
        bo_peer.count_media(ada_at_bo, LISTEN).await >= HEARD,
        "Ada is still heard after her socket sent garbage"
    );
    assert!(
        ada_peer.count_media(bo_at_ada, LISTEN).await >= HEARD,
        "Ada still hears Bo after her socket sent garbage"
    );
    assert_eq!(server.state.metrics.voice_peers.get(), 2);
    chat_reaches(&mut ada, &ada_ref, &room, &mut bo).await;
}

#[tokio::test]
async fn a_moderators_mute_and_removal_hold_at_the_sfu() {
    let (server, _, topic, olga) = olgas_room().await;
    let olga_id = olga.user_id();
    let Person {
        socket: mut olga,
        join_ref: olga_ref,
        ..
    } = olga;
    let (mut mallory, mallory_ref) = server.joined(&topic, "Mallory").await;
    let mallory_id = mallory.user_id.clone();
    let mut olga_peer = join_live(&mut olga, &olga_ref, &topic, Direction::SendOnly).await;
    let mut mallory_peer = join_live(&mut mallory, &mallory_ref, &topic, Direction::SendOnly).await;
    let mallory_at_olga =
        answer_offer_for(&mut olga, &olga_ref, &topic, &olga_peer, &mallory_id).await;
    let olga_at_mallory =
        answer_offer_for(&mut mallory, &mallory_ref, &topic, &mallory_peer, &olga_id).await;
    assert!(olga_peer.count_media(mallory_at_olga, LISTEN).await >= HEARD);
    assert!(mallory_peer.count_media(olga_at_mallory, LISTEN).await >= HEARD);

    // Olga mutes Mallory, whose client sends on and unmutes itself: the
    // moderator's mute holds where the voice flows.
    let mute = json!({"action": "mute", "user_id": mallory_id, "muted": true});
    push_ok(&mut olga, &olga_ref, &topic, "moderate", mute).await;
    let unmuting = json!({"muted": false});
    push_expect(&mut mallory, &mallory_ref, &topic, "set_muted", unmuting).await;
    olga_peer.count_media(mallory_at_olga, IN_FLIGHT).await;
    assert_eq!(
        olga_peer.count_media(mallory_at_olga, LISTEN).await,
        0,
        "nothing of a member a moderator muted is forwarded"
    );

    // Olga removes Mallory: Mallory hears nothing more, and the channel her
    // connection still holds brings no voice back.
    let remove = json!({"action": "remove", "user_id": mallory_id});
    push_ok(&mut olga, &olga_ref, &topic, "moderate", remove).await;
    mallory
        .expect_text(|f| f.event == "phx_close" && f.topic == topic)
        .await;
    mallory_peer.count_media(olga_at_mallory, IN_FLIGHT).await;
    assert_eq!(
        mallory_peer.count_media(olga_at_mallory, LISTEN).await,
        0,
        "a removed member hears nothing more"
    );
    let (_rtc, offer, _pending) = client_peer();
    let offered = json!({"sdp": offer});
    let (status, reply) =
        push_expect(&mut mallory, &mallory_ref, &topic, "rtc_offer", offered).await;
    assert_eq!(status, "error", "{reply}");
    assert!(
        ["removed", "not_joined"].contains(&reply["code"].as_str().unwrap()),
        "{reply}"
    );
    assert_eq!(
        server.state.metrics.voice_peers.get(),
        1,
        "only Olga is in voice"
    );

    // Olga's room and voice go on.
    let chat = json!({"text": "carry on"});
    push_ok(&mut olga, &olga_ref, &topic, "chat", chat).await;
}

#[tokio::test]
async fn members_of_a_room_that_crashed_keep_no_voice_peer() {
    let server = TestServer::start().await;
    let (people, mut bo_peer, _ada_peer, mid) = ada_heard_by_bo(&server, "Crashing").await;
    let (room, mut ada, _, mut bo, _) = people.into_parts();
    assert!(bo_peer.count_media(mid, LISTEN).await >= HEARD);

    // The room's actor crashes: its members are gone from it (they are asked
    // to rejoin, as new members), and so are their voice peers, whatever
    // their clients do.
    let room_id = room.strip_prefix("room:").unwrap().parse().unwrap();
    assert!(server.state.rooms.inject_panic(room_id).await);
    bo.expect_text(|f| f.event == "phx_error" && f.topic == room)
        .await;
    bo_peer.count_media(mid, IN_FLIGHT).await;
    assert_eq!(
        bo_peer.count_media(mid, LISTEN).await,
        0,
        "a member of the crashed room hears nothing through its old peer"
    );
    assert_eq!(server.state.metrics.voice_peers.get(), 0);

    // Rejoined, they are served again.
    let (ada_ref, _) = ada.join_ok(&room, "Ada").await;
    let (_bo_ref, _) = bo.join_ok(&room, "Bo").await;
    chat_reaches(&mut ada, &ada_ref, &room, &mut bo).await;
    let _ada_peer = join_live(&mut ada, &ada_ref, &room, Direction::SendOnly).await;
    assert_eq!(server.state.metrics.voice_peers.get(), 1);
}
