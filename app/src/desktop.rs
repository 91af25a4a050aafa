//! Desktop mode: a winit window showing the room through the shared renderer,
//! mouse-look (hold the right button) and WASD to walk, and an egui overlay with
//! the room browser (list, create, join), the people list (with the owner's
//! and moderators' controls on each person, for them only), chat (older
//! history on demand) and leave. When the server ends the visit (removed, room
//! deleted) the window says why and goes back to the room browser.
//!
//! Shared objects: press the left mouse button on one to pick it up (the ray
//! from the cursor against a sphere around each object), drag to move it on
//! the plane facing the camera at the depth where it was picked up, and let
//! go to throw it with the drag's velocity ([`MouseGrab`], plain logic). A
//! grab someone else's hold refuses says who holds it, beside the cursor.
//!
//! The window runs on the main thread; the room client runs on a small tokio
//! runtime. They talk through two channels, so a slow network never stalls a
//! frame.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use glam::{Quat, Vec3};
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{Window, WindowId};

use roomscale_protocol::events::ModeratePush;
use roomscale_protocol::presence::Role;

use crate::client::{Identity, RoomListing, RoomUpdate, ServerUrl};
use crate::net::{Net, NetCommand, NetEvent};
use crate::objects::{GrabOutcome, ObjectReply, ShownObject};
use crate::render::{
    self, AvatarInstance, Camera, EguiPainter, ObjectInstance, Renderer, ViewTarget,
};
use crate::scene::{RoomScene, closed_line, tagged};
use crate::voice::devices::{InputChoice, OutputChoice};
use crate::voice_controls::VoiceControls;
use roomscale_physics::collision_radius;
use roomscale_protocol::objects::{ObjectHolder, ObjectKind};

#[derive(Debug)]
pub struct DesktopOptions {
    pub server: ServerUrl,
    pub identity: Identity,
    /// Join this room at start instead of showing the room browser.
    pub room_id: Option<String>,
    /// The OpenXR runtime with a headset, when one is there: the room
    /// browser then offers to join each room in the headset.
    pub headset: Option<String>,
}

/// How desktop mode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesktopExit {
    /// The window was closed.
    Closed,
    /// The visitor asked to go into this room in the headset.
    EnterHeadset { room_id: String },
}

pub fn run(options: DesktopOptions) -> Result<DesktopExit> {
    let net = Net::start(options.server.clone(), options.identity.clone())?;
    net.send(NetCommand::RefreshRooms);
    if let Some(room) = &options.room_id {
        net.send(NetCommand::Join(room.clone()));
    }
    let event_loop = EventLoop::new().context(
        "no display to open a window on (set DISPLAY or WAYLAND_DISPLAY, or run `roomscale join <room-url> --headless`)",
    )?;
    let mut app = DesktopApp {
        server: options.server,
        net,
        window: None,
        ui: UiState {
            headset: options.headset,
            ..UiState::default()
        },
        walker: Walker::default(),
        voice: VoiceControls::default(),
        scene: RoomScene::default(),
        started: Instant::now(),
        last_frame: Instant::now(),
        mouse: MouseGrab::default(),
    };
    event_loop.run_app(&mut app).context("running the window")?;
    app.net.shut_down(std::time::Duration::from_secs(2));
    Ok(match app.ui.enter_headset {
        Some(room_id) => DesktopExit::EnterHeadset { room_id },
        None => DesktopExit::Closed,
    })
}

#[derive(Default)]
struct UiState {
    rooms: Vec<RoomListing>,
    new_room_name: String,
    /// The room's name while in one.
    joined: Option<String>,
    chat_input: String,
    status: String,
    /// The OpenXR runtime with a headset, when one is there.
    headset: Option<String>,
    /// Set when the visitor picks a room to enter in the headset: the
    /// window closes and headset mode takes over.
    enter_headset: Option<String>,
    /// Why the server ended the last visit, shown over the room browser
    /// until dismissed.
    ended: Option<String>,
}

/// The desktop visitor's own body: walks on the floor, looks with yaw and pitch.
struct Walker {
    position: Vec3,
    yaw: f32,
    pitch: f32,
    keys: [bool; 4], // W, A, S, D
    looking: bool,
    last_cursor: Option<(f64, f64)>,
}

impl Default for Walker {
    fn default() -> Self {
        Walker {
            position: Vec3::new(0.0, 1.65, 3.0),
            yaw: 0.0,
            pitch: 0.0,
            keys: [false; 4],
            looking: false,
            last_cursor: None,
        }
    }
}

impl Walker {
    const SPEED: f32 = 1.6;

    fn step(&mut self, dt: f32) {
        let forward = Quat::from_rotation_y(self.yaw) * Vec3::NEG_Z;
        let right = Quat::from_rotation_y(self.yaw) * Vec3::X;
        let [w, a, s, d] = self.keys.map(|k| if k { 1.0 } else { 0.0 });
        let motion = forward * (w - s) + right * (d - a);
        if motion.length_squared() > 0.0 {
            self.position += motion.normalize() * Self::SPEED * dt;
        }
    }

    fn orientation(&self) -> Quat {
        Quat::from_rotation_y(self.yaw) * Quat::from_rotation_x(self.pitch)
    }

    fn pose(&self) -> AvatarPose {
        let body = Quat::from_rotation_y(self.yaw);
        let hand = |side: f32| Joint {
            position: (self.position + body * Vec3::new(side * 0.25, -0.55, -0.2)).to_array(),
            orientation: body.to_array(),
        };
        AvatarPose {
            head: Joint {
                position: self.position.to_array(),
                orientation: self.orientation().to_array(),
            },
            left: hand(-1.0),
            right: hand(1.0),
            flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
        }
    }
}

struct WindowState {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    device: wgpu::Device,
    queue: wgpu::Queue,
    config: wgpu::SurfaceConfiguration,
    depth: wgpu::TextureView,
    renderer: Renderer,
    egui: egui_winit::State,
    egui_painter: EguiPainter,
}

struct DesktopApp {
    server: ServerUrl,
    net: Net,
    window: Option<WindowState>,
    ui: UiState,
    walker: Walker,
    voice: VoiceControls,
    scene: RoomScene,
    started: Instant,
    last_frame: Instant,
    mouse: MouseGrab,
}

/// Objects smaller than this are picked as if they were this big (radius,
/// metres): a marker's 1 cm collision radius is too thin to hit with a cursor.
const MIN_PICK_RADIUS: f32 = 0.04;
/// How long a refused grab's notice stays beside the cursor, seconds.
const TOAST_SECONDS: f64 = 2.5;

/// The left mouse button on shared objects: what the cursor is over, the
/// object being dragged and how, and the last refusal to show.
#[derive(Debug, Default)]
struct MouseGrab {
    /// The cursor, physical pixels in the window.
    cursor: Option<(f64, f64)>,
    /// Presses and releases since the last frame (handled there, where the
    /// camera and the objects are known).
    pressed: bool,
    released: bool,
    drag: Option<Drag>,
    /// A refused grab: what to say, and until when (local seconds).
    toast: Option<(String, f64)>,
}

/// An object being dragged.
#[derive(Debug, Clone, PartialEq)]
struct Drag {
    object_id: String,
    /// Distance from the camera along its view direction to the plane the
    /// object moves on.
    depth: f32,
    /// From the point under the cursor on that plane to the object's centre.
    offset: Vec3,
    /// The object's orientation when picked up; dragging does not turn it.
    orientation: [f32; 4],
    kind: ObjectKind,
}

/// The object whose pick sphere the ray (origin, unit direction) enters
/// first, with the distance along the ray.
fn pick(
    origin: Vec3,
    direction: Vec3,
    objects: impl IntoIterator<Item = ShownObject>,
) -> Option<(ShownObject, f32)> {
    objects
        .into_iter()
        .filter_map(|object| {
            let radius = collision_radius(object.kind).max(MIN_PICK_RADIUS);
            let to_centre = Vec3::from(object.position) - origin;
            let along = to_centre.dot(direction);
            let miss_squared = to_centre.length_squared() - along * along;
            let inside = radius * radius - miss_squared;
            if inside < 0.0 {
                return None;
            }
            let entry = along - inside.sqrt();
            (entry > 0.0).then_some((object, entry))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The camera's view direction (its -Z), room coordinates.
fn forward(camera: &Camera) -> Vec3 {
    (camera.view.inverse().z_axis.truncate() * -1.0).normalize()
}

/// Where the ray through `ndc` meets the plane facing the camera `depth`
/// ahead of it.
fn on_plane(camera: &Camera, ndc: [f32; 2], depth: f32) -> Vec3 {
    let (origin, direction) = camera.ray(ndc);
    let ahead = direction.dot(forward(camera)).max(1e-3);
    origin + direction * (depth / ahead)
}

impl Drag {
    /// Picks up `object` under the cursor at `ndc`: it moves on the plane
    /// through its centre, keeping its offset from the cursor.
    fn start(camera: &Camera, ndc: [f32; 2], object: &ShownObject) -> Drag {
        let centre = Vec3::from(object.position);
        let depth = (centre - camera.position()).dot(forward(camera));
        let under_cursor = on_plane(camera, ndc, depth);
        Drag {
            object_id: object.id.clone(),
            depth,
            offset: centre - under_cursor,
            orientation: object.orientation,
            kind: object.kind,
        }
    }

    /// Where the object's centre goes with the cursor at `ndc`: on the plane,
    /// never below the floor.
    fn centre(&self, camera: &Camera, ndc: [f32; 2]) -> Vec3 {
        let mut centre = on_plane(camera, ndc, self.depth) + self.offset;
        centre.y = centre.y.max(collision_radius(self.kind));
        centre
    }
}

/// Where the hand of a visitor whose head is at `head` is shown holding
/// something at `object`: on it, or as far towards it as an arm reaches.
fn reaching_hand(head: [f32; 3], object: [f32; 3]) -> [f32; 3] {
    let head = Vec3::from(head);
    (head + (Vec3::from(object) - head).clamp_length_max(ARM_REACH)).to_array()
}

/// How far from the head a hand is shown reaching, metres.
const ARM_REACH: f32 = 0.8;

/// A refusal as the cursor's notice says it.
fn held_by(holder: Option<&ObjectHolder>) -> String {
    match holder {
        Some(holder) => format!("{} holds that", tagged(&holder.name, &holder.user_id)),
        None => "someone else holds that".into(),
    }
}

fn depth_view(device: &wgpu::Device, config: &wgpu::SurfaceConfiguration) -> wgpu::TextureView {
    device
        .create_texture(&wgpu::TextureDescriptor {
            label: Some("window depth"),
            size: wgpu::Extent3d {
                width: config.width,
                height: config.height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: render::DEPTH_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        })
        .create_view(&Default::default())
}

impl WindowState {
    fn new(event_loop: &ActiveEventLoop) -> Result<WindowState> {
        let attributes = Window::default_attributes()
            .with_title("Roomscale")
            .with_inner_size(winit::dpi::LogicalSize::new(1280, 720));
        let window = Arc::new(
            event_loop
                .create_window(attributes)
                .context("opening the window")?,
        );
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let surface = instance
            .create_surface(window.clone())
            .context("creating the window surface")?;
        let adapter = pollster(instance.request_adapter(&wgpu::RequestAdapterOptions {
            compatible_surface: Some(&surface),
            ..Default::default()
        }))
        .context("no graphics adapter can draw into this window; install a Vulkan driver (mesa-vulkan-drivers)")?;
        let (device, queue) = pollster(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .context("opening the graphics device")?;
        let size = window.inner_size();
        let mut config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .context("the window surface is not supported by this adapter")?;
        // The renderer writes linear colour; an sRGB surface encodes it.
        config.format = config.format.add_srgb_suffix();
        surface.configure(&device, &config);
        let renderer = Renderer::new(&device, config.format);
        let egui_ctx = egui::Context::default();
        let egui = egui_winit::State::new(
            egui_ctx,
            egui::ViewportId::ROOT,
            &window,
            Some(window.scale_factor() as f32),
            None,
            None,
        );
        let egui_painter = EguiPainter::new(&device, config.format);
        let depth = depth_view(&device, &config);
        Ok(WindowState {
            window,
            surface,
            device,
            queue,
            config,
            depth,
            renderer,
            egui,
            egui_painter,
        })
    }

    fn resize(&mut self, width: u32, height: u32) {
        self.config.width = width.max(1);
        self.config.height = height.max(1);
        self.surface.configure(&self.device, &self.config);
        self.depth = depth_view(&self.device, &self.config);
    }
}

impl ApplicationHandler for DesktopApp {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        match WindowState::new(event_loop) {
            Ok(state) => self.window = Some(state),
            Err(error) => {
                eprintln!("roomscale: {error:#}");
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        let Some(state) = self.window.as_mut() else {
            return;
        };
        let consumed = state.egui.on_window_event(&state.window, &event).consumed;
        if let WindowEvent::CursorMoved { position, .. } = &event {
            self.mouse.cursor = Some((position.x, position.y));
        }
        match event {
            WindowEvent::CloseRequested => {
                event_loop.exit();
            }
            WindowEvent::Resized(size) => state.resize(size.width, size.height),
            WindowEvent::RedrawRequested => self.frame(),
            WindowEvent::KeyboardInput { event, .. } if !consumed => {
                let pressed = event.state == ElementState::Pressed;
                let index = match event.physical_key {
                    PhysicalKey::Code(KeyCode::KeyW) => Some(0),
                    PhysicalKey::Code(KeyCode::KeyA) => Some(1),
                    PhysicalKey::Code(KeyCode::KeyS) => Some(2),
                    PhysicalKey::Code(KeyCode::KeyD) => Some(3),
                    _ => None,
                };
                if let Some(index) = index {
                    self.walker.keys[index] = pressed;
                }
                // Push-to-talk: hold V.
                if event.physical_key == PhysicalKey::Code(KeyCode::KeyV) {
                    self.voice.talk(pressed, &self.net);
                }
            }
            WindowEvent::MouseInput {
                button: MouseButton::Right,
                state: pressed,
                ..
            } => {
                self.walker.looking = pressed == ElementState::Pressed && !consumed;
                self.walker.last_cursor = None;
            }
            WindowEvent::MouseInput {
                button: MouseButton::Left,
                state: pressed,
                ..
            } => match pressed {
                // A press on a window of the overlay is the overlay's; a
                // release always ends a drag.
                ElementState::Pressed if !consumed => self.mouse.pressed = true,
                ElementState::Pressed => {}
                ElementState::Released => self.mouse.released = true,
            },
            WindowEvent::CursorLeft { .. } => self.mouse.cursor = None,
            // A release outside the window never arrives: losing focus lets go.
            WindowEvent::Focused(false) => self.mouse.released = true,
            WindowEvent::CursorMoved { position, .. } if self.walker.looking => {
                if let Some((x, y)) = self.walker.last_cursor {
                    self.walker.yaw -= (position.x - x) as f32 * 0.005;
                    self.walker.pitch =
                        (self.walker.pitch - (position.y - y) as f32 * 0.005).clamp(-1.4, 1.4);
                }
                self.walker.last_cursor = Some((position.x, position.y));
            }
            _ => {}
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        if self.ui.enter_headset.is_some() {
            event_loop.exit();
            return;
        }
        if let Some(state) = &self.window {
            state.window.request_redraw();
        }
    }
}

impl DesktopApp {
    /// The left button on shared objects this frame: a press picks up the
    /// object under the cursor, a drag carries it, a release throws it; and
    /// every frame this visitor's holds and throws go out. Returns the
    /// object under the cursor (drawn highlighted).
    fn mouse_on_objects(&mut self, camera: &Camera, size: (u32, u32), now: f64) -> Option<String> {
        let pressed = std::mem::take(&mut self.mouse.pressed);
        let released = std::mem::take(&mut self.mouse.released);
        if self.ui.joined.is_none() {
            self.mouse.drag = None;
            return None;
        }
        let ndc = self.mouse.cursor.map(|(x, y)| {
            [
                (2.0 * x / f64::from(size.0) - 1.0) as f32,
                (1.0 - 2.0 * y / f64::from(size.1)) as f32,
            ]
        });
        let objects = self.scene.objects_mut();
        // A grab refused, or a catch by someone else, ends the drag.
        if let Some(drag) = &self.mouse.drag
            && !objects
                .shown(&drag.object_id, now)
                .is_some_and(|object| object.held_by_me)
        {
            self.mouse.drag = None;
        }
        let under_cursor = ndc.and_then(|ndc| {
            let (origin, direction) = camera.ray(ndc);
            pick(origin, direction, objects.displayed(now)).map(|(object, _)| (ndc, object))
        });
        if pressed
            && self.mouse.drag.is_none()
            && let Some((ndc, object)) = &under_cursor
        {
            if self.net.grab(objects, &object.id, now) {
                self.mouse.drag = Some(Drag::start(camera, *ndc, object));
            } else if let Some(holder) = object.holder.as_ref().filter(|h| !h.throwing) {
                self.mouse.toast = Some((held_by(Some(holder)), now + TOAST_SECONDS));
            }
        }
        if let (Some(drag), Some(ndc)) = (&self.mouse.drag, ndc) {
            let centre = drag.centre(camera, ndc);
            objects.hold_at(&drag.object_id, centre.to_array(), drag.orientation, now);
        }
        if released && let Some(drag) = self.mouse.drag.take() {
            self.net.release(objects, &drag.object_id, now);
        }
        self.net.pump_objects(objects, now);
        match &self.mouse.drag {
            Some(drag) => Some(drag.object_id.clone()),
            None => under_cursor.map(|(_, object)| object.id),
        }
    }

    fn drain_network(&mut self) {
        let now = self.started.elapsed().as_secs_f64();
        while let Ok(event) = self.net.events.try_recv() {
            match event {
                NetEvent::Rooms(rooms) => self.ui.rooms = rooms,
                NetEvent::Joined {
                    room_name, slot, ..
                } => {
                    self.ui.status = format!("in \"{room_name}\"");
                    self.ui.ended = None;
                    self.ui.joined = Some(room_name);
                    self.scene.left();
                    self.scene.joined(slot);
                }
                NetEvent::Left => {
                    self.ui.joined = None;
                    self.scene.left();
                    self.ui.status = "left the room".into();
                }
                NetEvent::Status(message) => self.ui.status = message,
                NetEvent::History { before_id, page } => self.scene.older_page(before_id, page),
                NetEvent::Voice(monitor) => self.voice.joined(monitor, &self.net),
                NetEvent::Update(update) => {
                    match &update {
                        RoomUpdate::Joined { room, .. } => {
                            self.ui.status = format!("rejoined \"{}\"", room.name);
                        }
                        RoomUpdate::ConnectionLost { reason } => {
                            self.ui.status = format!("connection lost ({reason}); reconnecting");
                        }
                        RoomUpdate::ObjectReply(ObjectReply::Grab {
                            outcome: GrabOutcome::Held(holder),
                            ..
                        }) => {
                            self.mouse.toast =
                                Some((held_by(holder.as_ref()), now + TOAST_SECONDS));
                        }
                        RoomUpdate::Closed(why) => {
                            let message = closed_line(why);
                            self.ui.status = message.clone();
                            self.ui.ended = Some(message);
                            self.ui.joined = None;
                            self.scene.left();
                            self.net.send(NetCommand::RefreshRooms);
                            continue;
                        }
                        _ => {}
                    }
                    self.scene.apply(now, update);
                }
            }
        }
    }

    fn frame(&mut self) {
        self.drain_network();
        // A moderator's mute is this visitor's own from then on: given back,
        // the voice stays muted until they unmute (as the server keeps it).
        if self.scene.own_moderator_muted() && !self.voice.muted() {
            self.voice.set_muted(true, &self.net);
        }
        let dt = self.last_frame.elapsed().as_secs_f32().min(0.1);
        self.last_frame = Instant::now();
        self.walker.step(dt);
        let mut own = self.walker.pose();
        let now = self.started.elapsed().as_secs_f64();
        self.voice.place(&self.net, &self.scene, now, &own.head);
        let size = self
            .window
            .as_ref()
            .map_or((1, 1), |state| (state.config.width, state.config.height));
        let camera = Camera::from_joint(
            &own.head,
            render::perspective(70f32.to_radians(), size.0 as f32 / size.1 as f32),
        );
        let hovered = self.mouse_on_objects(&camera, size, now);
        // Others see the right hand reach for what the mouse carries.
        if let Some(drag) = &self.mouse.drag
            && let Some(object) = self.scene.objects().shown(&drag.object_id, now)
        {
            own.right.position = reaching_hand(own.head.position, object.position);
        }
        if self.ui.joined.is_some() {
            self.net.send(NetCommand::SetPose(own));
        }
        let objects: Vec<ObjectInstance> = self
            .scene
            .objects()
            .displayed(now)
            .map(|object| ObjectInstance::shown(&object, hovered.as_deref() == Some(&object.id)))
            .collect();
        let remote = self.scene.remote_avatars(now);
        let names: Vec<(glam::Vec3, String, bool)> = remote
            .iter()
            .map(|avatar| {
                (
                    avatar.name_tag_position(),
                    avatar.label.clone(),
                    avatar.speaking,
                )
            })
            .collect();
        let avatars: Vec<AvatarInstance> = remote.into_iter().map(|a| a.instance).collect();

        let Some(state) = self.window.as_mut() else {
            return;
        };
        // The frame first: without one there is nothing to draw into, and the UI
        // (whose texture updates must be applied once run) waits for the next.
        let frame = match state.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(frame)
            | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => frame,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                let (w, h) = (state.config.width, state.config.height);
                state.resize(w, h);
                return;
            }
            _ => return,
        };
        let input = state.egui.take_egui_input(&state.window);
        let server = self.server.to_string();
        let ui_state = &mut self.ui;
        let (net, scene, voice) = (&self.net, &self.scene, &mut self.voice);
        let toast = self
            .mouse
            .toast
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(text, _)| text.as_str());
        let cursor = self.mouse.cursor;
        let output = state.egui.egui_ctx().clone().run_ui(input, |ui| {
            name_tags(ui, &names, &camera);
            if let (Some(text), Some((x, y))) = (toast, cursor) {
                cursor_note(ui, text, (x as f32, y as f32));
            }
            overlay(ui, &server, ui_state, scene, voice, net)
        });
        let mut output = output;
        state
            .egui
            .handle_platform_output(&state.window, std::mem::take(&mut output.platform_output));

        let view = frame.texture.create_view(&Default::default());
        state
            .renderer
            .prepare(&state.device, &state.queue, &avatars);
        state
            .renderer
            .prepare_objects(&state.device, &state.queue, &objects);
        let mut encoder = state.device.create_command_encoder(&Default::default());
        state.renderer.render(
            &state.queue,
            &mut encoder,
            ViewTarget {
                view: 0,
                colour: &view,
                depth: &state.depth,
                timestamps: None,
                keep_depth: false,
            },
            &camera,
        );

        state.egui_painter.paint(
            &state.device,
            &state.queue,
            &mut encoder,
            state.egui.egui_ctx(),
            output,
            &view,
            [state.config.width, state.config.height],
            wgpu::LoadOp::Load,
        );
        state.queue.submit([encoder.finish()]);
        state.queue.present(frame);
    }
}

/// A short note beside the cursor (`at`, physical pixels), such as who holds
/// the object a grab was refused.
fn cursor_note(ui: &egui::Ui, text: &str, at: (f32, f32)) {
    let scale = ui.ctx().pixels_per_point();
    let painter = ui.ctx().layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("cursor note"),
    ));
    let at = egui::pos2(at.0 / scale + 14.0, at.1 / scale + 10.0);
    let galley = painter.layout_no_wrap(
        text.to_owned(),
        egui::FontId::proportional(15.0),
        egui::Color32::WHITE,
    );
    let rect = egui::Rect::from_min_size(at, galley.size()).expand(5.0);
    painter.rect_filled(rect, 5.0, egui::Color32::from_black_alpha(190));
    painter.galley(at, galley, egui::Color32::WHITE);
}

/// Each remote member's name above its head, projected like the scene, in a
/// green ring while they speak.
fn name_tags(ui: &egui::Ui, names: &[(glam::Vec3, String, bool)], camera: &Camera) {
    let screen = ui.ctx().content_rect();
    let painter = ui.ctx().layer_painter(egui::LayerId::background());
    let view_proj = camera.projection * camera.view;
    for (position, name, speaking) in names {
        let clip = view_proj * position.extend(1.0);
        if clip.w <= 0.0 {
            continue; // behind the viewer
        }
        let ndc = clip.truncate() / clip.w;
        let at = egui::pos2(
            screen.left() + (ndc.x + 1.0) * 0.5 * screen.width(),
            screen.top() + (1.0 - ndc.y) * 0.5 * screen.height(),
        );
        let rect = painter.text(
            at,
            egui::Align2::CENTER_BOTTOM,
            name,
            egui::FontId::proportional(16.0),
            egui::Color32::WHITE,
        );
        if *speaking {
            painter.rect_stroke(
                rect.expand(4.0),
                8.0,
                egui::Stroke::new(2.5, egui::Color32::from_rgb(80, 220, 120)),
                egui::StrokeKind::Outside,
            );
        }
    }
}

fn overlay(
    ui: &mut egui::Ui,
    server: &str,
    state: &mut UiState,
    scene: &RoomScene,
    voice: &mut VoiceControls,
    net: &Net,
) {
    let ctx = ui.ctx().clone();
    match &state.joined {
        None => {
            if let Some(ended) = state.ended.clone() {
                egui::Window::new("Your visit ended")
                    .anchor(egui::Align2::CENTER_TOP, [0.0, 20.0])
                    .collapsible(false)
                    .show(&ctx, |ui| {
                        ui.label(ended);
                        if ui.button("OK").clicked() {
                            state.ended = None;
                        }
                    });
            }
            egui::Window::new("Rooms")
                .default_pos([20.0, 20.0])
                .show(&ctx, |ui| {
                    ui.label(format!("Server: {server}"));
                    if let Some(runtime) = &state.headset {
                        ui.label(format!("Headset ready ({runtime})"));
                    }
                    if ui.button("Refresh").clicked() {
                        net.send(NetCommand::RefreshRooms);
                    }
                    ui.separator();
                    if state.rooms.is_empty() {
                        ui.label("No rooms yet.");
                    }
                    for room in &state.rooms {
                        ui.horizontal(|ui| {
                            ui.label(&room.name);
                            if ui.button("Join").clicked() {
                                net.send(NetCommand::Join(room.id.clone()));
                            }
                            if state.headset.is_some() && ui.button("Join in headset").clicked() {
                                state.enter_headset = Some(room.id.clone());
                            }
                        });
                    }
                    ui.separator();
                    ui.horizontal(|ui| {
                        ui.text_edit_singleline(&mut state.new_room_name);
                        if ui.button("Create room").clicked()
                            && !state.new_room_name.trim().is_empty()
                        {
                            net.send(NetCommand::CreateRoom(std::mem::take(
                                &mut state.new_room_name,
                            )));
                        }
                    });
                });
        }
        Some(room_name) => {
            egui::Window::new(format!("In {room_name}"))
                .default_pos([20.0, 20.0])
                .show(&ctx, |ui| {
                    ui.label("People");
                    let mut controls_shown = std::collections::HashSet::new();
                    for (user, meta) in scene.presence().members() {
                        let mut line =
                            format!("• {} ({:?})", tagged(&meta.name, user), meta.client_kind);
                        line.push_str(role_badge(scene, user, meta.role));
                        if meta.speaking {
                            line.push_str("  speaking");
                        }
                        if meta.moderator_muted {
                            line.push_str("  muted by a moderator");
                        } else if meta.muted {
                            line.push_str("  muted");
                        }
                        ui.horizontal(|ui| {
                            ui.label(line);
                            // One set of controls per person, however many
                            // connections they have.
                            if controls_shown.insert(user) {
                                moderation_controls(ui, scene, user, meta.moderator_muted, net);
                            }
                            // Per-person volume, while in voice.
                            if voice.in_voice() && Some(meta.slot) != scene.own_slot() {
                                let mut volume = voice.volume(user);
                                if ui
                                    .add(
                                        egui::Slider::new(&mut volume, 0.0..=2.0).show_value(false),
                                    )
                                    .changed()
                                {
                                    voice.set_volume(user, volume, net);
                                }
                            }
                        });
                    }
                    if scene.may_lock() {
                        let mut locked = scene.governance().locked;
                        if ui
                            .checkbox(&mut locked, "Lock the room (nobody new can join)")
                            .changed()
                        {
                            net.send(NetCommand::Moderate(ModeratePush::Lock { locked }));
                        }
                    } else if scene.governance().locked {
                        ui.label("The room is locked: nobody new can join.");
                    }
                    ui.separator();
                    voice_controls(ui, voice, scene.own_moderator_muted(), net);
                    ui.separator();
                    if ui.button("Leave").clicked() {
                        net.send(NetCommand::Leave);
                    }
                });
            egui::Window::new("Chat")
                .default_pos([20.0, 300.0])
                .show(&ctx, |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(200.0)
                        .stick_to_bottom(true)
                        .show(ui, |ui| {
                            if let Some(before_id) = scene.history_before()
                                && ui.small_button("Load older messages").clicked()
                            {
                                net.send(NetCommand::LoadOlderHistory(before_id));
                            }
                            for line in scene.chat() {
                                if line.id.is_some() {
                                    ui.label(line.display());
                                } else {
                                    ui.label(egui::RichText::new(line.display()).italics());
                                }
                            }
                        });
                    let response = ui.text_edit_singleline(&mut state.chat_input);
                    if response.lost_focus()
                        && ui.input(|i| i.key_pressed(egui::Key::Enter))
                        && !state.chat_input.trim().is_empty()
                    {
                        net.send(NetCommand::Chat(std::mem::take(&mut state.chat_input)));
                    }
                });
        }
    }
    if !state.status.is_empty() {
        egui::Window::new("Status")
            .anchor(egui::Align2::RIGHT_BOTTOM, [-10.0, -10.0])
            .title_bar(false)
            .show(&ctx, |ui| {
                ui.label(&state.status);
            });
    }
}

/// ` owner` / ` moderator` after a person's name, or nothing.
fn role_badge(scene: &RoomScene, user: &str, role: Role) -> &'static str {
    if role == Role::Owner || scene.governance().is_owner(user) {
        "  owner"
    } else if role == Role::Moderator || scene.is_moderator(user) {
        "  moderator"
    } else {
        ""
    }
}

/// Mute, remove and (for the owner) make moderator: only the buttons this
/// visitor may use on `user`.
fn moderation_controls(
    ui: &mut egui::Ui,
    scene: &RoomScene,
    user: &str,
    moderator_muted: bool,
    net: &Net,
) {
    let allowed = scene.allowed_on(user);
    if allowed.mute {
        let (label, hover) = if moderator_muted {
            (
                "Unmute",
                "Let them speak again; they stay muted until they unmute themselves",
            )
        } else {
            (
                "Mute",
                "Silence their voice for everyone; they cannot unmute themselves",
            )
        };
        if ui.small_button(label).on_hover_text(hover).clicked() {
            net.send(NetCommand::Moderate(ModeratePush::Mute {
                user_id: user.to_owned(),
                muted: !moderator_muted,
            }));
        }
    }
    if allowed.remove
        && ui
            .small_button("Remove")
            .on_hover_text("Send them out of the room; they cannot come back for a while")
            .clicked()
    {
        net.send(NetCommand::Moderate(ModeratePush::Remove {
            user_id: user.to_owned(),
        }));
    }
    if allowed.name_moderator {
        let moderator = scene.is_moderator(user);
        let label = if moderator {
            "Take moderator"
        } else {
            "Make moderator"
        };
        if ui.small_button(label).clicked() {
            net.send(NetCommand::Moderate(ModeratePush::Moderator {
                user_id: user.to_owned(),
                moderator: !moderator,
            }));
        }
    }
}

/// Join or leave voice, mute, push-to-talk (hold V) and the input meter.
/// While a moderator mutes this visitor, unmuting is not offered: it says why.
fn voice_controls(ui: &mut egui::Ui, voice: &mut VoiceControls, moderator_muted: bool, net: &Net) {
    ui.label(voice.status());
    ui.horizontal(|ui| {
        if voice.in_voice() {
            if ui.button("Leave voice").clicked() {
                voice.leave(net);
            }
            if moderator_muted {
                ui.label("Muted by a moderator")
                    .on_hover_text(crate::net::MODERATOR_MUTED);
            } else {
                let label = if voice.muted() { "Unmute" } else { "Mute" };
                if ui.button(label).clicked() {
                    voice.set_muted(!voice.muted(), net);
                }
            }
        } else if ui.button("Join voice").clicked() {
            voice.join(net);
        }
    });
    let mut push_to_talk = voice.push_to_talk;
    if ui
        .checkbox(&mut push_to_talk, "Push to talk (hold V)")
        .changed()
    {
        voice.set_push_to_talk(push_to_talk, net);
    }
    let mut muted_all = voice.muted_all();
    if ui.checkbox(&mut muted_all, "Mute everyone here").changed() {
        voice.set_muted_all(muted_all, net);
    }
    egui::CollapsingHeader::new("Voice settings").show(ui, |ui| {
        let mut processing = voice.processing();
        if ui
            .checkbox(
                &mut processing,
                "Echo cancellation, noise suppression, gain control",
            )
            .changed()
        {
            voice.set_processing(processing, net);
        }
        let devices = voice.devices().clone();
        let choose = |ui: &mut egui::Ui, label: &str, names: &[String], current: Option<String>| {
            let mut picked = None;
            egui::ComboBox::from_label(label)
                .selected_text(current.clone().unwrap_or_else(|| "default".into()))
                .show_ui(ui, |ui| {
                    if ui.selectable_label(current.is_none(), "default").clicked() {
                        picked = Some(None);
                    }
                    for name in names {
                        if ui
                            .selectable_label(current.as_deref() == Some(name), name)
                            .clicked()
                        {
                            picked = Some(Some(name.clone()));
                        }
                    }
                });
            picked
        };
        let current_input = match &voice.input {
            InputChoice::Named(name) => Some(name.clone()),
            _ => None,
        };
        if let Some(picked) = choose(ui, "Microphone", &devices.inputs, current_input) {
            voice.input = picked.map_or(InputChoice::Default, InputChoice::Named);
        }
        let current_output = match &voice.output {
            OutputChoice::Named(name) => Some(name.clone()),
            _ => None,
        };
        if let Some(picked) = choose(ui, "Speakers", &devices.outputs, current_output) {
            voice.output = picked.map_or(OutputChoice::Default, OutputChoice::Named);
        }
        ui.small("Devices apply when you next join voice.");
    });
    if voice.in_voice() {
        ui.add(
            egui::ProgressBar::new(voice.input_level())
                .desired_width(160.0)
                .text(if voice.transmitting() {
                    "mic"
                } else {
                    "mic (not sent)"
                }),
        );
    }
}

/// Blocks on a wgpu future during set-up (they resolve at once on native backends).
fn pollster<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egui_probe::{centre_of, click_at, collect_texts};
    use crate::scene::tests::room;
    use roomscale_protocol::events::{HistoryPage, RoomEvent, RoomEventBody};

    /// The overlay run by egui without a window or GPU.
    struct OverlayRun {
        ctx: egui::Context,
        ui: UiState,
        scene: RoomScene,
        voice: VoiceControls,
        net: Net,
    }

    impl OverlayRun {
        fn new(scene: RoomScene) -> (OverlayRun, tokio::sync::mpsc::UnboundedReceiver<NetCommand>) {
            let (net, sent) = Net::detached();
            let run = OverlayRun {
                ctx: egui::Context::default(),
                ui: UiState {
                    joined: Some("Room".into()),
                    ..UiState::default()
                },
                scene,
                voice: VoiceControls::default(),
                net,
            };
            (run, sent)
        }

        /// One frame; the texts shown and where.
        fn frame(&mut self, events: Vec<egui::Event>) -> Vec<(String, egui::Rect)> {
            let input = egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(
                    egui::Pos2::ZERO,
                    egui::vec2(1280.0, 720.0),
                )),
                events,
                ..Default::default()
            };
            let (ui_state, scene, voice, net) =
                (&mut self.ui, &self.scene, &mut self.voice, &self.net);
            let mut output = self.ctx.run_ui(input, |ui| {
                overlay(ui, "http://localhost:4000", ui_state, scene, voice, net)
            });
            output.textures_delta.clear();
            let mut texts = Vec::new();
            for clipped in output.shapes {
                collect_texts(&clipped.shape, &mut texts);
            }
            texts
        }

        fn shows(&mut self, label: &str) -> usize {
            // Windows settle their size over the first frames.
            self.frame(Vec::new());
            self.frame(Vec::new())
                .iter()
                .filter(|(text, _)| text == label)
                .count()
        }

        fn click(&mut self, label: &str) {
            self.frame(Vec::new());
            let texts = self.frame(Vec::new());
            let [press, release] = click_at(centre_of(&texts, label, 0));
            self.frame(press);
            self.frame(release);
        }
    }

    fn sent(commands: &mut tokio::sync::mpsc::UnboundedReceiver<NetCommand>) -> Vec<String> {
        std::iter::from_fn(|| commands.try_recv().ok())
            .map(|command| format!("{command:?}"))
            .collect()
    }

    fn shown(id: &str, kind: ObjectKind, position: [f32; 3]) -> ShownObject {
        ShownObject {
            id: id.into(),
            kind,
            colour: [1.0, 0.0, 0.0],
            position,
            orientation: [0.0, 0.0, 0.0, 1.0],
            holder: None,
            held_by_me: false,
            resting: true,
        }
    }

    fn camera() -> Camera {
        Camera::look_at(
            Vec3::new(0.0, 1.65, 0.0),
            Vec3::new(0.0, 0.8, -1.6),
            70f32.to_radians(),
            16.0 / 9.0,
        )
    }

    fn ndc_of(camera: &Camera, point: [f32; 3]) -> [f32; 2] {
        let ndc = camera.project(Vec3::from(point)).unwrap();
        [ndc.x, ndc.y]
    }

    #[test]
    fn the_cursor_picks_the_nearest_object_it_points_at() {
        let camera = camera();
        let near = shown("cube-1", ObjectKind::Cube, [0.0, 0.8, -1.3]);
        // Straight behind the cube as the camera sees it, further away.
        let behind = Vec3::from(near.position) + (Vec3::from(near.position) - camera.position());
        let far = shown("ball-1", ObjectKind::Ball, behind.to_array());
        let marker = shown("marker-1", ObjectKind::Marker, [0.4, 0.76, -1.6]);
        let all = || vec![far.clone(), near.clone(), marker.clone()];
        let (origin, direction) = camera.ray(ndc_of(&camera, near.position));
        assert_eq!(pick(origin, direction, all()).unwrap().0.id, "cube-1");
        // A marker is thin, but is picked 3 cm off its axis.
        let beside = [0.43, 0.76, -1.6];
        let (origin, direction) = camera.ray(ndc_of(&camera, beside));
        assert_eq!(pick(origin, direction, all()).unwrap().0.id, "marker-1");
        // Pointing at the floor between them picks nothing.
        let (origin, direction) = camera.ray(ndc_of(&camera, [0.2, 0.0, -1.0]));
        assert!(pick(origin, direction, all()).is_none());
    }

    #[test]
    fn a_drag_keeps_the_object_under_the_cursor_at_its_depth_and_above_the_floor() {
        let camera = camera();
        let cube = shown("cube-1", ObjectKind::Cube, [0.1, 0.8, -1.4]);
        // Picked up 2 cm off its centre.
        let grabbed_at = ndc_of(&camera, [0.12, 0.81, -1.4]);
        let drag = Drag::start(&camera, grabbed_at, &cube);
        let forward = forward(&camera);
        let depth = |p: Vec3| (p - camera.position()).dot(forward);
        // Not moved yet: where it was.
        let still = drag.centre(&camera, grabbed_at);
        assert!(still.distance(Vec3::from(cube.position)) < 1e-4, "{still}");
        // The cursor moves up and right: the object follows on its plane,
        // keeping its offset from the cursor.
        let moved = drag.centre(&camera, [grabbed_at[0] + 0.2, grabbed_at[1] + 0.3]);
        assert!((depth(moved) - depth(Vec3::from(cube.position))).abs() < 1e-4);
        assert!(moved.x > 0.2 && moved.y > 1.0, "{moved}");
        let cursor_point = on_plane(
            &camera,
            [grabbed_at[0] + 0.2, grabbed_at[1] + 0.3],
            drag.depth,
        );
        assert!((moved - cursor_point).distance(drag.offset) < 1e-5);
        // Dragged down past the floor, it stays on it.
        let low = drag.centre(&camera, [grabbed_at[0], -1.0]);
        assert!((low.y - 0.05).abs() < 1e-5, "{low}");
    }

    /// The desktop app without a window, in a room with one cube on the table.
    fn app_with_a_cube() -> (DesktopApp, tokio::sync::mpsc::UnboundedReceiver<NetCommand>) {
        let (net, sent) = Net::detached();
        let mut scene = RoomScene::default();
        scene.joined(4);
        scene.objects_mut().joined(
            4,
            &[roomscale_protocol::objects::ObjectSnapshot {
                object_id: "cube-1".into(),
                handle: 1,
                state: roomscale_protocol::objects::ObjectState {
                    kind: ObjectKind::Cube,
                    colour: "#ff0000".into(),
                    position: [0.0, 0.8, -1.3],
                    orientation: [0.0, 0.0, 0.0, 1.0],
                },
                holder: None,
            }],
        );
        let app = DesktopApp {
            server: ServerUrl::parse("http://localhost:4000").unwrap(),
            net,
            window: None,
            ui: UiState {
                joined: Some("Room".into()),
                ..UiState::default()
            },
            walker: Walker::default(),
            voice: VoiceControls::default(),
            scene,
            started: Instant::now(),
            last_frame: Instant::now(),
            mouse: MouseGrab::default(),
        };
        (app, sent)
    }

    #[test]
    fn pressing_on_an_object_grabs_it_dragging_carries_it_and_letting_go_throws_it() {
        let (mut app, mut commands) = app_with_a_cube();
        let camera = camera();
        let size = (1600, 900);
        let pixel = |ndc: [f32; 2]| {
            (
                f64::from((ndc[0] + 1.0) / 2.0 * 1600.0),
                f64::from((1.0 - ndc[1]) / 2.0 * 900.0),
            )
        };
        let on_cube = ndc_of(&camera, [0.0, 0.8, -1.3]);
        // Hovering shows which object a press would take.
        app.mouse.cursor = Some(pixel(on_cube));
        let hovered = app.mouse_on_objects(&camera, size, 0.0);
        assert_eq!(hovered.as_deref(), Some("cube-1"));
        app.mouse.pressed = true;
        app.mouse_on_objects(&camera, size, 0.1);
        let sent_now = sent(&mut commands);
        assert!(
            sent_now.contains(&r#"Grab("cube-1")"#.to_string()),
            "{sent_now:?}"
        );
        app.scene.objects_mut().on_grab_reply(
            "cube-1",
            crate::objects::GrabOutcome::Granted { handle: 1 },
            0.15,
        );
        // Dragged up: it follows, and its pose goes out in the pose push.
        for step in 1..=5 {
            let ndc = [on_cube[0], on_cube[1] + 0.05 * step as f32];
            app.mouse.cursor = Some(pixel(ndc));
            app.mouse_on_objects(&camera, size, 0.15 + 0.02 * f64::from(step));
        }
        let cube = app.scene.objects().shown("cube-1", 0.3).unwrap();
        assert!(cube.held_by_me && cube.position[1] > 0.9, "{cube:?}");
        assert!(
            sent(&mut commands)
                .iter()
                .any(|c| c.starts_with("ObjectPoses([ObjectPose { handle: 1")),
            "the held pose is sent"
        );
        // Let go: released, and it flies on upwards with the drag's velocity.
        app.mouse.released = true;
        app.mouse_on_objects(&camera, size, 0.27);
        assert!(sent(&mut commands).contains(&r#"Release("cube-1")"#.to_string()));
        assert!(app.mouse.drag.is_none());
        let at_release = app.scene.objects().shown("cube-1", 0.27).unwrap().position;
        app.mouse_on_objects(&camera, size, 0.32);
        let later = app.scene.objects().shown("cube-1", 0.32).unwrap().position;
        assert!(later[1] > at_release[1], "{at_release:?} -> {later:?}");
    }

    #[test]
    fn the_hand_reaches_for_a_carried_object_as_far_as_an_arm_goes() {
        let head = [0.0, 1.65, 0.0];
        assert_eq!(reaching_hand(head, [0.2, 1.4, -0.4]), [0.2, 1.4, -0.4]);
        let far = Vec3::from(reaching_hand(head, [0.0, 1.65, -3.0]));
        assert!(
            far.distance(Vec3::new(0.0, 1.65, -ARM_REACH)) < 1e-5,
            "{far}"
        );
    }

    #[test]
    fn a_grab_refused_for_a_holder_says_who_holds_it() {
        let (mut app, mut commands) = app_with_a_cube();
        app.scene
            .objects_mut()
            .on_holder(&roomscale_protocol::objects::ObjectHolderPush {
                object_id: "cube-1".into(),
                handle: 1,
                holder: Some(ObjectHolder {
                    user_id: "u-ada".into(),
                    name: "Ada".into(),
                    slot: 9,
                    throwing: false,
                }),
            });
        let camera = camera();
        let ndc = ndc_of(&camera, [0.0, 0.8, -1.3]);
        app.mouse.cursor = Some((
            f64::from((ndc[0] + 1.0) / 2.0 * 1600.0),
            f64::from((1.0 - ndc[1]) / 2.0 * 900.0),
        ));
        app.mouse.pressed = true;
        app.mouse_on_objects(&camera, (1600, 900), 1.0);
        assert!(app.mouse.drag.is_none());
        assert!(!sent(&mut commands).iter().any(|c| c.starts_with("Grab")));
        let (toast, until) = app.mouse.toast.clone().expect("a notice");
        assert_eq!(toast, format!("{} holds that", tagged("Ada", "u-ada")));
        assert!(until > 1.0);
    }

    #[test]
    fn the_owner_is_offered_every_control_and_each_sends_its_act() {
        let (mut window, mut commands) = OverlayRun::new(room(1));
        assert_eq!(window.shows("Make moderator"), 1, "on Mia, not on Mo");
        assert_eq!(window.shows("Take moderator"), 1, "on Mo");
        assert_eq!(window.shows("Remove"), 2, "Mo and Mia");
        assert_eq!(window.shows("Lock the room (nobody new can join)"), 1);
        window.click("Make moderator");
        window.click("Lock the room (nobody new can join)");
        assert_eq!(
            sent(&mut commands),
            [
                r#"Moderate(Moderator { user_id: "u-member", moderator: true })"#,
                "Moderate(Lock { locked: true })",
            ]
        );
    }

    #[test]
    fn a_member_is_offered_no_moderation() {
        let (mut window, _) = OverlayRun::new(room(3));
        for label in ["Mute", "Remove", "Make moderator", "Take moderator"] {
            assert_eq!(window.shows(label), 0, "{label}");
        }
        assert_eq!(window.shows("Lock the room (nobody new can join)"), 0);
        let tagged = crate::scene::tagged("Olga", "u-owner");
        assert!(
            window
                .frame(Vec::new())
                .iter()
                .any(|(text, _)| text.contains(&tagged) && text.contains("owner")),
            "the owner's name shows with its tag and role"
        );
    }

    #[test]
    fn older_messages_load_on_demand_and_a_removal_says_why() {
        let mut scene = room(3);
        scene.apply(0.0, RoomUpdate::OlderHistory { before_id: 40 });
        scene.apply(
            0.0,
            RoomUpdate::Event(RoomEvent {
                id: 40,
                user_id: "u-owner".into(),
                name: "Olga".into(),
                sent_at: 0,
                body: RoomEventBody::Chat {
                    text: "welcome".into(),
                },
            }),
        );
        let (mut window, mut commands) = OverlayRun::new(scene);
        window.click("Load older messages");
        assert_eq!(sent(&mut commands), ["LoadOlderHistory(40)"]);
        window.scene.older_page(
            40,
            HistoryPage {
                events: Vec::new(),
                more: false,
            },
        );
        assert_eq!(window.shows("Load older messages"), 0, "nothing older");

        window.ui.joined = None;
        window.ui.ended = Some("A moderator removed you from this room: for 10 minutes".into());
        assert_eq!(
            window.shows("A moderator removed you from this room: for 10 minutes"),
            1
        );
        window.click("OK");
        assert_eq!(window.ui.ended, None);
    }
}
