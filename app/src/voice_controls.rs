//! Voice as the desktop window and the headset panel offer it: join and
//! leave, mute, push-to-talk, the input meter and what the call is doing.
//! The call itself runs on the network side ([`crate::net`]); this is the
//! frame loop's half, kept in one place so both modes behave alike.

use glam::Vec3;
use roomscale_protocol::pose::Joint;

use crate::net::{Net, NetCommand};
use crate::scene::RoomScene;
use crate::voice::devices::{DeviceList, InputChoice, OutputChoice, list_devices};
use crate::voice::pipeline::PipelineConfig;
use crate::voice::processing::ProcessingConfig;
use crate::voice::rtc::VoiceStatus;
use crate::voice::session::{VoiceMonitor, VoiceOptions, head_pose};

/// The frame loop's view of the call.
#[derive(Debug)]
pub struct VoiceControls {
    monitor: Option<VoiceMonitor>,
    joining: bool,
    muted: bool,
    /// Talk only while the push-to-talk key or button is held.
    pub push_to_talk: bool,
    talking: bool,
    /// The devices the next call uses (settings).
    pub input: InputChoice,
    pub output: OutputChoice,
    /// Echo cancellation, noise suppression and gain control.
    processing: bool,
    muted_all: bool,
    /// Per-person volume by user id (1 when absent).
    volumes: std::collections::HashMap<String, f32>,
    /// The machine's devices, listed when the settings first open.
    devices: Option<DeviceList>,
}

impl Default for VoiceControls {
    fn default() -> Self {
        VoiceControls {
            monitor: None,
            joining: false,
            muted: false,
            push_to_talk: false,
            talking: false,
            input: InputChoice::Default,
            output: OutputChoice::Default,
            processing: true,
            muted_all: false,
            volumes: Default::default(),
            devices: None,
        }
    }
}

impl VoiceControls {
    pub fn in_voice(&self) -> bool {
        self.monitor.is_some()
    }

    /// Joins voice with the devices and processing the settings name.
    pub fn join(&mut self, net: &Net) {
        let mut pipeline = PipelineConfig::default();
        if !self.processing {
            pipeline.processing = ProcessingConfig::OFF;
        }
        self.join_with(
            net,
            VoiceOptions {
                input: Some(self.input.clone()),
                output: Some(self.output.clone()),
                pipeline,
            },
        );
    }

    pub fn processing(&self) -> bool {
        self.processing
    }

    /// Turns echo cancellation, noise suppression and gain control on or off.
    pub fn set_processing(&mut self, on: bool, net: &Net) {
        self.processing = on;
        if self.monitor.is_some() {
            net.send(NetCommand::SetProcessing(if on {
                ProcessingConfig::default()
            } else {
                ProcessingConfig::OFF
            }));
        }
    }

    pub fn muted_all(&self) -> bool {
        self.muted_all
    }

    /// Silences (or not) every voice here; the others still hear this client.
    pub fn set_muted_all(&mut self, muted: bool, net: &Net) {
        self.muted_all = muted;
        if self.monitor.is_some() {
            net.send(NetCommand::MuteAll(muted));
        }
    }

    pub fn volume(&self, user: &str) -> f32 {
        self.volumes.get(user).copied().unwrap_or(1.0)
    }

    pub fn set_volume(&mut self, user: &str, volume: f32, net: &Net) {
        self.volumes.insert(user.to_owned(), volume);
        if self.monitor.is_some() {
            net.send(NetCommand::SetVolume(user.to_owned(), volume));
        }
    }

    /// The machine's microphones and speakers, listed once.
    pub fn devices(&mut self) -> &DeviceList {
        self.devices.get_or_insert_with(list_devices)
    }

    /// Joins voice with the devices (or WAV files) `options` names.
    pub fn join_with(&mut self, net: &Net, options: VoiceOptions) {
        if self.monitor.is_some() || self.joining {
            return;
        }
        self.joining = true;
        net.send(NetCommand::JoinVoice(options));
    }

    pub fn leave(&mut self, net: &Net) {
        if self.monitor.is_some() {
            net.send(NetCommand::LeaveVoice);
        }
    }

    /// The network side says the call started (`Some`) or ended (`None`).
    pub fn joined(&mut self, monitor: Option<VoiceMonitor>, net: &Net) {
        self.joining = false;
        self.monitor = monitor;
        if self.monitor.is_some() {
            // A call starts muted under push-to-talk, as the key is up, and
            // with the volumes and silence chosen before it.
            self.apply_mute(net);
            if self.muted_all {
                net.send(NetCommand::MuteAll(true));
            }
            for (user, volume) in &self.volumes {
                net.send(NetCommand::SetVolume(user.clone(), *volume));
            }
        }
    }

    pub fn muted(&self) -> bool {
        self.muted
    }

    pub fn set_muted(&mut self, muted: bool, net: &Net) {
        self.muted = muted;
        self.apply_mute(net);
    }

    /// The push-to-talk key or button is held (`true`) or not.
    pub fn talk(&mut self, held: bool, net: &Net) {
        if self.push_to_talk && held != self.talking {
            self.talking = held;
            self.apply_mute(net);
        }
    }

    pub fn set_push_to_talk(&mut self, on: bool, net: &Net) {
        self.push_to_talk = on;
        self.talking = false;
        self.apply_mute(net);
    }

    /// Whether this client sends its voice now.
    pub fn transmitting(&self) -> bool {
        !self.muted && (!self.push_to_talk || self.talking)
    }

    fn apply_mute(&self, net: &Net) {
        if self.monitor.is_some() {
            net.send(NetCommand::SetMuted(!self.transmitting()));
        }
    }

    /// Places the listener at `own` and every voice at its speaker's head,
    /// as the scene shows them at `now`: once a frame while in voice.
    pub fn place(&self, net: &Net, scene: &RoomScene, now: f64, own: &Joint) {
        if self.monitor.is_none() {
            return;
        }
        let voices = scene
            .remote_avatars(now)
            .into_iter()
            .filter_map(|avatar| {
                let (user, _) = scene.presence().by_slot(avatar.slot)?;
                Some((
                    user.to_owned(),
                    Vec3::from(avatar.instance.pose.head.position),
                ))
            })
            .collect();
        net.send(NetCommand::PlaceVoices {
            listener: head_pose(own),
            voices,
        });
    }

    /// The microphone's level now, 0 to 1, for the meter.
    pub fn input_level(&self) -> f32 {
        self.monitor
            .as_ref()
            .map_or(0.0, |monitor| monitor.report().input_level.clamp(0.0, 1.0))
    }

    /// One line on the call: off, joining, connected (listening only or
    /// not), reconnecting, and why.
    pub fn status(&self) -> String {
        let Some(monitor) = &self.monitor else {
            return if self.joining {
                "voice: joining".into()
            } else {
                "voice: off".into()
            };
        };
        let report = monitor.report();
        let listening_only = report.microphone.is_none();
        let status = monitor.status().borrow().clone();
        let state = match status {
            VoiceStatus::Joining => "joining".to_string(),
            VoiceStatus::Connected if listening_only => "connected, listening only".into(),
            VoiceStatus::Connected => "connected".into(),
            VoiceStatus::Reconnecting(why) => format!("reconnecting ({why})"),
            VoiceStatus::Off(why) => format!("off ({why})"),
        };
        format!("voice: {state}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Identity, ServerUrl};
    use roomscale_protocol::events::ClientKind;

    fn net() -> Net {
        // Nothing is asked of this server: the controls only queue commands.
        Net::start(
            ServerUrl::parse("http://127.0.0.1:9").unwrap(),
            Identity {
                name: "test".into(),
                colour: "#808080".into(),
                kind: ClientKind::Desktop,
            },
        )
        .unwrap()
    }

    #[test]
    fn mute_and_push_to_talk_decide_what_is_sent() {
        let net = net();
        let mut voice = VoiceControls::default();
        assert!(
            voice.transmitting(),
            "unmuted, no push-to-talk: the voice goes out"
        );
        voice.set_muted(true, &net);
        assert!(!voice.transmitting());
        voice.set_muted(false, &net);
        voice.set_push_to_talk(true, &net);
        assert!(
            !voice.transmitting(),
            "push-to-talk: silent while the key is up"
        );
        voice.talk(true, &net);
        assert!(voice.transmitting(), "held: sent");
        voice.set_muted(true, &net);
        assert!(!voice.transmitting(), "muted wins over a held key");
        voice.set_muted(false, &net);
        voice.talk(false, &net);
        assert!(!voice.transmitting(), "released: silent again");
        voice.set_push_to_talk(false, &net);
        assert!(voice.transmitting());
    }

    #[test]
    fn the_status_line_says_off_and_joining_before_a_call() {
        let net = net();
        let mut voice = VoiceControls::default();
        assert_eq!(voice.status(), "voice: off");
        voice.join(&net);
        assert_eq!(voice.status(), "voice: joining");
        voice.joined(None, &net);
        assert_eq!(
            voice.status(),
            "voice: off",
            "a call that did not start is off"
        );
        assert!(!voice.in_voice());
    }
}
