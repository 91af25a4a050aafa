//! Native voice transports (webrtc-rs) through the real server's SFU over
//! loopback: real Opus frames from one client reach the others attributed
//! to its user by `voice_tracks`; listening only works; mute stops the voice
//! at the SFU; `voice_leave` parks the track; malformed payloads are counted
//! and dropped; an SFU restart mid-call, and a whole server restart (the
//! room rejoined), are survived by joining voice again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roomscale_app::client::RoomClient;
use roomscale_app::voice::codec::{Decoder, Encoder, EncoderConfig, FRAME_SAMPLES};
use roomscale_app::voice::rtc::{
    AudioLevel, OpusFrame, ReceivedOpus, TransportConfig, VoiceStatus, VoiceTransport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::native_client::{LoopbackRoom, identity, room_on_loopback};

/// A member of the room in voice.
struct Member {
    client: RoomClient,
    voice: Arc<VoiceTransport>,
    heard: mpsc::Receiver<ReceivedOpus>,
    talking: Option<JoinHandle<()>>,
}

impl LoopbackRoom {
    async fn join(&self, name: &str, microphone: bool) -> Member {
        let client = RoomClient::join(&self.url, &self.id, identity(name))
            .await
            .unwrap();
        let mut config = TransportConfig::for_server(&self.url, microphone);
        // Notice a lost SFU quickly, so the restart test stays short.
        config.ice_disconnected_after = Duration::from_secs(1);
        config.ice_failed_after = Duration::from_secs(1);
        let signaling = client.voice_signaling().await.unwrap();
        let (voice, heard) = VoiceTransport::start(signaling, config);
        let member = Member {
            client,
            voice: Arc::new(voice),
            heard,
            talking: None,
        };
        member.connected().await;
        member
    }
}

impl Member {
    fn user(&self) -> &str {
        &self.client.user_id
    }

    async fn connected(&self) {
        let mut status = self.voice.status();
        tokio::time::timeout(
            Duration::from_secs(15),
            status.wait_for(|s| *s == VoiceStatus::Connected),
        )
        .await
        .expect("voice connects to the SFU within 15 s")
        .unwrap();
    }

    /// Sends a 440 Hz tone as real Opus, 20 ms a frame in real time; every
    /// `garbage_every`th frame is replaced by a payload that is no Opus.
    fn talk(&mut self, garbage_every: Option<u64>) {
        let voice = self.voice.clone();
        self.talking = Some(tokio::spawn(async move {
            let mut encoder = Encoder::new(EncoderConfig::default()).unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for n in 0u64.. {
                tick.tick().await;
                let start = n * FRAME_SAMPLES as u64;
                let samples: Vec<f32> = (0..FRAME_SAMPLES as u64)
                    .map(|i| {
                        let t = (start + i) as f32 / 48_000.0;
                        0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                    })
                    .collect();
                let level = AudioLevel::from_samples(&samples, true);
                let payload = match garbage_every {
                    // Code 1 (two equal frames) with an odd length: malformed.
                    Some(every) if n % every == every - 1 => {
                        bytes::Bytes::from_static(&[0xfd, 1, 2, 3])
                    }
                    _ => match encoder.encode(&samples).unwrap() {
                        Some(packet) => bytes::Bytes::copy_from_slice(packet),
                        None => continue,
                    },
                };
                voice.send_opus(OpusFrame {
                    payload,
                    sample: start,
                    level: Some(level),
                });
            }
        }));
    }

    /// The packets heard from `user` during `window`; panics on a packet
    /// from anyone else.
    async fn hear(&mut self, user: &str, window: Duration) -> Vec<ReceivedOpus> {
        let mut heard = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(packet)) = tokio::time::timeout_at(deadline, self.heard.recv()).await {
            assert_eq!(&*packet.user_id, user, "attributed to the sender");
            heard.push(packet);
        }
        heard
    }

    /// Drops what was heard so far.
    fn forget(&mut self) {
        while self.heard.try_recv().is_ok() {}
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(talking) = self.talking.take() {
            talking.abort();
        }
    }
}

/// Decodes what was heard and returns its RMS: real audio came through.
fn decoded_rms(packets: &[ReceivedOpus]) -> f32 {
    let mut decoder = Decoder::new().unwrap();
    let mut out = vec![0f32; 5760];
    let mut sum = 0f64;
    let mut count = 0usize;
    for packet in packets {
        let n = decoder.decode(&packet.payload, &mut out).unwrap();
        sum += out[..n].iter().map(|&s| f64::from(s * s)).sum::<f64>();
        count += n;
    }
    (sum / count.max(1) as f64).sqrt() as f32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_peers_hear_each_other_through_the_sfu_attributed_by_voice_tracks() {
    let room = room_on_loopback("Native voice").await;
    let mut ada = room.join("Ada", true).await;
    let mut bo = room.join("Bo", true).await;
    ada.talk(Some(10));
    bo.talk(None);

    let ada_id = ada.user().to_string();
    let bo_id = bo.user().to_string();
    let heard = bo.hear(&ada_id, Duration::from_secs(3)).await;
    assert!(
        heard.len() >= 60,
        "Bo heard {} of Ada's packets in 3 s",
        heard.len()
    );
    // One track, consecutive sequence numbers (lost ones aside), timestamps
    // a whole number of 20 ms frames apart, in real time.
    let tail = &heard[heard.len() - 40..];
    for pair in tail.windows(2) {
        let steps = pair[1].sequence.wrapping_sub(pair[0].sequence);
        let samples = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
        assert!((1..=3).contains(&steps), "sequence steps by {steps}");
        assert_eq!(samples % 960, 0, "timestamps step by frames");
        assert!(pair[1].arrival >= pair[0].arrival);
    }
    assert!(heard.iter().all(|p| p.mid == heard[0].mid));
    let rms = decoded_rms(&heard[heard.len() / 2..]);
    assert!(rms > 0.1, "Ada's tone decodes at Bo (RMS {rms})");
    assert!(
        ada.hear(&bo_id, Duration::from_secs(1)).await.len() >= 30,
        "Ada hears Bo"
    );
    assert_eq!(
        bo.voice.tracks().values().collect::<Vec<_>>(),
        vec![&ada_id],
        "Bo's only track is Ada's"
    );

    // Every tenth frame of Ada's was no Opus: the SFU forwards it as it
    // forwards anything, and Bo counts and drops it.
    let stats = bo.voice.stats();
    assert!(stats.malformed >= 5, "{stats:?}");
    assert_eq!(stats.unattributed, 0, "{stats:?}");
    assert!(
        heard.iter().all(|p| p.payload[..] != [0xfd, 1, 2, 3]),
        "no malformed payload is passed on"
    );
    // The SFU heard Ada speak (the audio level went with the frames).
    tokio::time::timeout(Duration::from_secs(5), async {
        while !bo.voice.speaking().contains(&ada_id) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the SFU tells Bo that Ada speaks");

    room.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_without_a_microphone_hears_and_mute_and_leave_silence_a_voice() {
    let room = room_on_loopback("Listening").await;
    let mut ada = room.join("Ada", true).await;
    let mut cy = room.join("Cy", false).await;
    ada.talk(None);
    let ada_id = ada.user().to_string();
    let heard = cy.hear(&ada_id, Duration::from_secs(2)).await;
    assert!(
        heard.len() >= 40,
        "Cy, listening only, heard {} of Ada's packets",
        heard.len()
    );

    // Ada mutes: nothing of Ada's reaches Cy (the SFU drops it too, as its
    // own test shows); unmuted, Ada is heard again.
    ada.voice.set_muted(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cy.forget();
    assert_eq!(
        cy.hear(&ada_id, Duration::from_secs(1)).await.len(),
        0,
        "a muted voice is not heard"
    );
    ada.voice.set_muted(false);
    assert!(
        cy.hear(&ada_id, Duration::from_secs(1)).await.len() >= 20,
        "unmuted, Ada is heard again"
    );

    // Ada leaves voice (and stays in the room): Cy's track for Ada is parked.
    ada.voice.leave().await;
    assert!(matches!(*ada.voice.status().borrow(), VoiceStatus::Off(_)));
    tokio::time::timeout(Duration::from_secs(5), async {
        while !cy.voice.tracks().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("Cy's track for Ada is parked after voice_leave");
    cy.forget();
    assert_eq!(cy.hear(&ada_id, Duration::from_millis(500)).await.len(), 0);
    room.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_sfu_restart_the_clients_rejoin_voice_by_themselves() {
    let room = room_on_loopback("Restart").await;
    let mut ada = room.join("Ada", true).await;
    let mut bo = room.join("Bo", true).await;
    ada.talk(None);
    let ada_id = ada.user().to_string();
    assert!(bo.hear(&ada_id, Duration::from_secs(1)).await.len() >= 20);

    let voice = room.server.state.voice.as_ref().unwrap();
    voice.inject_panic().unwrap();
    let panicked = Instant::now();
    // Both notice the SFU is gone, start voice over, and Ada is heard again.
    let deadline = Duration::from_secs(20);
    let mut resumed = None;
    while panicked.elapsed() < deadline {
        if bo.voice.stats().restarts >= 1
            && !bo
                .hear(&ada_id, Duration::from_millis(500))
                .await
                .is_empty()
        {
            resumed = Some(panicked.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("Bo hears Ada again within 20 s of the SFU restart");
    println!("voice resumed {resumed:?} after the SFU restart");
    assert!(ada.voice.stats().restarts >= 1);
    assert!(bo.hear(&ada_id, Duration::from_secs(1)).await.len() >= 20);
    room.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_clients_rejoin_the_room_and_then_voice() {
    let room = room_on_loopback("Rejoin").await;
    let mut ada = room.join("Ada", true).await;
    let mut bo = room.join("Bo", true).await;
    ada.talk(None);
    let ada_id = ada.user().to_string();
    assert!(bo.hear(&ada_id, Duration::from_secs(1)).await.len() >= 20);

    // The whole server goes away and comes back on the same address: the
    // room clients rejoin as new members, whom the new SFU does not know.
    let room = room.restart_server().await;
    // Voice settles once Bo's restarted call has the new SFU's track map and
    // Ada's voice on it; packets of the old call may still trickle in first.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "Bo hears Ada again, on the new SFU's track for her, within 30 s of the server's restart ({:?}, tracks {:?})",
            bo.voice.stats(),
            bo.voice.tracks()
        );
        let heard = !bo
            .hear(&ada_id, Duration::from_millis(500))
            .await
            .is_empty();
        let named = bo.voice.tracks().values().any(|user| *user == ada_id);
        if heard && named && bo.voice.stats().restarts >= 1 {
            break;
        }
    }
    assert_eq!(
        bo.voice.tracks().values().collect::<Vec<_>>(),
        vec![&ada_id],
        "the new SFU's track map names Ada and no one else"
    );
    assert!(bo.hear(&ada_id, Duration::from_secs(1)).await.len() >= 20);
    room.server.stop().await;
}
