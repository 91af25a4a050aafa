//! Voice signaling over the room channel against the real SFU: a str0m peer
//! (a real WebRTC stack) offers, gets an answer, and is offered the other
//! member's voice; malformed and out-of-order SDP and ICE get error replies
//! and the room keeps serving.

use std::time::Instant;

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::common::TestServer;
use crate::common::ws::TestSocket;

/// A client peer with one send-only microphone line, and its offer.
pub(crate) fn client_peer() -> (Rtc, String, str0m::change::SdpPendingOffer) {
    client_peer_at(None)
}

/// The same, with a host candidate at `local` when it will really connect.
fn client_peer_at(
    local: Option<std::net::SocketAddr>,
) -> (Rtc, String, str0m::change::SdpPendingOffer) {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    if let Some(local) = local {
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    }
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().expect("a new media line needs an offer");
    (rtc, offer.to_sdp_string(), pending)
}

pub(crate) async fn push_expect(
    socket: &mut TestSocket,
    join_ref: &str,
    topic: &str,
    event: &str,
    payload: Value,
) -> (String, Value) {
    let r = socket.push(Some(join_ref), topic, event, payload).await;
    socket.expect_reply(&r).await
}

/// Offers a microphone line, accepts the server's answer; the peer is in voice.
async fn join_voice(socket: &mut TestSocket, join_ref: &str, room: &str) -> Rtc {
    let (mut rtc, offer, pending) = client_peer();
    let (status, reply) =
        push_expect(socket, join_ref, room, "rtc_offer", json!({"sdp": offer})).await;
    assert_eq!(status, "ok", "{reply}");
    let answer = SdpAnswer::from_sdp_string(reply["sdp"].as_str().unwrap()).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    rtc
}

#[tokio::test]
async fn a_webrtc_peer_joins_voice_and_is_offered_the_other_voice() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Voice").await;
    let (mut ada, ada_ref, mut bo, bo_ref) = (ada.socket, ada.join_ref, bo.socket, bo.join_ref);

    let mut ada_rtc = join_voice(&mut ada, &ada_ref, &room).await;
    // Bo joins voice: the server offers each of them a track for the other,
    // and says whose voice it carries.
    let mut bo_rtc = join_voice(&mut bo, &bo_ref, &room).await;

    let (ada_id, bo_id) = (ada.user_id.clone(), bo.user_id.clone());
    for (socket, join_ref, rtc, other) in [
        (&mut ada, &ada_ref, &mut ada_rtc, bo_id),
        (&mut bo, &bo_ref, &mut bo_rtc, ada_id),
    ] {
        let offer = socket.expect_event("rtc_offer").await;
        let offer = SdpOffer::from_sdp_string(offer["sdp"].as_str().unwrap()).unwrap();
        let answer = rtc.sdp_api().accept_offer(offer).unwrap();
        // The map follows the offer at once, before the answer.
        let tracks = socket.expect_event("voice_tracks").await;
        let (status, reply) = push_expect(
            socket,
            join_ref,
            &room,
            "rtc_answer",
            json!({"sdp": answer.to_sdp_string()}),
        )
        .await;
        assert_eq!(status, "ok", "{reply}");
        let users: Vec<&str> = tracks["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["user_id"].as_str().unwrap())
            .collect();
        assert_eq!(users, vec![other.as_str()], "{tracks}");
    }

    // Out of order: an answer nobody asked for.
    let (status, reply) = push_expect(
        &mut ada,
        &ada_ref,
        &room,
        "rtc_answer",
        json!({"sdp": reply_sdp_like()}),
    )
    .await;
    assert_eq!(
        (status.as_str(), reply["code"].as_str()),
        ("error", Some("invalid_payload")),
        "{reply}"
    );

    // Bo leaves the room: Ada's track for Bo is parked (renegotiated away).
    let r = bo.push(Some(&bo_ref), &room, "phx_leave", json!({})).await;
    bo.expect_reply(&r).await;
    let offer = ada.expect_event("rtc_offer").await;
    assert!(
        offer["sdp"].as_str().unwrap().contains("a=inactive"),
        "the re-offer parks Bo's track: {offer}"
    );
}

/// A well-formed SDP answer that answers nothing pending.
fn reply_sdp_like() -> String {
    let (mut rtc, _, _) = client_peer();
    let (_offerer, offer, _) = client_peer();
    let offer = SdpOffer::from_sdp_string(&offer).unwrap();
    rtc.sdp_api().accept_offer(offer).unwrap().to_sdp_string()
}

#[tokio::test]
async fn malformed_or_out_of_order_signaling_gets_errors_and_the_room_keeps_serving() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Signals").await;
    let (mut ada, ada_ref, mut bo) = (ada.socket, ada.join_ref, bo.socket);

    let before_voice = [
        (
            "rtc_answer",
            json!({"sdp": reply_sdp_like()}),
            "no voice connection",
        ),
        (
            "rtc_ice",
            json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
            "start voice",
        ),
        (
            "rtc_offer",
            json!({"sdp": "this is not sdp"}),
            "unreadable SDP offer",
        ),
        (
            "rtc_offer",
            json!({"sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio"}),
            "offer",
        ),
        ("rtc_offer", json!({"sdp": ""}), "sdp must be"),
        ("rtc_offer", json!({"sdp": 42}), "invalid"),
    ];
    for (event, payload, reason) in before_voice {
        let (status, reply) = push_expect(&mut ada, &ada_ref, &room, event, payload.clone()).await;
        assert_eq!(status, "error", "{event} {payload}: {reply}");
        assert!(
            reply["reason"].as_str().unwrap().contains(reason),
            "{event} {payload}: {reply}"
        );
    }

    // Garbage on the voice port (a scanner, a broken client) is dropped.
    let voice_addr = server.state.voice.as_ref().unwrap().local_addr();
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..500u32 {
        let datagram: Vec<u8> = (0..(i % 300))
            .map(|b| (b as u8).wrapping_mul(31) ^ i as u8)
            .collect();
        junk.send_to(&datagram, voice_addr).await.unwrap();
    }

    // In voice now; bad candidates and answers are refused one by one.
    let _rtc = join_voice(&mut ada, &ada_ref, &room).await;
    let in_voice = [
        (
            "rtc_ice",
            json!({"candidate": "candidate:garbage"}),
            "error",
        ),
        ("rtc_ice", json!({"candidate": ""}), "ok"),
        ("rtc_answer", json!({"sdp": "nonsense"}), "error"),
        ("rtc_offer", json!({"sdp": "still not sdp"}), "error"),
    ];
    for (event, payload, want) in in_voice {
        let (status, reply) = push_expect(&mut ada, &ada_ref, &room, event, payload.clone()).await;
        assert_eq!(status, want, "{event} {payload}: {reply}");
    }

    // The room still serves: chat from Ada reaches Bo.
    let r = ada
        .push(Some(&ada_ref), &room, "chat", json!({"text": "still here"}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    let event = bo.expect_event("event").await;
    assert_eq!(event["body"]["text"], "still here");
}

/// Drives a client peer over a real UDP socket until `done` says so or the
/// time runs out; returns whether `done` was reached.
async fn drive(
    rtc: &mut Rtc,
    socket: &tokio::net::UdpSocket,
    limit: std::time::Duration,
    mut done: impl FnMut(&Event) -> bool,
) -> bool {
    let local = socket.local_addr().unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output().unwrap() {
                Output::Timeout(at) => break at,
                Output::Transmit(t) => {
                    socket.send_to(&t.contents, t.destination).await.unwrap();
                }
                Output::Event(event) => {
                    if done(&event) {
                        return true;
                    }
                }
            }
        };
        if Instant::now() > deadline {
            return false;
        }
        let wait = timeout
            .min(deadline)
            .saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((len, source))) => {
                let receive = Receive::new(Protocol::Udp, source, local, &buf[..len]).unwrap();
                rtc.handle_input(Input::Receive(Instant::now(), receive))
                    .unwrap();
            }
            _ => rtc.handle_input(Input::Timeout(Instant::now())).unwrap(),
        }
    }
}

#[tokio::test]
async fn a_peer_that_goes_silent_is_dropped_and_parked_for_the_others() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Dropped").await;
    let (mut ada, ada_ref, mut bo, bo_ref) = (ada.socket, ada.join_ref, bo.socket, bo.join_ref);
    let voice = server
        .state
        .voice
        .as_ref()
        .expect("voice starts on loopback");
    assert_eq!(voice.local_addr().ip().to_string(), "127.0.0.1");

    // Ada connects for real: ICE and DTLS over UDP with the SFU.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut rtc, offer, pending) = client_peer_at(Some(socket.local_addr().unwrap()));
    let (status, reply) = push_expect(
        &mut ada,
        &ada_ref,
        &room,
        "rtc_offer",
        json!({"sdp": offer}),
    )
    .await;
    assert_eq!(status, "ok", "{reply}");
    let answer = SdpAnswer::from_sdp_string(reply["sdp"].as_str().unwrap()).unwrap();
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let connected = drive(
        &mut rtc,
        &socket,
        std::time::Duration::from_secs(10),
        |event| matches!(event, Event::Connected),
    )
    .await;
    assert!(connected, "the peer connects to the SFU over loopback UDP");
    let _bo_rtc = join_voice(&mut bo, &bo_ref, &room).await;
    assert_eq!(server.state.metrics.voice_peers.get(), 2);

    // Ada's peer goes silent (a crashed tab, a lost network): no more STUN.
    drop(rtc);
    drop(socket);
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while server.state.metrics.voice_peers.get() != 1 {
        assert!(
            Instant::now() < deadline,
            "the silent peer was not dropped within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Ada is still in the room (the room channel is alive), only out of voice.
    let r = ada
        .push(Some(&ada_ref), &room, "chat", json!({"text": "still here"}))
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
}

#[tokio::test]
async fn each_listener_gets_at_most_the_configured_number_of_voices() {
    let server = TestServer::start_with(|config| config.voice_max_speakers = 1).await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Crowded").await;
    let (mut ada, ada_ref, mut bo, bo_ref) = (ada.socket, ada.join_ref, bo.socket, bo.join_ref);
    let mut cy = server.socket("Cy").await;
    let (cy_ref, _) = cy.join_ok(&room, "Cy").await;

    let _ada_rtc = join_voice(&mut ada, &ada_ref, &room).await;
    let _bo_rtc = join_voice(&mut bo, &bo_ref, &room).await;
    let _cy_rtc = join_voice(&mut cy, &cy_ref, &room).await;

    // Cy joined last and hears one of the two others: one track, one voice.
    let offer = cy.expect_event("rtc_offer").await;
    let audio_lines = offer["sdp"].as_str().unwrap().matches("m=audio").count();
    assert_eq!(audio_lines, 2, "the microphone line and one slot: {offer}");
    let tracks = cy.expect_event("voice_tracks").await;
    let heard = tracks["tracks"].as_array().unwrap();
    assert_eq!(heard.len(), 1, "{tracks}");
    let speaker = heard[0]["user_id"].as_str().unwrap();
    assert!(speaker == ada.user_id || speaker == bo.user_id, "{tracks}");
}

#[tokio::test]
async fn a_panic_in_the_sfu_restarts_it_and_voice_can_be_joined_again() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Resilient").await;
    let (mut ada, ada_ref, mut bo) = (ada.socket, ada.join_ref, bo.socket);
    let _rtc = join_voice(&mut ada, &ada_ref, &room).await;
    assert_eq!(server.state.metrics.voice_peers.get(), 1);

    let voice = server.state.voice.as_ref().unwrap();
    voice.inject_panic().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while server.state.metrics.errors("voice_panic") == 0 {
        assert!(
            Instant::now() < deadline,
            "the SFU did not report its panic"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(server.state.metrics.voice_peers.get(), 0);

    // Voice works again on the same port, and the room never noticed.
    let _rtc = join_voice(&mut ada, &ada_ref, &room).await;
    assert_eq!(server.state.metrics.voice_peers.get(), 1);
    let r = ada
        .push(
            Some(&ada_ref),
            &room,
            "chat",
            json!({"text": "after the panic"}),
        )
        .await;
    assert_eq!(ada.expect_reply(&r).await.0, "ok");
    assert_eq!(
        bo.expect_event("event").await["body"]["text"],
        "after the panic"
    );
}

#[tokio::test]
async fn leaving_voice_keeps_the_room_and_parks_the_track_at_the_others() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Quiet now").await;
    let (mut ada, ada_ref, mut bo, bo_ref) = (ada.socket, ada.join_ref, bo.socket, bo.join_ref);
    let mut ada_rtc = join_voice(&mut ada, &ada_ref, &room).await;
    let _bo_rtc = join_voice(&mut bo, &bo_ref, &room).await;
    // Ada answers the offer that adds Bo's voice.
    let offer = ada.expect_event("rtc_offer").await;
    let offer = SdpOffer::from_sdp_string(offer["sdp"].as_str().unwrap()).unwrap();
    let answer = ada_rtc.sdp_api().accept_offer(offer).unwrap();
    let (status, _) = push_expect(
        &mut ada,
        &ada_ref,
        &room,
        "rtc_answer",
        json!({"sdp": answer.to_sdp_string()}),
    )
    .await;
    assert_eq!(status, "ok");
    assert_eq!(server.state.metrics.voice_peers.get(), 2);

    let (status, reply) = push_expect(&mut bo, &bo_ref, &room, "voice_leave", json!({})).await;
    assert_eq!(status, "ok", "{reply}");
    assert_eq!(server.state.metrics.voice_peers.get(), 1);
    let offer = ada.expect_event("rtc_offer").await;
    assert!(
        offer["sdp"].as_str().unwrap().contains("a=inactive"),
        "Bo's track is parked: {offer}"
    );
    // Bo is still in the room.
    let r = bo
        .push(
            Some(&bo_ref),
            &room,
            "chat",
            json!({"text": "listening only"}),
        )
        .await;
    assert_eq!(bo.expect_reply(&r).await.0, "ok");
}

/// What a live peer's task reports.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    Connected,
    /// An RTP payload received on `mid`.
    Media {
        mid: str0m::media::Mid,
        payload: Vec<u8>,
    },
}

type PeerOp = Box<dyn FnOnce(&mut Rtc) + Send>;

/// A client peer on its own UDP socket and task, so ICE, DTLS and media run
/// while the test does the signaling. A publisher sends a 20 ms frame on its
/// microphone line every 20 ms once connected, loud enough to count as speech.
pub(crate) struct LivePeer {
    ops: tokio::sync::mpsc::UnboundedSender<PeerOp>,
    pub(crate) events: tokio::sync::mpsc::UnboundedReceiver<PeerEvent>,
    /// The peer's own UDP socket, shared with its task.
    socket: std::sync::Arc<tokio::net::UdpSocket>,
}

impl LivePeer {
    /// A peer whose offer holds one audio line in `direction` (from the
    /// client's side); returns it with its offer.
    async fn offer(direction: Direction) -> (LivePeer, String, str0m::change::SdpPendingOffer) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mic = api.add_media(MediaKind::Audio, direction, None, None, None);
        let (offer, pending) = api.apply().expect("a new media line needs an offer");
        let publish = matches!(direction, Direction::SendOnly | Direction::SendRecv).then_some(mic);
        (
            LivePeer::spawn(rtc, socket, publish),
            offer.to_sdp_string(),
            pending,
        )
    }

    pub(crate) fn spawn(
        mut rtc: Rtc,
        socket: tokio::net::UdpSocket,
        publish: Option<str0m::media::Mid>,
    ) -> LivePeer {
        let socket = std::sync::Arc::new(socket);
        let shared_socket = socket.clone();
        let (ops, mut op_rx) = tokio::sync::mpsc::unbounded_channel::<PeerOp>();
        let (event_tx, events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let local = socket.local_addr().unwrap();
            let mut buf = vec![0u8; 2048];
            let mut connected = false;
            let mut frames = 0u64;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
            loop {
                let timeout = loop {
                    match rtc.poll_output() {
                        Ok(Output::Timeout(at)) => break at,
                        Ok(Output::Transmit(t)) => {
                            let _ = socket.send_to(&t.contents, t.destination).await;
                        }
                        Ok(Output::Event(Event::Connected)) => {
                            connected = true;
                            let _ = event_tx.send(PeerEvent::Connected);
                        }
                        Ok(Output::Event(Event::MediaData(data))) => {
                            let _ = event_tx.send(PeerEvent::Media {
                                mid: data.mid,
                                payload: data.data.to_vec(),
                            });
                        }
                        Ok(Output::Event(_)) => {}
                        Err(_) => return,
                    }
                };
                let wait = timeout.saturating_duration_since(Instant::now());
                tokio::select! {
                    received = socket.recv_from(&mut buf) => {
                        let Ok((len, source)) = received else { return };
                        if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..len]) {
                            let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                        }
                    }
                    op = op_rx.recv() => match op {
                        Some(op) => op(&mut rtc),
                        None => return,
                    },
                    _ = tick.tick() => {
                        if let (true, Some(mid)) = (connected, publish) {
                            frames += 1;
                            send_frame(&mut rtc, mid, frames);
                        }
                    }
                    _ = tokio::time::sleep(wait) => {
                        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                    }
                }
            }
        });
        LivePeer {
            ops,
            events,
            socket: shared_socket,
        }
    }

    /// Sends a datagram of the test's own making from the peer's socket, as
    /// if the peer (or someone spoofing its address) sent it.
    pub(crate) async fn send_raw(&self, datagram: &[u8], to: std::net::SocketAddr) {
        self.socket.send_to(datagram, to).await.unwrap();
    }

    /// Runs `op` on the peer's `Rtc` inside its task.
    async fn with<R: Send + 'static>(&self, op: impl FnOnce(&mut Rtc) -> R + Send + 'static) -> R {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.ops.send(Box::new(move |rtc: &mut Rtc| {
            let _ = tx.send(op(rtc));
        }));
        rx.await.expect("the peer task is running")
    }

    pub(crate) async fn connected(&mut self) {
        let limit = std::time::Duration::from_secs(10);
        tokio::time::timeout(limit, async {
            while let Some(event) = self.events.recv().await {
                if matches!(event, PeerEvent::Connected) {
                    return;
                }
            }
        })
        .await
        .expect("the peer connects to the SFU over loopback UDP within 10 s");
    }

    /// Counts the payloads received on `mid` during `window`.
    pub(crate) async fn count_media(
        &mut self,
        mid: str0m::media::Mid,
        window: std::time::Duration,
    ) -> usize {
        let mut count = 0;
        let _ = tokio::time::timeout(window, async {
            while let Some(event) = self.events.recv().await {
                if let PeerEvent::Media { mid: got, payload } = event
                    && got == mid
                {
                    assert_eq!(payload[0], OPUS_TOC, "the publisher's frame, unchanged");
                    count += 1;
                }
            }
        })
        .await;
        count
    }
}

/// TOC byte of a CELT fullband 20 ms mono frame.
const OPUS_TOC: u8 = 0xfc;

fn send_frame(rtc: &mut Rtc, mid: str0m::media::Mid, n: u64) {
    let Some(writer) = rtc.writer(mid) else {
        return;
    };
    let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
        return;
    };
    let mut frame = vec![OPUS_TOC];
    frame.extend((0..40).map(|i| (i as u64 ^ n) as u8));
    let time = str0m::media::MediaTime::new(n * 960, str0m::media::Frequency::FORTY_EIGHT_KHZ);
    let _ = writer
        .audio_level(-20, true)
        .write(pt, Instant::now(), time, frame);
}

/// Starts voice for a live peer: offer, answer, connect.
pub(crate) async fn join_live(
    socket: &mut TestSocket,
    join_ref: &str,
    room: &str,
    direction: Direction,
) -> LivePeer {
    let (mut peer, offer, pending) = LivePeer::offer(direction).await;
    let (status, reply) =
        push_expect(socket, join_ref, room, "rtc_offer", json!({"sdp": offer})).await;
    assert_eq!(status, "ok", "{reply}");
    let answer = SdpAnswer::from_sdp_string(reply["sdp"].as_str().unwrap()).unwrap();
    peer.with(move |rtc| rtc.sdp_api().accept_answer(pending, answer).unwrap())
        .await;
    peer.connected().await;
    peer
}

/// Answers the server's next offer and returns the mid that carries `user`.
pub(crate) async fn answer_offer_for(
    socket: &mut TestSocket,
    join_ref: &str,
    room: &str,
    peer: &LivePeer,
    user: &str,
) -> str0m::media::Mid {
    let offer = socket.expect_event("rtc_offer").await;
    let offer = SdpOffer::from_sdp_string(offer["sdp"].as_str().unwrap()).unwrap();
    let answer = peer
        .with(move |rtc| rtc.sdp_api().accept_offer(offer).unwrap().to_sdp_string())
        .await;
    let tracks = socket.expect_event("voice_tracks").await;
    let (status, reply) =
        push_expect(socket, join_ref, room, "rtc_answer", json!({"sdp": answer})).await;
    assert_eq!(status, "ok", "{reply}");
    let mid = tracks["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user_id"] == user)
        .unwrap_or_else(|| panic!("{user} has a track: {tracks}"))["mid"]
        .as_str()
        .unwrap()
        .to_string();
    str0m::media::Mid::from(mid.as_str())
}

#[tokio::test]
async fn a_receive_only_peer_is_offered_every_voice_and_hears_it() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Listening").await;
    let (mut ada, ada_ref, mut bo, bo_ref) = (ada.socket, ada.join_ref, bo.socket, bo.join_ref);

    // Bo only listens: a receive-only offer, as an independent client makes
    // it when it has no microphone.
    let mut bo_peer = join_live(&mut bo, &bo_ref, &room, Direction::RecvOnly).await;
    let _ada_peer = join_live(&mut ada, &ada_ref, &room, Direction::SendOnly).await;
    let ada_id = ada.user_id.clone();
    let mid = answer_offer_for(&mut bo, &bo_ref, &room, &bo_peer, &ada_id).await;

    let heard = bo_peer
        .count_media(mid, std::time::Duration::from_secs(2))
        .await;
    assert!(heard >= 25, "Bo heard {heard} of Ada's frames in 2 s");
    // Bo has no microphone: nobody is offered a track for Bo.
    let tracks_for_ada = ada.expect_text(|f| f.event == "rtc_offer" || f.event == "voice_tracks");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), tracks_for_ada)
            .await
            .is_err(),
        "a listener without a microphone gets no track at the others"
    );
}

#[tokio::test]
async fn a_muted_member_is_not_forwarded_until_unmuted() {
    let server = TestServer::start().await;
    let (room, ada, bo) = server.room_with_ada_and_bo("Muted").await;
    let (mut ada, ada_ref, mut bo, bo_ref) = (ada.socket, ada.join_ref, bo.socket, bo.join_ref);
    let mut bo_peer = join_live(&mut bo, &bo_ref, &room, Direction::SendOnly).await;
    let _ada_peer = join_live(&mut ada, &ada_ref, &room, Direction::SendOnly).await;
    let ada_id = ada.user_id.clone();
    let mid = answer_offer_for(&mut bo, &bo_ref, &room, &bo_peer, &ada_id).await;
    let window = std::time::Duration::from_secs(1);
    assert!(bo_peer.count_media(mid, window).await >= 10, "Ada is heard");

    let muted = |muted: bool| json!({"muted": muted});
    let (status, _) = push_expect(&mut ada, &ada_ref, &room, "set_muted", muted(true)).await;
    assert_eq!(status, "ok");
    // What was in flight arrives; after that, nothing while Ada sends on.
    bo_peer
        .count_media(mid, std::time::Duration::from_millis(300))
        .await;
    assert_eq!(
        bo_peer.count_media(mid, window).await,
        0,
        "the SFU forwards nothing of a muted member"
    );

    let (status, _) = push_expect(&mut ada, &ada_ref, &room, "set_muted", muted(false)).await;
    assert_eq!(status, "ok");
    assert!(
        bo_peer.count_media(mid, window).await >= 10,
        "Ada is heard again once unmuted"
    );
}
