//! The headset frame loop: drain OpenXR events into the session state
//! machine, then per frame wait → begin → locate (views and controllers at the
//! predicted display time) → grab, carry and throw shared objects with the
//! hands ([`super::grab`]) → draw both eyes with the one renderer → end.
//!
//! Teardown order, which the drop order of [`Headset`]'s fields carries out:
//! swapchain textures, swapchain, spaces and actions, session (with its frame
//! waiter and stream), then the wgpu device and the Vulkan instance, then the
//! OpenXR instance. OpenXR handles go before the Vulkan objects they use.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use glam::{Mat4, Quat, Vec3};
use openxr as xr;
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};

use super::Runtime;
use super::gpu_timer::GpuTimer;
use super::grab::{GrabAction, GrabPose, HandGrabInput, Hands, REACH, Reachable};
use super::input::{Controllers, HandSample};
use super::layers::{self, DepthInfo};
use super::locomotion::{Locomotion, LocomotionInput, Pose};
use super::panel::{HeadsetUi, Laser, PanelPlacement, PanelRequests, VoiceRequest, VoiceView};
use super::session::{Action, ExitReason, Input, SessionMachine, SessionState};
use super::swapchain::{EyeDepth, EyeImage, EyeSwapchain, choose_format, right_eye_path};
use super::vulkan::{self, GpuOptions, XrGpu};
use crate::client::{Identity, RoomUpdate, ServerUrl};
use crate::net::{Net, NetCommand, NetEvent};
use crate::objects::{GrabOutcome, ObjectReply};
use crate::picker::{PickerRequest, RoomPicker, ServerMemory};
use crate::render::{
    self, AvatarInstance, Camera, LineVertex, ObjectInstance, Renderer, ViewMode, ViewTarget,
};
use crate::scene::{RoomScene, tagged};
use crate::voice::session::VoiceOptions;
use crate::voice_controls::VoiceControls;
use roomscale_physics::collision_radius;

const VIEW_TYPE: xr::ViewConfigurationType = xr::ViewConfigurationType::PRIMARY_STEREO;
/// Height of the floor below the LOCAL space's origin when the runtime offers
/// neither STAGE nor LOCAL_FLOOR: a standing adult's eyes.
const ASSUMED_EYE_HEIGHT: f32 = 1.6;

/// What headset mode was asked to do.
#[derive(Debug, Clone)]
pub struct HeadsetOptions {
    pub server: ServerUrl,
    pub identity: Identity,
    /// The room to join; without one the panel shows the room picker first,
    /// and leaving a room goes back to it.
    pub room_id: Option<String>,
    /// Where the room picker remembers the last server it connected to.
    pub picker_memory: Option<ServerMemory>,
    /// Leave after this long (default: until the session ends or Ctrl-C).
    pub seconds: Option<f64>,
    /// Write the left eye's last frame here as PNG when leaving.
    pub screenshot: Option<PathBuf>,
    /// Load the Vulkan validation layer and fail on any error it reports.
    pub validation: bool,
    /// Draw this many extra avatars standing in rows (for benchmarks).
    pub extra_avatars: usize,
    /// Eye image size instead of the runtime's recommendation.
    pub eye_size: Option<(u32, u32)>,
    /// Print each pose sent, with the time, for tests that follow the head.
    pub print_poses: bool,
    /// Where the play space's origin stands in the room (on the floor) and
    /// which way it is turned, in degrees about +Y.
    pub start: [f32; 2],
    pub turn_degrees: f32,
    /// Join voice with these devices on joining a room (the panel's button
    /// joins with the default ones).
    pub voice: Option<VoiceOptions>,
}

impl HeadsetOptions {
    /// How a person starts headset mode without a room link: the room
    /// picker first, nothing measured or written.
    pub fn picker(
        server: ServerUrl,
        identity: Identity,
        memory: Option<ServerMemory>,
    ) -> HeadsetOptions {
        HeadsetOptions {
            server,
            identity,
            room_id: None,
            picker_memory: memory,
            seconds: None,
            screenshot: None,
            validation: false,
            extra_avatars: 0,
            eye_size: None,
            print_poses: false,
            start: [0.0, 0.0],
            turn_degrees: 0.0,
            voice: None,
        }
    }
}

/// What a headset run measured.
#[derive(Debug, Default, Clone)]
pub struct HeadsetReport {
    pub frames: u64,
    pub frames_rendered: u64,
    /// CPU time this thread spent from `xrWaitFrame` returning to `xrEndFrame`
    /// returning, per rendered frame (waits on the GPU or the compositor cost none).
    pub frame_cpu: Vec<Duration>,
    /// Wall time over the same span: with a runtime that waits for the GPU in
    /// `xrEndFrame` (Monado without shared fences does), this includes it.
    pub frame_wall: Vec<Duration>,
    /// GPU time of both eyes' passes, per measured frame.
    pub frame_gpu: Vec<Duration>,
    pub validation_errors: usize,
    pub eye_size: (u32, u32),
    pub reached_focused: bool,
    pub exit: String,
    /// The session ended as OpenXR intends (the visitor left, or the runtime
    /// ended it); false when it was cut short.
    pub clean_exit: bool,
}

impl HeadsetReport {
    fn ended(&mut self, reason: ExitReason) {
        self.clean_exit = reason.is_clean();
        self.exit = reason.to_string();
    }
}

/// Runs headset mode until the session ends, Ctrl-C, or `options.seconds`.
pub fn run(runtime: Runtime, options: HeadsetOptions) -> Result<HeadsetReport> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while the runtime winds down is the same request.
        let _ = ctrlc_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let net = Net::start(options.server.clone(), options.identity.clone())?;
    if let Some(room_id) = &options.room_id {
        net.send(NetCommand::Join(room_id.clone()));
    }
    let mut headset = Headset::new(runtime, &options)?;
    let report = headset.run(&options, &net, &stop);
    net.shut_down(Duration::from_secs(2));
    report
}

fn ctrlc_handler(on_interrupt: impl Fn() + Send + 'static) -> Result<()> {
    // The frame loop polls this flag; a tokio signal task on a helper thread
    // keeps the handler free of unsafe code.
    std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    loop {
                        if tokio::signal::ctrl_c().await.is_err() {
                            break;
                        }
                        on_interrupt();
                    }
                });
            }
        })
        .context("starting the Ctrl-C watcher")?;
    Ok(())
}

struct Headset {
    // Drop order matters: see the module documentation.
    swapchain: Option<EyeSwapchain>,
    controllers: Controllers,
    space: xr::Space,
    view_space: xr::Space,
    frame_stream: xr::FrameStream<xr::Vulkan>,
    frame_waiter: xr::FrameWaiter,
    session: xr::Session<xr::Vulkan>,
    ui: HeadsetUi,
    renderer: Renderer,
    timer: Option<GpuTimer>,
    gpu: XrGpu,
    blend_mode: xr::EnvironmentBlendMode,
    runtime: Runtime,
    /// The left eye of the last frame read back, RGBA8, for `--screenshot`,
    /// with the eye's camera (room space) when it was drawn.
    last_eyes: Vec<EyeImage>,
    /// Rendered frames since the last read-back.
    since_readback: u32,
    /// The last notice from the network side, shown on the panel.
    status: String,
    voice: VoiceControls,
    /// Menu buttons as last seen, to act on presses only.
    menu_was_down: bool,
    /// The room picker, when headset mode started without a room.
    picker: Option<RoomPicker>,
    /// What each hand holds of the shared objects.
    grabs: Hands,
}

impl Headset {
    fn new(runtime: Runtime, options: &HeadsetOptions) -> Result<Headset> {
        let gpu = XrGpu::new(
            &runtime.instance,
            runtime.system,
            GpuOptions {
                validation: options.validation,
            },
        )
        .context("setting up the headset's graphics")?;
        println!(
            "xr: drawing with {} ({:?})",
            gpu.adapter.name, gpu.adapter.device_type
        );
        // SAFETY (inside the crate call): the handles come from `gpu`, which
        // outlives the session (field order).
        let (session, frame_waiter, frame_stream) =
            create_session(&runtime, &gpu).context("starting the OpenXR session")?;
        let (space, space_kind) = play_space(&session).context("choosing the play space")?;
        let view_space = session
            .create_reference_space(xr::ReferenceSpaceType::VIEW, xr::Posef::IDENTITY)
            .context("creating the view space")?;
        let controllers = Controllers::new(&runtime.instance, &session, runtime.hand_tracking)
            .context("setting up controller input")?;
        let blend_mode = runtime
            .instance
            .enumerate_environment_blend_modes(runtime.system, VIEW_TYPE)
            .context("asking for the display's blend modes")?
            .into_iter()
            .next()
            .unwrap_or(xr::EnvironmentBlendMode::OPAQUE);
        let formats = session
            .enumerate_swapchain_formats()
            .context("listing swapchain formats")?;
        let format = choose_format(&formats).with_context(|| {
            format!("the runtime offers no sRGB 8-bit colour format (offered: {formats:?})")
        })?;
        let view_mode = if gpu.features.contains(wgpu::Features::MULTIVIEW)
            && render::multiview_is_trustworthy(&gpu.adapter)
        {
            ViewMode::Multiview
        } else {
            ViewMode::Single
        };
        let mut renderer = Renderer::with_views(&gpu.device, format.1, view_mode);
        println!(
            "xr: eyes drawn {}",
            match view_mode {
                ViewMode::Multiview => "in one multiview pass",
                ViewMode::Single => "one pass each",
            }
        );
        let ui = HeadsetUi::new(&gpu.device, &mut renderer);
        let timer = gpu
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| GpuTimer::new(&gpu));
        println!("xr: play space {space_kind}");
        Ok(Headset {
            swapchain: None,
            controllers,
            space,
            view_space,
            frame_stream,
            frame_waiter,
            session,
            ui,
            renderer,
            timer,
            gpu,
            blend_mode,
            runtime,
            last_eyes: Vec::new(),
            since_readback: 0,
            status: String::new(),
            voice: VoiceControls::default(),
            menu_was_down: false,
            picker: options
                .room_id
                .is_none()
                .then(|| RoomPicker::new(options.server.clone(), options.picker_memory.clone())),
            grabs: Hands::default(),
        })
    }

    fn run(
        &mut self,
        options: &HeadsetOptions,
        net: &Net,
        stop: &AtomicBool,
    ) -> Result<HeadsetReport> {
        let started = Instant::now();
        let deadline = options.seconds.map(Duration::from_secs_f64);
        let mut machine = SessionMachine::new();
        let mut scene = RoomScene::default();
        let mut locomotion = Locomotion::default();
        locomotion.set_transform(
            Vec3::new(options.start[0], 0.0, options.start[1]),
            options.turn_degrees.to_radians(),
        );
        let mut report = HeadsetReport::default();
        let mut events = xr::EventDataBuffer::new();
        let mut last_state = SessionState::Unknown;
        let mut last_dt = Instant::now();
        let extra = extra_avatars(options.extra_avatars);
        let mut exit_asked = false;
        if let Some(picker) = &self.picker {
            net.send(NetCommand::Connect(picker.server().clone()));
        }
        loop {
            let now = started.elapsed().as_secs_f64();
            let mut inputs = vec![Input::Tick(now)];
            if !exit_asked
                && (stop.load(Ordering::Relaxed)
                    || deadline.is_some_and(|d| started.elapsed() >= d))
            {
                exit_asked = true;
                inputs.push(Input::ExitRequested);
            }
            loop {
                match self.runtime.instance.poll_event(&mut events) {
                    Ok(Some(xr::Event::SessionStateChanged(change))) => {
                        inputs.push(Input::StateChanged(state_from_xr(change.state())));
                    }
                    Ok(Some(xr::Event::InstanceLossPending(_))) => {
                        inputs.push(Input::InstanceLossPending)
                    }
                    Ok(Some(xr::Event::EventsLost(lost))) => {
                        eprintln!("xr: the runtime dropped {} events", lost.lost_event_count());
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => {
                        inputs.push(Input::RuntimeError(format!("polling events: {error}")));
                        break;
                    }
                }
            }
            let mut quit = None;
            for input in inputs {
                quit = quit.or(self.feed(&mut machine, input));
            }
            if machine.state() != last_state {
                last_state = machine.state();
                println!("xr: session {last_state:?}");
                report.reached_focused |= last_state == SessionState::Focused;
            }
            if let Some(reason) = quit {
                report.ended(reason);
                break;
            }
            while let Ok(event) = net.events.try_recv() {
                match event {
                    NetEvent::Joined {
                        room_name,
                        user_id,
                        slot,
                    } => {
                        println!("joined \"{room_name}\" as {user_id} (slot {slot})");
                        scene.joined(slot);
                        if let Some(voice) = &options.voice {
                            self.voice.join_with(net, voice.clone());
                        }
                    }
                    NetEvent::Update(update) => {
                        if let RoomUpdate::ObjectReply(ObjectReply::Grab {
                            object_id,
                            outcome: GrabOutcome::Held(holder),
                        }) = &update
                        {
                            self.status = held_by(object_id, holder.as_ref());
                            println!("xr: {}", self.status);
                        }
                        scene.apply(now, update);
                    }
                    NetEvent::History { before_id, page } => scene.older_page(before_id, page),
                    NetEvent::Left => {
                        scene.left();
                        self.grabs.clear();
                    }
                    NetEvent::Status(message) => {
                        println!("status: {message}");
                        if let Some(picker) = &mut self.picker {
                            picker.set_status(message.clone());
                        }
                        self.status = message;
                    }
                    NetEvent::Voice(monitor) => {
                        println!(
                            "{}",
                            if monitor.is_some() {
                                "voice: joined"
                            } else {
                                "voice: left"
                            }
                        );
                        self.voice.joined(monitor, net);
                    }
                    NetEvent::Rooms(rooms) => {
                        if let Some(picker) = &mut self.picker {
                            println!("xr: {} rooms on {}", rooms.len(), picker.server());
                            picker.set_rooms(rooms);
                        }
                    }
                }
            }
            if !machine.should_run_frame_loop() {
                // Not yet (or no longer) synchronised with the display: nothing
                // to wait on, so wait a little for the next event instead.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let dt = last_dt.elapsed().as_secs_f32().min(0.1);
            last_dt = Instant::now();
            match self.frame(
                &machine,
                &mut scene,
                &mut locomotion,
                &extra,
                options,
                net,
                dt,
                started,
                &mut report,
            ) {
                Ok(requests) => {
                    match requests.voice {
                        Some(VoiceRequest::Join) => self.voice.join(net),
                        Some(VoiceRequest::Leave) => self.voice.leave(net),
                        Some(VoiceRequest::ToggleMute) => {
                            let muted = !self.voice.muted();
                            self.voice.set_muted(muted, net);
                        }
                        Some(VoiceRequest::ToggleMuteAll) => {
                            let muted = !self.voice.muted_all();
                            self.voice.set_muted_all(muted, net);
                        }
                        Some(VoiceRequest::TogglePushToTalk) => {
                            let on = !self.voice.push_to_talk;
                            self.voice.set_push_to_talk(on, net);
                        }
                        None => {}
                    }
                    match requests.pick {
                        Some(PickerRequest::Connect(server)) => {
                            net.send(NetCommand::Connect(server))
                        }
                        Some(PickerRequest::Refresh) => net.send(NetCommand::RefreshRooms),
                        Some(PickerRequest::Join(room_id)) => net.send(NetCommand::Join(room_id)),
                        None => {}
                    }
                    if let Some(act) = requests.moderate {
                        net.send(NetCommand::Moderate(act));
                    }
                    if requests.leave && self.picker.is_some() {
                        // Back to the picker rather than out of the app.
                        net.send(NetCommand::Leave);
                        net.send(NetCommand::RefreshRooms);
                    } else if requests.leave && !exit_asked {
                        println!("xr: leaving, as asked on the panel");
                        exit_asked = true;
                        if let Some(reason) = self.feed(&mut machine, Input::ExitRequested) {
                            report.ended(reason);
                            break;
                        }
                    }
                }
                Err(error) => {
                    let input = Input::RuntimeError(format!("{error:#}"));
                    if let Some(reason) = self.feed(&mut machine, input) {
                        report.ended(reason);
                        break;
                    }
                }
            }
        }
        report.validation_errors = vulkan::validation_errors();
        if let Some(path) = &options.screenshot {
            for (index, image) in std::mem::take(&mut self.last_eyes).into_iter().enumerate() {
                // The left eye at the path given, the right one beside it.
                let path = if index == 0 {
                    path.clone()
                } else {
                    right_eye_path(path)
                };
                let (width, height) = report.eye_size;
                render::write_png(&path, width, height, &image.pixels)
                    .with_context(|| format!("writing {}", path.display()))?;
                // Where the eye was, so a reader can project the room into the image.
                let [x, y, z] = image.eye.position;
                let [qx, qy, qz, qw] = image.eye.orientation;
                let fov = image.fov;
                println!(
                    "wrote {} eye={x:.4},{y:.4},{z:.4} orientation={qx:.5},{qy:.5},{qz:.5},{qw:.5} fov={:.5},{:.5},{:.5},{:.5} size={width}x{height}",
                    path.display(),
                    fov.angle_left,
                    fov.angle_right,
                    fov.angle_up,
                    fov.angle_down
                );
            }
        }
        Ok(report)
    }
}

impl Headset {
    /// Hands `input` to the state machine and carries out what it asks;
    /// returns why to quit, if it came to that.
    fn feed(&mut self, machine: &mut SessionMachine, input: Input) -> Option<ExitReason> {
        let mut quit = None;
        for action in machine.handle(input) {
            if let Some(reason) = self.carry_out(action, machine) {
                quit = Some(reason);
            }
        }
        quit
    }

    /// Carries out one action of the state machine; returns why to quit, if so.
    fn carry_out(&mut self, action: Action, machine: &mut SessionMachine) -> Option<ExitReason> {
        let failed = |what: &str, error: xr::sys::Result| format!("{what}: {error}");
        let result = match action {
            Action::BeginSession => self
                .session
                .begin(VIEW_TYPE)
                .map(drop)
                .map_err(|e| failed("beginning the session", e)),
            Action::EndSession => self
                .session
                .end()
                .map(drop)
                .map_err(|e| failed("ending the session", e)),
            Action::RequestExit => match self.session.request_exit() {
                // Not running (yet or any more): nothing to wind down.
                Ok(()) | Err(xr::sys::Result::ERROR_SESSION_NOT_RUNNING) => Ok(()),
                Err(e) => Err(failed("asking the runtime to end the session", e)),
            },
            Action::Quit { reason } => return Some(reason),
        };
        if let Err(message) = result {
            for action in machine.handle(Input::RuntimeError(message)) {
                if let Action::Quit { reason } = action {
                    return Some(reason);
                }
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn frame(
        &mut self,
        machine: &SessionMachine,
        scene: &mut RoomScene,
        locomotion: &mut Locomotion,
        extra: &[AvatarInstance],
        options: &HeadsetOptions,
        net: &Net,
        dt: f32,
        started: Instant,
        report: &mut HeadsetReport,
    ) -> Result<PanelRequests> {
        let frame_state = self
            .frame_waiter
            .wait()
            .context("waiting for the next frame")?;
        let wall_started = Instant::now();
        let cpu_started = cpu_time::ThreadTime::now();
        self.frame_stream.begin().context("beginning a frame")?;
        report.frames += 1;
        let time = frame_state.predicted_display_time;
        if !frame_state.should_render {
            // Every begun frame is ended, also when there is nothing to show.
            self.frame_stream
                .end(time, self.blend_mode, &[])
                .context("ending an empty frame")?;
            return Ok(PanelRequests::default());
        }

        let hands = if machine.accepts_input() {
            self.controllers
                .sync(&self.session, &self.space, time)
                .context("reading the controllers")?
        } else {
            [HandSample::default(), HandSample::default()]
        };
        let head = self
            .view_space
            .locate(&self.space, time)
            .context("locating the head")?;
        let head_tracked = head.location_flags.contains(
            xr::SpaceLocationFlags::POSITION_VALID | xr::SpaceLocationFlags::ORIENTATION_VALID,
        );
        let head_joint = joint_from(head.pose);
        locomotion.update(
            &LocomotionInput {
                head: pose_from(head_joint),
                left_stick: hands[0].thumbstick.into(),
                right_stick: hands[1].thumbstick.into(),
                right_aim: hands[1].aim.map(|aim| pose_from(joint_from(aim))),
            },
            dt,
        );
        let play_to_room = locomotion.room_from_play();
        let own = own_pose(&play_to_room, head_joint, &hands);
        if machine.sends_poses() && head_tracked {
            net.send(NetCommand::SetPose(own));
            if options.print_poses {
                let p = own.head.position;
                println!(
                    "pose t={:.3} head={:.4},{:.4},{:.4}",
                    started.elapsed().as_secs_f64(),
                    p[0],
                    p[1],
                    p[2]
                );
            }
        }

        // Remote avatars are shown for the moment this frame is displayed.
        let display_at = started.elapsed().as_secs_f64()
            + Duration::from_nanos(frame_state.predicted_display_period.as_nanos().max(0) as u64)
                .as_secs_f64();
        let remote = scene.remote_avatars(display_at);
        let mut avatars: Vec<AvatarInstance> =
            remote.iter().map(|avatar| avatar.instance).collect();
        avatars.extend_from_slice(extra);
        self.renderer
            .prepare(&self.gpu.device, &self.gpu.queue, &avatars);
        let in_reach = self.carry_objects(scene, &play_to_room, &hands, net, started);
        let objects: Vec<ObjectInstance> = scene
            .objects()
            .displayed(display_at)
            .map(|object| ObjectInstance::shown(&object, in_reach.contains(&object.id)))
            .collect();
        self.renderer
            .prepare_objects(&self.gpu.device, &self.gpu.queue, &objects);

        // The panel comes up in front of the visitor at the start and
        // wherever they are when they press a menu button.
        let menu_down = hands.iter().any(|hand| hand.menu);
        if head_tracked && (self.ui.placement.is_none() || (menu_down && !self.menu_was_down)) {
            self.ui.placement = Some(PanelPlacement::in_front_of(&own.head));
        }
        self.menu_was_down = menu_down;
        let laser = hands[1].aim.map(|aim| {
            let aim = transform_joint(&play_to_room, joint_from(aim));
            Laser {
                origin: Vec3::from(aim.position),
                direction: Quat::from_array(aim.orientation) * Vec3::NEG_Z,
                trigger: hands[1].trigger,
            }
        });
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        // Voices come from where their speakers' heads are shown, and the
        // left grip talks under push-to-talk, unless it holds an object.
        self.voice.place(net, scene, display_at, &own.head);
        self.voice
            .talk(hands[0].squeeze > 0.5 && self.grabs.held(0).is_none(), net);
        // A moderator's mute stays the visitor's own once given back.
        if scene.own_moderator_muted() && !self.voice.muted() {
            self.voice.set_muted(true, net);
        }
        let voice = VoiceView {
            in_voice: self.voice.in_voice(),
            muted: self.voice.muted(),
            muted_all: self.voice.muted_all(),
            push_to_talk: self.voice.push_to_talk,
            transmitting: self.voice.transmitting(),
            level: self.voice.input_level(),
            status: self.voice.status(),
        };
        let (quads, mut lines, requests) = self.ui.update(
            &self.gpu.device,
            &self.gpu.queue,
            &mut encoder,
            scene,
            &remote,
            Vec3::from(own.head.position),
            laser,
            &self.status,
            &voice,
            self.picker.as_mut().filter(|_| scene.own_slot().is_none()),
        );
        lines.extend(arc_lines(locomotion.arc()));
        self.renderer
            .prepare_overlay(&self.gpu.device, &self.gpu.queue, &quads, &lines);

        let (width, height) = options.eye_size.unwrap_or(self.recommended_eye_size()?);
        if self.swapchain.is_none() {
            self.swapchain = Some(EyeSwapchain::new(
                &self.gpu,
                &self.session,
                self.runtime.depth_layer,
                width,
                height,
            )?);
            report.eye_size = (width, height);
        }
        // Views as late as possible, right before drawing.
        let (_, views) = self
            .session
            .locate_views(VIEW_TYPE, time, &self.space)
            .context("locating the eyes")?;
        let swapchain = self.swapchain.as_mut().expect("created above");
        let image = swapchain.colour.acquire()?;
        let depth_image = match &mut swapchain.depth {
            EyeDepth::Runtime(depth) => Some(depth.acquire()?),
            EyeDepth::Own { .. } => None,
        };
        anyhow::ensure!(
            views.len() == render::MAX_VIEWS,
            "the runtime located {} views for a stereo headset",
            views.len()
        );
        let cameras = [
            eye_camera(&play_to_room, &views[0]),
            eye_camera(&play_to_room, &views[1]),
        ];
        let passes = match self.renderer.view_mode() {
            ViewMode::Multiview => {
                let depth = match (&swapchain.depth, depth_image) {
                    (EyeDepth::Runtime(depth), Some(index)) => &depth.both_views[index],
                    (EyeDepth::Own { both, .. }, _) => both,
                    (EyeDepth::Runtime(_), None) => unreachable!("acquired above"),
                };
                self.renderer.render_both(
                    &self.gpu.queue,
                    &mut encoder,
                    ViewTarget {
                        view: 0,
                        colour: &swapchain.colour.both_views[image],
                        depth,
                        timestamps: self.timer.as_ref().map(|timer| timer.writes(0)),
                        keep_depth: depth_image.is_some(),
                    },
                    [&cameras[0], &cameras[1]],
                );
                1
            }
            ViewMode::Single => {
                for (eye, camera) in cameras.iter().enumerate() {
                    let depth = match (&swapchain.depth, depth_image) {
                        (EyeDepth::Runtime(depth), Some(index)) => &depth.layer_views[index][eye],
                        (EyeDepth::Own { layers, .. }, _) => &layers[eye],
                        (EyeDepth::Runtime(_), None) => unreachable!("acquired above"),
                    };
                    self.renderer.render(
                        &self.gpu.queue,
                        &mut encoder,
                        ViewTarget {
                            view: eye,
                            colour: &swapchain.colour.layer_views[image][eye],
                            depth,
                            timestamps: self.timer.as_ref().map(|timer| timer.writes(eye)),
                            keep_depth: depth_image.is_some(),
                        },
                        camera,
                    );
                }
                render::MAX_VIEWS
            }
        };
        if let Some(timer) = &self.timer {
            timer.resolve(&mut encoder, passes);
        }
        self.since_readback += 1;
        // Now and then both eyes are read back for --screenshot; the last
        // ones read are written when headset mode ends.
        let readbacks: Vec<_> = if options.screenshot.is_some() && self.since_readback >= 20 {
            self.since_readback = 0;
            (0..render::MAX_VIEWS)
                .map(|layer| {
                    let eye = transform_joint(&play_to_room, joint_from(views[layer].pose));
                    let pending = render::copy_layer_for_readback(
                        &self.gpu.device,
                        &mut encoder,
                        &swapchain.colour.textures[image],
                        layer as u32,
                        &swapchain.colour.layer_views[image][layer],
                    );
                    (eye, views[layer].fov, pending)
                })
                .collect()
        } else {
            Vec::new()
        };
        self.gpu.queue.submit([encoder.finish()]);
        swapchain
            .colour
            .handle
            .release_image()
            .context("releasing the swapchain image")?;
        if let EyeDepth::Runtime(depth) = &mut swapchain.depth {
            depth
                .handle
                .release_image()
                .context("releasing the depth swapchain image")?;
        }
        let rect = xr::Rect2Di {
            offset: xr::Offset2Di { x: 0, y: 0 },
            extent: xr::Extent2Di {
                width: swapchain.width as i32,
                height: swapchain.height as i32,
            },
        };
        let depth_infos: Vec<DepthInfo> = match &swapchain.depth {
            EyeDepth::Runtime(depth) => (0..views.len() as u32)
                .map(|eye| DepthInfo::new(&depth.handle, eye, rect))
                .collect(),
            EyeDepth::Own { .. } => Vec::new(),
        };
        let projection_views: Vec<_> = views
            .iter()
            .enumerate()
            .map(|(eye, view)| {
                let projection = xr::CompositionLayerProjectionView::new()
                    .pose(view.pose)
                    .fov(view.fov)
                    .sub_image(
                        xr::SwapchainSubImage::new()
                            .swapchain(&swapchain.colour.handle)
                            .image_array_index(eye as u32)
                            .image_rect(rect),
                    );
                match depth_infos.get(eye) {
                    Some(depth) => layers::with_depth(projection, depth),
                    None => projection,
                }
            })
            .collect();
        self.frame_stream
            .end(
                time,
                self.blend_mode,
                &[&xr::CompositionLayerProjection::new()
                    .space(&self.space)
                    .views(&projection_views)],
            )
            .context("ending the frame")?;
        report.frame_cpu.push(cpu_started.elapsed());
        report.frame_wall.push(wall_started.elapsed());
        report.frames_rendered += 1;

        // Measurements wait for the GPU, after the frame is handed over.
        if let Some(timer) = &self.timer
            && let Some(gpu_time) = timer.read(&self.gpu.device, passes)
        {
            report.frame_gpu.push(gpu_time);
        }
        if !readbacks.is_empty() {
            let format = swapchain.format;
            let mut eyes = Vec::with_capacity(readbacks.len());
            for (eye, fov, pending) in readbacks {
                let mut pixels = pending
                    .finish(&self.gpu.device)
                    .context("reading an eye image back")?;
                if matches!(
                    format,
                    wgpu::TextureFormat::Bgra8UnormSrgb | wgpu::TextureFormat::Bgra8Unorm
                ) {
                    for pixel in pixels.chunks_exact_mut(4) {
                        pixel.swap(0, 2);
                    }
                }
                eyes.push(EyeImage { pixels, eye, fov });
            }
            self.last_eyes = eyes;
        }
        Ok(requests)
    }

    /// The hands on the shared objects this frame: squeezing (or pinching,
    /// or closing a tracked hand) within [`REACH`] of one grabs it, it follows
    /// the hand, opening throws it; then this visitor's holds and throws go
    /// out. Returns the objects a hand would take now (drawn lighter).
    fn carry_objects(
        &mut self,
        scene: &mut RoomScene,
        play_to_room: &Mat4,
        hands: &[HandSample; 2],
        net: &Net,
        started: Instant,
    ) -> Vec<String> {
        if scene.own_slot().is_none() {
            self.grabs.clear();
            return Vec::new();
        }
        let now = started.elapsed().as_secs_f64();
        let inputs = [0, 1].map(|hand| grab_input(play_to_room, &hands[hand]));
        let objects = scene.objects_mut();
        let in_hands: Vec<String> = (0..2)
            .filter_map(|hand| self.grabs.held(hand).map(str::to_owned))
            .collect();
        let reachable = |point: Vec3| {
            let id = objects.nearest_grabbable(point.to_array(), REACH, now)?;
            let shown = objects.shown(&id, now)?;
            // This visitor's own throw in flight is not caught again (the
            // objects model simulates it to its rest).
            if shown.held_by_me && !in_hands.contains(&id) {
                return None;
            }
            Some(Reachable {
                object_id: id,
                pose: GrabPose {
                    position: Vec3::from(shown.position),
                    orientation: Quat::from_array(shown.orientation),
                },
                resting: shown.resting,
            })
        };
        let in_reach: Vec<String> = inputs
            .iter()
            .enumerate()
            .filter(|(hand, _)| self.grabs.held(*hand).is_none())
            .filter_map(|(_, input)| reachable(input.grip?.position))
            .map(|reachable| reachable.object_id)
            .collect();
        let actions = self.grabs.update(&inputs, reachable);
        for action in actions {
            match action {
                GrabAction::Grab { hand, object_id } => {
                    if net.grab(objects, &object_id, now) {
                        println!("xr: hand {hand} grabs {object_id}");
                    } else {
                        self.grabs.forget(&object_id);
                    }
                }
                GrabAction::ClosedEmpty { at, .. } => {
                    // Reaching for what someone else holds: say who.
                    if let Some(object) = objects.displayed(now).find(|object| {
                        object.holder.as_ref().is_some_and(|h| !h.throwing)
                            && !object.held_by_me
                            && Vec3::from(object.position).distance(Vec3::from(at))
                                - collision_radius(object.kind)
                                <= REACH
                    }) {
                        self.status = held_by(&object.id, object.holder.as_ref());
                        println!("xr: {}", self.status);
                    }
                }
                GrabAction::Hold {
                    object_id,
                    position,
                    orientation,
                    ..
                } => objects.hold_at(&object_id, position, orientation, now),
                GrabAction::Release { hand, object_id } => {
                    net.release(objects, &object_id, now);
                    println!("xr: hand {hand} throws {object_id}");
                }
            }
        }
        // A refused grab, or someone catching what a hand held, frees the hand.
        for hand in 0..2 {
            if let Some(id) = self.grabs.held(hand).map(str::to_owned)
                && !objects
                    .shown(&id, now)
                    .is_some_and(|object| object.held_by_me)
            {
                self.grabs.forget(&id);
            }
        }
        net.pump_objects(objects, now);
        in_reach
    }

    fn recommended_eye_size(&self) -> Result<(u32, u32)> {
        let views = self
            .runtime
            .instance
            .enumerate_view_configuration_views(self.runtime.system, VIEW_TYPE)
            .context("asking the runtime for the eye image size")?;
        let view = views
            .first()
            .context("the runtime reports no views for a stereo headset")?;
        Ok((
            view.recommended_image_rect_width,
            view.recommended_image_rect_height,
        ))
    }
}

fn create_session(
    runtime: &Runtime,
    gpu: &XrGpu,
) -> Result<(
    xr::Session<xr::Vulkan>,
    xr::FrameWaiter,
    xr::FrameStream<xr::Vulkan>,
)> {
    Ok(vulkan::create_session(
        &runtime.instance,
        runtime.system,
        gpu,
    )?)
}

/// STAGE when the runtime has it, else LOCAL_FLOOR, else LOCAL with the floor
/// assumed [`ASSUMED_EYE_HEIGHT`] below where the headset started.
fn play_space(session: &xr::Session<xr::Vulkan>) -> Result<(xr::Space, &'static str)> {
    let offered = session.enumerate_reference_spaces()?;
    let (kind, pose, name) = if offered.contains(&xr::ReferenceSpaceType::STAGE) {
        (xr::ReferenceSpaceType::STAGE, xr::Posef::IDENTITY, "STAGE")
    } else if offered.contains(&xr::ReferenceSpaceType::LOCAL_FLOOR) {
        (
            xr::ReferenceSpaceType::LOCAL_FLOOR,
            xr::Posef::IDENTITY,
            "LOCAL_FLOOR",
        )
    } else {
        let mut pose = xr::Posef::IDENTITY;
        pose.position.y = -ASSUMED_EYE_HEIGHT;
        (xr::ReferenceSpaceType::LOCAL, pose, "LOCAL (floor assumed)")
    };
    Ok((session.create_reference_space(kind, pose)?, name))
}

fn state_from_xr(state: xr::SessionState) -> SessionState {
    match state {
        xr::SessionState::IDLE => SessionState::Idle,
        xr::SessionState::READY => SessionState::Ready,
        xr::SessionState::SYNCHRONIZED => SessionState::Synchronized,
        xr::SessionState::VISIBLE => SessionState::Visible,
        xr::SessionState::FOCUSED => SessionState::Focused,
        xr::SessionState::STOPPING => SessionState::Stopping,
        xr::SessionState::LOSS_PENDING => SessionState::LossPending,
        xr::SessionState::EXITING => SessionState::Exiting,
        _ => SessionState::Unknown,
    }
}

fn joint_from(pose: xr::Posef) -> Joint {
    let o = pose.orientation;
    let p = pose.position;
    Joint {
        position: [p.x, p.y, p.z],
        orientation: Quat::from_xyzw(o.x, o.y, o.z, o.w).normalize().to_array(),
    }
}

fn pose_from(joint: Joint) -> Pose {
    Pose::new(
        Vec3::from(joint.position),
        Quat::from_array(joint.orientation),
    )
}

fn transform_joint(play_to_room: &Mat4, joint: Joint) -> Joint {
    let (_, rotation, translation) = (*play_to_room
        * Mat4::from_rotation_translation(
            Quat::from_array(joint.orientation),
            Vec3::from(joint.position),
        ))
    .to_scale_rotation_translation();
    Joint {
        position: translation.to_array(),
        orientation: rotation.normalize().to_array(),
    }
}

/// This visitor's pose in the room: head from the headset; each hand from the
/// tracked wrist or the controller grip, hidden when neither is tracked.
fn own_pose(play_to_room: &Mat4, head: Joint, hands: &[HandSample; 2]) -> AvatarPose {
    let head = transform_joint(play_to_room, head);
    let mut flags = 0;
    let mut hand = |sample: &HandSample, tracked_flag: u8| match sample.grip {
        Some(grip) => {
            flags |= tracked_flag;
            if sample.hand_tracked {
                flags |= PoseFlags::HAND_TRACKING;
            }
            transform_joint(play_to_room, joint_from(grip))
        }
        None => head,
    };
    let left = hand(&hands[0], PoseFlags::LEFT_TRACKED);
    let right = hand(&hands[1], PoseFlags::RIGHT_TRACKED);
    AvatarPose {
        head,
        left,
        right,
        flags: PoseFlags(flags),
    }
}

/// One hand for grabbing, in the room: a controller grips at its grip pose
/// with its squeeze; a tracked hand at its palm (turned as its wrist) with
/// its pinch or fist.
fn grab_input(play_to_room: &Mat4, hand: &HandSample) -> HandGrabInput {
    let Some(grip) = hand.grip else {
        return HandGrabInput::default();
    };
    let mut joint = joint_from(grip);
    if hand.hand_tracked
        && let Some(palm) = hand.hand_point
    {
        joint.position = palm;
    }
    // A runtime may report joints for a hand holding a controller: either
    // closing grabs.
    let strength = hand.squeeze.max(hand.hand_closure);
    let room = transform_joint(play_to_room, joint);
    HandGrabInput {
        grip: Some(GrabPose {
            position: Vec3::from(room.position),
            orientation: Quat::from_array(room.orientation),
        }),
        strength,
    }
}

/// What the panel says when a grab is refused.
fn held_by(object_id: &str, holder: Option<&roomscale_protocol::objects::ObjectHolder>) -> String {
    match holder {
        Some(holder) => format!(
            "{} holds {object_id}",
            tagged(&holder.name, &holder.user_id)
        ),
        None => format!("someone else holds {object_id}"),
    }
}

/// The camera of one eye: its pose in the play space, carried into the room.
fn eye_camera(play_to_room: &Mat4, view: &xr::View) -> Camera {
    let eye = transform_joint(play_to_room, joint_from(view.pose));
    let fov = view.fov;
    Camera::from_joint(
        &eye,
        render::projection_from_fov(
            fov.angle_left,
            fov.angle_right,
            fov.angle_up,
            fov.angle_down,
        ),
    )
}

/// The teleport arc (room points) as line segments.
fn arc_lines(arc: &[Vec3]) -> Vec<LineVertex> {
    let colour = [0.4, 1.0, 0.5, 0.9];
    arc.windows(2)
        .flat_map(|pair| {
            pair.iter().map(|point| LineVertex {
                position: point.to_array(),
                colour,
            })
        })
        .collect()
}

/// `count` avatars standing in rows of ten ahead of the play space, for
/// measuring how the frame scales with a full room.
fn extra_avatars(count: usize) -> Vec<AvatarInstance> {
    (0..count)
        .map(|i| {
            let x = (i % 10) as f32 * 0.8 - 3.6;
            let z = -2.0 - (i / 10) as f32 * 0.8;
            let joint = |dx: f32, y: f32| Joint {
                position: [x + dx, y, z],
                orientation: [0.0, 0.0, 0.0, 1.0],
            };
            AvatarInstance {
                pose: AvatarPose {
                    head: joint(0.0, 1.65),
                    left: joint(-0.3, 1.1),
                    right: joint(0.3, 1.1),
                    flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
                },
                colour: [0.8, 0.4, 0.2],
            }
        })
        .collect()
}
