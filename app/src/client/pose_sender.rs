//! When this client's pose goes on the wire: at most 30 times a second, and
//! only when its encoding differs from the last one sent, or once every
//! [`POSE_REFRESH_MS`] when it does not (a pose lost on the way heals).
//!
//! The poses of objects this client holds or throws ride in the same push,
//! after the avatar's. While it has any, a push also goes out at least every
//! [`OBJECT_KEEPALIVE_MS`] even when nothing moved: the server lets go of a
//! hold it has not heard of for `HOLD_SILENCE_MS`.
//!
//! Frame loops (desktop window, headset, headless bots) offer a pose every
//! frame, whether or not anyone moved. Comparing quantized wire bytes rather
//! than floats means a visitor standing still costs one push a second, tracking noise
//! below the encoding's resolution included. Time is an input, so the rules
//! are tested without a socket or a clock; the browser's `PoseSender`
//! (`server/web/src/room/localPose.ts`) follows the same rules.

use std::time::{Duration, Instant};

use roomscale_protocol::objects::{
    MAX_OBJECTS_PER_POSE_PUSH, OBJECT_KEEPALIVE_MS, OBJECT_POSE_BYTES, ObjectPose,
    encode_object_pose, encode_pose_push,
};
use roomscale_protocol::pose::POSE_REFRESH_MS;
use roomscale_protocol::pose::{self, AvatarPose, POSE_BYTES};

/// The fastest a client sends its pose.
pub const POSE_RATE_HZ: u32 = 30;

/// Decides which offered pose is sent, and when.
#[derive(Debug)]
pub struct PoseSender {
    period: Duration,
    /// The encoding of the latest offered pose.
    latest: Option<[u8; POSE_BYTES]>,
    /// The encoding the server last received from this membership.
    last_sent: Option<[u8; POSE_BYTES]>,
    /// No send before this; `None` until the first send.
    next_send_at: Option<Instant>,
    /// The encodings of the latest offered object poses.
    objects: Vec<[u8; OBJECT_POSE_BYTES]>,
    /// The object poses the server last received.
    last_sent_objects: Vec<[u8; OBJECT_POSE_BYTES]>,
    last_sent_at: Option<Instant>,
}

impl Default for PoseSender {
    fn default() -> PoseSender {
        PoseSender::new(POSE_RATE_HZ)
    }
}

impl PoseSender {
    pub fn new(rate_hz: u32) -> PoseSender {
        PoseSender {
            period: Duration::from_secs(1) / rate_hz.max(1),
            latest: None,
            last_sent: None,
            next_send_at: None,
            objects: Vec::new(),
            last_sent_objects: Vec::new(),
            last_sent_at: None,
        }
    }

    /// The period between sends at the full rate; a caller polls [`Self::due`]
    /// about this often.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Takes the current pose; only the latest offered one counts.
    pub fn offer(&mut self, pose: &AvatarPose) {
        // Slot 0: the server stamps the sender's slot into the bytes it relays.
        self.latest = Some(pose::encode_pose(0, pose));
    }

    /// Takes the poses of the objects held or thrown now (the first
    /// [`MAX_OBJECTS_PER_POSE_PUSH`]); only the latest offered ones count.
    pub fn offer_objects(&mut self, poses: &[ObjectPose]) {
        self.objects = poses
            .iter()
            .take(MAX_OBJECTS_PER_POSE_PUSH)
            .map(encode_object_pose)
            .collect();
    }

    /// The push payload to send at `now` (the avatar pose, then the object
    /// poses), if something differs from the last one sent, a held object's
    /// keep-alive is due or the unchanged pose's refresh is, and the rate allows a send; it counts as
    /// sent once returned.
    pub fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        // An object needs an avatar pose to ride with: a client that offered
        // none yet stands at the origin.
        let latest = self.latest.or_else(|| {
            (!self.objects.is_empty()).then(|| pose::encode_pose(0, &AvatarPose::default()))
        })?;
        let changed = self.last_sent != Some(latest) || self.objects != self.last_sent_objects;
        // A held object's pose must keep its hold alive; an unchanged avatar
        // pose is refreshed more slowly, in case one was lost on the way.
        let refresh_ms = if self.objects.is_empty() {
            POSE_REFRESH_MS
        } else {
            OBJECT_KEEPALIVE_MS
        };
        let keep_alive = self.last_sent_at.is_none_or(|at| {
            now.saturating_duration_since(at) >= Duration::from_millis(refresh_ms)
        });
        if !(changed || keep_alive) || self.next_send_at.is_some_and(|at| now < at) {
            return None;
        }
        self.last_sent = Some(latest);
        self.last_sent_objects.clone_from(&self.objects);
        self.last_sent_at = Some(now);
        // The schedule keeps the average at the rate even when the caller's
        // ticks come late (a tick at 33.4 ms after one at 33.0 ms still
        // sends), and never lets two sends come closer than half a period,
        // also after a pause.
        let scheduled = self.next_send_at.unwrap_or(now) + self.period;
        self.next_send_at = Some(scheduled.max(now + self.period / 2));
        Some(encode_pose_push(&latest, &self.objects))
    }

    /// Forgets what was sent: after a (re)join the room knows no pose of this
    /// client, so the latest one goes out again even if it did not change.
    pub fn rejoined(&mut self) {
        self.last_sent = None;
        self.last_sent_objects.clear();
    }
}

#[cfg(test)]
mod tests {
    use roomscale_protocol::pose::Joint;

    use super::*;

    /// A head walking along -Z at 1 m/s, always changing its encoding.
    fn walking(t: f64) -> AvatarPose {
        let mut pose = AvatarPose::default();
        pose.head.position = [0.0, 1.6, -t as f32];
        pose
    }

    fn standing(position: [f32; 3]) -> AvatarPose {
        AvatarPose {
            head: Joint {
                position,
                orientation: [0.0, 0.0, 0.0, 1.0],
            },
            ..AvatarPose::default()
        }
    }

    /// Offers `pose(t)` every frame at `fps` for `seconds`, polling after each
    /// offer as a frame loop feeding a socket task would; returns the send times.
    fn run(fps: f64, seconds: f64, pose: impl Fn(f64) -> AvatarPose) -> Vec<f64> {
        let start = Instant::now();
        let mut sender = PoseSender::default();
        let mut sent = Vec::new();
        let frames = (fps * seconds) as u32;
        for frame in 0..frames {
            let t = f64::from(frame) / fps;
            sender.offer(&pose(t));
            if sender.due(start + Duration::from_secs_f64(t)).is_some() {
                sent.push(t);
            }
        }
        sent
    }

    #[test]
    fn a_moving_pose_goes_out_at_most_30_times_a_second_at_any_frame_rate() {
        for fps in [30.0, 60.0, 72.0, 90.0, 120.0, 144.0] {
            let sent = run(fps, 3.0, walking);
            let in_second = sent.iter().filter(|t| (1.0..2.0).contains(*t)).count();
            assert!(in_second <= 30, "{fps} fps: {in_second} sends in a second");
            let fewest = if fps >= 60.0 { 29 } else { 28 };
            assert!(
                in_second >= fewest,
                "{fps} fps: only {in_second} sends in a second"
            );
            let closest = sent
                .windows(2)
                .map(|w| w[1] - w[0])
                .fold(f64::INFINITY, f64::min);
            assert!(
                closest >= 1.0 / 60.0 - 1e-9,
                "{fps} fps: two sends {closest} s apart"
            );
        }
    }

    #[test]
    fn ticks_that_fire_late_still_send_every_time() {
        // A tick every period that fires up to 5 ms late, as a timer under load does.
        let start = Instant::now();
        let mut sender = PoseSender::default();
        let mut sends = 0;
        for tick in 0..90u32 {
            let late = Duration::from_micros(u64::from(tick.wrapping_mul(2_654_435_761) % 5_000));
            let at = sender.period() * tick + late;
            sender.offer(&walking(at.as_secs_f64()));
            if sender.due(start + at).is_some() {
                sends += 1;
            }
        }
        assert_eq!(sends, 90, "late ticks were skipped");
    }

    /// Sends of a still pose at 90 fps over 3 s: the first, then a refresh every POSE_REFRESH_MS.
    fn refreshes() -> Vec<f64> {
        let every = POSE_REFRESH_MS as f64 / 1000.0;
        (0..3).map(|i| f64::from(i) * every).collect()
    }

    fn assert_sent_at(sent: &[f64], expected: &[f64], what: &str) {
        assert_eq!(sent.len(), expected.len(), "{what}: sent at {sent:?}");
        for (t, e) in sent.iter().zip(expected) {
            // Frames fall every 1/90 s: a refresh goes out on the first frame after it is due.
            assert!(
                (t - e).abs() <= 1.0 / 90.0 + 1e-9,
                "{what}: sent at {sent:?}"
            );
        }
    }

    #[test]
    fn a_still_pose_goes_out_once_and_then_only_as_a_refresh() {
        let sent = run(90.0, 3.0, |_| standing([0.4, 1.65, 3.0]));
        assert_sent_at(&sent, &refreshes(), "still");
    }

    #[test]
    fn sub_millimetre_tracking_noise_is_not_a_change() {
        // A head within ±0.3 mm of where it stands, wobbling far below the
        // rotation's resolution: the same bytes every frame. (Noise across a
        // rounding boundary does change the bytes; a component of exactly 0
        // sits on one, so the resting orientation here tilts a little.)
        let [x, y, z] = [0.0302f32, 0.2803, 0.0101];
        let w = (1.0 - x * x - y * y - z * z).sqrt();
        let sent = run(90.0, 3.0, |t| {
            let noise = 0.000_3 * (t * 37.0).sin() as f32;
            let mut pose = standing([0.4 + noise, 1.65 - noise, 3.0 + noise]);
            let wobble = 0.000_05 * (t * 53.0).cos() as f32;
            pose.head.orientation = [x + wobble, y - wobble, z, w];
            pose
        });
        assert_sent_at(&sent, &refreshes(), "noise counted as movement");
        // A millimetre is a change.
        let sent = run(90.0, 1.0, |t| {
            standing([if t >= 0.5 { 0.401 } else { 0.4 }, 1.65, 3.0])
        });
        assert_eq!(sent, [0.0, 0.5]);
    }

    #[test]
    fn a_pose_that_comes_back_before_the_next_send_is_not_sent_again() {
        let start = Instant::now();
        let mut sender = PoseSender::default();
        let here = standing([0.0, 1.6, 0.0]);
        sender.offer(&here);
        assert!(sender.due(start).is_some());
        sender.offer(&standing([0.0, 1.6, -0.1]));
        sender.offer(&here);
        assert_eq!(sender.due(start + Duration::from_millis(100)), None);
    }

    #[test]
    fn a_change_waits_for_the_next_slot_and_the_latest_pose_goes_out() {
        let start = Instant::now();
        let mut sender = PoseSender::default();
        sender.offer(&standing([0.0, 1.6, 0.0]));
        assert!(sender.due(start).is_some());
        sender.offer(&standing([0.0, 1.6, -0.1]));
        assert_eq!(sender.due(start + Duration::from_millis(10)), None);
        let latest = standing([0.0, 1.6, -0.2]);
        sender.offer(&latest);
        let bytes = sender.due(start + Duration::from_millis(34)).unwrap();
        assert_eq!(bytes, pose::encode_pose(0, &latest));
        let (slot, decoded) = pose::decode_pose(&bytes).unwrap();
        assert_eq!(slot, 0, "the server stamps the slot");
        assert!((decoded.head.position[2] + 0.2).abs() <= pose::POSITION_ERROR_BOUND_M);
    }

    #[test]
    fn nothing_goes_out_before_a_pose_is_offered_and_a_rejoin_sends_it_again() {
        let start = Instant::now();
        let mut sender = PoseSender::default();
        assert_eq!(sender.due(start), None);
        let here = standing([1.0, 1.6, 1.0]);
        sender.offer(&here);
        assert!(sender.due(start).is_some());
        sender.offer(&here);
        assert_eq!(sender.due(start + Duration::from_millis(500)), None);
        sender.rejoined();
        assert_eq!(
            sender.due(start + Duration::from_millis(600)),
            Some(pose::encode_pose(0, &here).to_vec()),
            "the restarted room needs the pose again"
        );
    }

    fn held_at(x: f32) -> ObjectPose {
        ObjectPose {
            handle: 3,
            flags: roomscale_protocol::objects::ObjectPoseFlags(
                roomscale_protocol::objects::ObjectPoseFlags::HELD,
            ),
            position: [x, 1.0, -1.5],
            orientation: [0.0, 0.0, 0.0, 1.0],
        }
    }

    #[test]
    fn a_still_held_object_is_sent_every_half_second_and_a_moving_one_at_30_hz() {
        let start = Instant::now();
        let mut sender = PoseSender::default();
        sender.offer(&standing([0.0, 1.6, 0.0]));
        let mut still = Vec::new();
        let mut moving = 0;
        for frame in 0..270u32 {
            let t = f64::from(frame) / 90.0;
            // Still for the first two seconds, then carried along X.
            let x = if t < 2.0 { 0.0 } else { t as f32 };
            sender.offer_objects(&[held_at(x)]);
            if let Some(payload) = sender.due(start + Duration::from_secs_f64(t)) {
                let push = roomscale_protocol::objects::PosePush::parse(&payload).unwrap();
                assert_eq!(push.objects().len(), 1);
                if t < 2.0 {
                    still.push(t);
                } else {
                    moving += 1;
                }
            }
        }
        // 0, 0.5, 1.0, 1.5 s: keep-alives while nothing moved.
        assert_eq!(still.len(), 4, "keep-alives at {still:?}");
        assert!(still.windows(2).all(|w| (w[1] - w[0] - 0.5).abs() < 0.02));
        assert!(
            (29..=31).contains(&moving),
            "{moving} sends in the moving second"
        );
    }

    #[test]
    fn letting_go_sends_one_push_without_objects_and_then_only_refreshes() {
        let start = Instant::now();
        let mut sender = PoseSender::default();
        sender.offer(&standing([0.0, 1.6, 0.0]));
        sender.offer_objects(&[held_at(0.0), held_at(1.0), held_at(2.0)]);
        let payload = sender.due(start).unwrap();
        assert_eq!(
            payload.len(),
            POSE_BYTES + 2 * OBJECT_POSE_BYTES,
            "at most two objects ride along"
        );
        sender.offer_objects(&[]);
        let payload = sender.due(start + Duration::from_millis(40)).unwrap();
        assert_eq!(payload.len(), POSE_BYTES);
        assert_eq!(sender.due(start + Duration::from_millis(900)), None);
        // Then only the still pose's refresh, without objects.
        let refresh = start + Duration::from_millis(40 + POSE_REFRESH_MS);
        assert_eq!(sender.due(refresh).map(|p| p.len()), Some(POSE_BYTES));
    }
}
