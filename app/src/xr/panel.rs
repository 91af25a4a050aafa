//! The UI in the headset: an egui page (people with speaking and muted, and
//! for the owner and moderators a mute and a remove button on each person;
//! leave; the last chat lines, moderation acts among them; before a room, the
//! room picker) on a panel
//! standing in the room, clicked with a
//! laser from the right hand's aim pose and its trigger; and name tags above
//! remote avatars, painted once per change into an atlas and shown on quads
//! that face the viewer.
//!
//! Where the laser meets the panel is plain geometry ([`PanelPlacement::hit`]),
//! tested without a GPU.

use glam::{Mat4, Quat, Vec3};
use roomscale_protocol::events::ModeratePush;
use roomscale_protocol::pose::Joint;

use crate::colour::colour_from_hex;
use crate::picker::{PickerRequest, RoomPicker};
use crate::render::{EguiTexture, LineVertex, Quad, QuadTexture, Renderer, quad_model};
use crate::scene::{RemoteAvatar, RoomScene, tagged};

/// The panel's page in pixels and its size in the room in metres (1 mm a pixel).
pub const PANEL_PIXELS: (u32, u32) = (640, 480);
pub const PANEL_METRES: (f32, f32) = (0.64, 0.48);
/// The page's scale: its text is this many pixels a point.
const PAGE_PIXELS_PER_POINT: f32 = 1.25;
/// How far the panel leans back, facing up towards the eyes, in radians.
const PANEL_TILT: f32 = 35.0 * std::f32::consts::PI / 180.0;
/// How far the laser reaches, in metres.
const LASER_REACH: f32 = 5.0;
/// Trigger travel that counts as a press, and the travel it must fall
/// back under to count as a release (so a resting finger does not chatter).
const TRIGGER_PRESS: f32 = 0.7;
const TRIGGER_RELEASE: f32 = 0.3;
/// Name tags: rows of this many pixels in an atlas this wide, shown this big.
const TAG_ROW_PIXELS: u32 = 48;
const TAG_ATLAS_WIDTH: u32 = 384;
const TAG_ROWS: u32 = 32;
const TAG_METRES: (f32, f32) = (0.4, 0.05);

/// Where the panel stands in the room: its centre and its turn (its face
/// looks along the turned +Z, towards the person who summoned it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanelPlacement {
    pub centre: Vec3,
    pub rotation: Quat,
}

impl PanelPlacement {
    /// Before `head` (room space) like a lectern: 0.55 m ahead along its
    /// heading on the floor plane and 0.45 m below the eyes, tilted up
    /// towards them — in reach of a laser, out of the way of the room ahead.
    pub fn in_front_of(head: &Joint) -> PanelPlacement {
        let position = Vec3::from(head.position);
        let forward = Quat::from_array(head.orientation) * Vec3::NEG_Z;
        let flat = Vec3::new(forward.x, 0.0, forward.z)
            .try_normalize()
            .unwrap_or(Vec3::NEG_Z);
        let yaw = (-flat.x).atan2(-flat.z);
        PanelPlacement {
            centre: position + flat * 0.55 - Vec3::Y * 0.45,
            rotation: Quat::from_rotation_y(yaw) * Quat::from_rotation_x(-PANEL_TILT),
        }
    }

    pub fn model(&self) -> Mat4 {
        quad_model(self.centre, self.rotation, PANEL_METRES.0, PANEL_METRES.1)
    }

    /// Where a ray from `origin` along `direction` meets the panel's front:
    /// the point in the room and the pixel on the page, or `None` when it
    /// misses, points away, or starts behind the panel.
    pub fn hit(&self, origin: Vec3, direction: Vec3) -> Option<(Vec3, egui::Pos2)> {
        let normal = self.rotation * Vec3::Z;
        let facing = direction.dot(normal);
        if facing >= -1e-6 {
            return None;
        }
        let distance = (self.centre - origin).dot(normal) / facing;
        if !(0.0..=LASER_REACH).contains(&distance) {
            return None;
        }
        let point = origin + direction * distance;
        let local = self.rotation.inverse() * (point - self.centre);
        let (u, v) = (
            local.x / PANEL_METRES.0 + 0.5,
            0.5 - local.y / PANEL_METRES.1,
        );
        if !(0.0..=1.0).contains(&u) || !(0.0..=1.0).contains(&v) {
            return None;
        }
        Some((
            point,
            egui::pos2(u * PANEL_PIXELS.0 as f32, v * PANEL_PIXELS.1 as f32),
        ))
    }
}

/// What the panel shows of voice (see [`crate::voice::controls`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VoiceView {
    pub in_voice: bool,
    pub muted: bool,
    pub muted_all: bool,
    pub push_to_talk: bool,
    pub transmitting: bool,
    /// The microphone's level, 0 to 1.
    pub level: f32,
    pub status: String,
}

/// A voice button pressed on the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceRequest {
    Join,
    Leave,
    ToggleMute,
    ToggleMuteAll,
    TogglePushToTalk,
}

/// What the person asked for on the panel this frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PanelRequests {
    pub leave: bool,
    pub voice: Option<VoiceRequest>,
    /// What was clicked on the room picker.
    pub pick: Option<PickerRequest>,
    /// A moderation act asked for (owner and moderators only see the buttons).
    pub moderate: Option<ModeratePush>,
}

/// The right hand's laser this frame, in room space.
#[derive(Debug, Clone, Copy)]
pub struct Laser {
    pub origin: Vec3,
    pub direction: Vec3,
    pub trigger: f32,
}

/// The panel, the name tags and the laser: what the headset draws over the room.
#[derive(Debug)]
pub struct HeadsetUi {
    page: EguiTexture,
    page_texture: QuadTexture,
    tags: EguiTexture,
    tags_texture: QuadTexture,
    /// The names painted in the atlas, row by row.
    /// (name, speaking) per atlas row: a speaker's tag has a green ring.
    tag_names: Vec<(String, bool)>,
    pub placement: Option<PanelPlacement>,
    pressed: bool,
    /// What the page showed when last painted; it is painted again only when
    /// this or the pointer changes.
    painted: Option<(u64, Option<egui::Pos2>, bool)>,
}

impl HeadsetUi {
    pub fn new(device: &wgpu::Device, renderer: &mut Renderer) -> HeadsetUi {
        let page = EguiTexture::new(
            device,
            PANEL_PIXELS.0,
            PANEL_PIXELS.1,
            PAGE_PIXELS_PER_POINT,
        );
        let page_texture = renderer.register_quad_texture(device, page.view());
        let tags = EguiTexture::new(device, TAG_ATLAS_WIDTH, TAG_ROW_PIXELS * TAG_ROWS, 1.0);
        let tags_texture = renderer.register_quad_texture(device, tags.view());
        HeadsetUi {
            page,
            page_texture,
            tags,
            tags_texture,
            tag_names: Vec::new(),
            placement: None,
            pressed: false,
            painted: None,
        }
    }

    /// Paints what changed, turns the laser into pointer events and returns
    /// the quads and lines to draw and what was asked for. With a `picker`,
    /// the page is the room picker instead of the room's.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        scene: &RoomScene,
        remote: &[RemoteAvatar],
        viewer: Vec3,
        laser: Option<Laser>,
        status: &str,
        voice: &VoiceView,
        mut picker: Option<&mut RoomPicker>,
    ) -> (Vec<Quad>, Vec<LineVertex>, PanelRequests) {
        let mut quads = Vec::new();
        let mut lines = Vec::new();
        let mut requests = PanelRequests::default();
        self.paint_tags(device, queue, encoder, remote);
        for avatar in remote {
            let Some(row) = self
                .tag_names
                .iter()
                .position(|(name, speaking)| *name == avatar.label && *speaking == avatar.speaking)
            else {
                continue;
            };
            let at = avatar.name_tag_position();
            let to_viewer = viewer - at;
            let yaw = to_viewer.x.atan2(to_viewer.z);
            let rows = TAG_ROWS as f32;
            quads.push(Quad {
                texture: self.tags_texture,
                model: quad_model(at, Quat::from_rotation_y(yaw), TAG_METRES.0, TAG_METRES.1),
                uv_rect: [0.0, row as f32 / rows, 1.0, (row + 1) as f32 / rows],
            });
        }

        let Some(placement) = self.placement else {
            return (quads, lines, requests);
        };
        let hit = laser.and_then(|laser| placement.hit(laser.origin, laser.direction));
        let trigger = laser.map_or(0.0, |l| l.trigger);
        let was_pressed = self.pressed;
        if !self.pressed && trigger >= TRIGGER_PRESS {
            self.pressed = true;
        } else if self.pressed && trigger <= TRIGGER_RELEASE {
            self.pressed = false;
        }
        let pointer = hit.map(|(_, pixel)| pixel / self.page.pixels_per_point());
        let mut events = Vec::new();
        match pointer {
            Some(at) => {
                events.push(egui::Event::PointerMoved(at));
                if self.pressed != was_pressed {
                    events.push(egui::Event::PointerButton {
                        pos: at,
                        button: egui::PointerButton::Primary,
                        pressed: self.pressed,
                        modifiers: Default::default(),
                    });
                }
            }
            None => events.push(egui::Event::PointerGone),
        }
        let fingerprint = content_fingerprint(scene, status, voice, picker.as_deref());
        let state = (fingerprint, pointer, self.pressed);
        if self.painted != Some(state) {
            self.painted = Some(state);
            self.page
                .paint(device, queue, encoder, events, |ui| match &mut picker {
                    Some(picker) => {
                        egui::CentralPanel::default().show(ui, |ui| {
                            requests.pick = picker.ui(ui);
                        });
                    }
                    None => page(ui, scene, status, voice, &mut requests),
                });
        }
        quads.push(Quad {
            texture: self.page_texture,
            model: placement.model(),
            uv_rect: [0.0, 0.0, 1.0, 1.0],
        });
        if let Some(laser) = laser {
            let end = hit.map_or(
                laser.origin + laser.direction * LASER_REACH,
                |(point, _)| point,
            );
            let colour = if hit.is_some() {
                [0.3, 0.9, 1.0, 1.0]
            } else {
                [1.0, 1.0, 1.0, 0.5]
            };
            lines.push(LineVertex {
                position: laser.origin.to_array(),
                colour,
            });
            lines.push(LineVertex {
                position: end.to_array(),
                colour,
            });
        }
        (quads, lines, requests)
    }

    fn paint_tags(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        remote: &[RemoteAvatar],
    ) {
        let mut names: Vec<(String, bool)> = remote
            .iter()
            .map(|a| (a.label.clone(), a.speaking))
            .collect();
        names.sort();
        names.dedup();
        names.truncate(TAG_ROWS as usize);
        if names == self.tag_names {
            return;
        }
        self.tag_names = names;
        let rows = self.tag_names.clone();
        self.tags.paint(device, queue, encoder, Vec::new(), |ui| {
            let painter = ui.painter();
            for (row, (name, speaking)) in rows.iter().enumerate() {
                let top = row as f32 * TAG_ROW_PIXELS as f32;
                let rect = egui::Rect::from_min_size(
                    egui::pos2(0.0, top),
                    egui::vec2(TAG_ATLAS_WIDTH as f32, TAG_ROW_PIXELS as f32),
                );
                let galley = painter.layout_no_wrap(
                    name.clone(),
                    egui::FontId::proportional(TAG_ROW_PIXELS as f32 * 0.6),
                    egui::Color32::WHITE,
                );
                let size = galley.size() + egui::vec2(16.0, 4.0);
                let back = egui::Rect::from_center_size(rect.center(), size);
                painter.rect_filled(back, 8.0, egui::Color32::from_black_alpha(150));
                if *speaking {
                    painter.rect_stroke(
                        back,
                        8.0,
                        egui::Stroke::new(3.0, egui::Color32::from_rgb(80, 220, 120)),
                        egui::StrokeKind::Inside,
                    );
                }
                painter.galley(
                    back.min + egui::vec2(8.0, 2.0),
                    galley,
                    egui::Color32::WHITE,
                );
            }
        });
    }
}

/// Changes when anything the page shows changes.
fn content_fingerprint(
    scene: &RoomScene,
    status: &str,
    voice: &VoiceView,
    picker: Option<&RoomPicker>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    if let Some(picker) = picker {
        picker.fingerprint(&mut hasher);
    }
    for (id, meta) in scene.presence().members() {
        (
            id,
            &meta.name,
            meta.speaking,
            meta.muted,
            meta.moderator_muted,
            meta.role,
        )
            .hash(&mut hasher);
    }
    let governance = scene.governance();
    (
        &governance.owner_user_id,
        &governance.moderators,
        governance.locked,
        scene.chat_revision(),
        scene.closed().map(|why| &why.reason),
    )
        .hash(&mut hasher);
    status.hash(&mut hasher);
    // The meter in tenths: enough to move, not a repaint every frame.
    (
        voice.in_voice,
        voice.muted,
        voice.muted_all,
        voice.push_to_talk,
        voice.transmitting,
        (voice.level * 10.0) as u8,
        &voice.status,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// The panel's page.
fn page(
    ui: &mut egui::Ui,
    scene: &RoomScene,
    status: &str,
    voice: &VoiceView,
    requests: &mut PanelRequests,
) {
    egui::CentralPanel::default().show(ui, |ui| {
        if let Some(why) = scene.closed() {
            ui.colored_label(
                egui::Color32::from_rgb(255, 170, 90),
                crate::scene::closed_line(why),
            );
            ui.separator();
        }
        ui.heading("People");
        let mut controls_shown = std::collections::HashSet::new();
        for (user, meta) in scene.presence().members() {
            let mut line = tagged(&meta.name, user);
            if meta.speaking {
                line.push_str("  🔊 speaking");
            }
            if meta.moderator_muted {
                line.push_str("  (muted by a moderator)");
            } else if meta.muted {
                line.push_str("  (muted)");
            }
            let colour = colour_from_hex(&meta.colour).map_or(egui::Color32::GRAY, |c| {
                let srgb = egui::Rgba::from_rgb(c[0], c[1], c[2]);
                egui::Color32::from(srgb)
            });
            ui.horizontal(|ui| {
                ui.colored_label(colour, "●");
                ui.label(line);
                let allowed = scene.allowed_on(user);
                if controls_shown.insert(user) {
                    if allowed.mute
                        && ui
                            .small_button(if meta.moderator_muted {
                                "Unmute"
                            } else {
                                "Mute"
                            })
                            .clicked()
                    {
                        requests.moderate = Some(ModeratePush::Mute {
                            user_id: user.to_owned(),
                            muted: !meta.moderator_muted,
                        });
                    }
                    if allowed.remove && ui.small_button("Remove").clicked() {
                        requests.moderate = Some(ModeratePush::Remove {
                            user_id: user.to_owned(),
                        });
                    }
                }
            });
        }
        ui.separator();
        ui.heading("Chat");
        for line in scene.chat().iter().rev().take(6).rev() {
            ui.label(line.display());
        }
        ui.separator();
        ui.label(&voice.status);
        ui.horizontal(|ui| {
            if voice.in_voice {
                if ui.button("Leave voice").clicked() {
                    requests.voice = Some(VoiceRequest::Leave);
                }
                if scene.own_moderator_muted() {
                    ui.label("Muted by a moderator");
                } else if ui
                    .button(if voice.muted { "Unmute" } else { "Mute" })
                    .clicked()
                {
                    requests.voice = Some(VoiceRequest::ToggleMute);
                }
                ui.add(
                    egui::ProgressBar::new(voice.level)
                        .desired_width(120.0)
                        .text(if voice.transmitting {
                            "mic"
                        } else {
                            "mic (not sent)"
                        }),
                );
            } else if ui.button("Join voice").clicked() {
                requests.voice = Some(VoiceRequest::Join);
            }
        });
        let mut push_to_talk = voice.push_to_talk;
        if ui
            .checkbox(
                &mut push_to_talk,
                "Push to talk (hold the left grip away from objects)",
            )
            .changed()
        {
            requests.voice = Some(VoiceRequest::TogglePushToTalk);
        }
        let mut muted_all = voice.muted_all;
        if ui.checkbox(&mut muted_all, "Mute everyone here").changed() {
            requests.voice = Some(VoiceRequest::ToggleMuteAll);
        }
        ui.separator();
        if ui.button("Leave the room").clicked() {
            requests.leave = true;
        }
        if !status.is_empty() {
            ui.small(status);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egui_probe::{centre_of, click_at, collect_texts};
    use crate::scene::tests::room;

    /// The panel's page for `scene`, run by egui at the panel's size without
    /// a GPU: the texts it shows and where, and clicks on them.
    struct PageRun {
        ctx: egui::Context,
        scene: RoomScene,
        voice: VoiceView,
    }

    impl PageRun {
        fn frame(&self, events: Vec<egui::Event>) -> (Vec<(String, egui::Rect)>, PanelRequests) {
            let mut requests = PanelRequests::default();
            self.ctx.set_pixels_per_point(PAGE_PIXELS_PER_POINT);
            let input = egui::RawInput {
                screen_rect: Some(egui::Rect::from_min_size(
                    egui::Pos2::ZERO,
                    egui::vec2(PANEL_PIXELS.0 as f32, PANEL_PIXELS.1 as f32)
                        / PAGE_PIXELS_PER_POINT,
                )),
                events,
                ..Default::default()
            };
            let mut output = self.ctx.run_ui(input, |ui| {
                page(ui, &self.scene, "", &self.voice, &mut requests)
            });
            // No GPU to upload the font atlas to.
            output.textures_delta.clear();
            let mut texts = Vec::new();
            for clipped in output.shapes {
                collect_texts(&clipped.shape, &mut texts);
            }
            (texts, requests)
        }

        fn texts(&self) -> Vec<(String, egui::Rect)> {
            self.frame(Vec::new()).0
        }

        /// Clicks the `nth` text that reads `label`; what the page asked for.
        fn click(&self, label: &str, nth: usize) -> PanelRequests {
            let [press, release] = click_at(centre_of(&self.texts(), label, nth));
            self.frame(press);
            self.frame(release).1
        }
    }

    fn run(scene: RoomScene) -> PageRun {
        PageRun {
            ctx: egui::Context::default(),
            scene,
            voice: VoiceView {
                in_voice: true,
                ..Default::default()
            },
        }
    }

    fn shows(run: &PageRun, label: &str) -> usize {
        run.texts().iter().filter(|(text, _)| text == label).count()
    }

    #[test]
    fn a_moderator_gets_mute_and_remove_on_members_only_and_they_ask_for_the_act() {
        let moderator = run(room(2));
        // Olga (owner) and Mo (self) get none; Mia (member) gets both.
        assert_eq!(shows(&moderator, "Remove"), 1);
        assert_eq!(shows(&moderator, "Mute"), 2, "Mia's, and the own voice's");
        let names: Vec<String> = moderator
            .texts()
            .into_iter()
            .map(|(text, _)| text)
            .filter(|text| text.starts_with("Mia ("))
            .collect();
        assert_eq!(
            names,
            [crate::scene::tagged("Mia", "u-member")],
            "names carry their tag"
        );
        let page = egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(PANEL_PIXELS.0 as f32, PANEL_PIXELS.1 as f32) / PAGE_PIXELS_PER_POINT,
        );
        for (text, rect) in moderator.texts() {
            if text == "Remove" || text == "Mute" {
                assert!(
                    page.contains_rect(rect),
                    "{text} at {rect:?} is off the page"
                );
            }
        }
        assert_eq!(
            moderator.click("Remove", 0).moderate,
            Some(ModeratePush::Remove {
                user_id: "u-member".into()
            })
        );
        assert_eq!(
            moderator.click("Mute", 0).moderate,
            Some(ModeratePush::Mute {
                user_id: "u-member".into(),
                muted: true
            })
        );
    }

    #[test]
    fn a_member_gets_no_moderation_and_a_moderator_mute_shows_instead_of_unmute() {
        let mut scene = room(3);
        crate::scene::tests::mute_mia_by_moderator(&mut scene);
        let mut member = run(scene);
        member.voice.muted = true;
        assert_eq!(shows(&member, "Remove"), 0);
        assert_eq!(shows(&member, "Unmute"), 0, "no unmute to press");
        assert_eq!(shows(&member, "Muted by a moderator"), 1);
    }

    fn placement() -> PanelPlacement {
        PanelPlacement::in_front_of(&Joint {
            position: [0.0, 1.6, 0.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        })
    }

    #[test]
    fn the_panel_stands_ahead_of_the_head_and_faces_it() {
        let p = placement();
        assert!(
            (p.centre - Vec3::new(0.0, 1.15, -0.55)).length() < 1e-5,
            "{p:?}"
        );
        let (sin, cos) = PANEL_TILT.sin_cos();
        let facing = p.rotation * Vec3::Z;
        assert!(
            (facing - Vec3::new(0.0, sin, cos)).length() < 1e-5,
            "{facing}"
        );
        // Its face looks up towards the eyes.
        let to_eyes = (Vec3::new(0.0, 1.6, 0.0) - p.centre).normalize();
        assert!(facing.dot(to_eyes) > 0.9, "{facing} vs {to_eyes}");

        // Turned 90° left (looking along -X), the panel is to the left.
        let turned = PanelPlacement::in_front_of(&Joint {
            position: [1.0, 1.6, 0.0],
            orientation: Quat::from_rotation_y(std::f32::consts::FRAC_PI_2).to_array(),
        });
        assert!(
            (turned.centre - Vec3::new(0.45, 1.15, 0.0)).length() < 1e-5,
            "{turned:?}"
        );
        let facing = turned.rotation * Vec3::Z;
        assert!(
            (facing - Vec3::new(cos, sin, 0.0)).length() < 1e-5,
            "{facing}"
        );
    }

    #[test]
    fn a_laser_hits_the_page_where_it_points() {
        let p = placement();
        let check = |origin: Vec3, target: Vec3, expected: Option<(f32, f32)>| {
            let hit = p.hit(origin, (target - origin).normalize());
            match (hit, expected) {
                (None, None) => {}
                (Some((_, pixel)), Some((x, y))) => {
                    assert!(
                        (pixel.x - x).abs() < 0.5 && (pixel.y - y).abs() < 0.5,
                        "{origin} -> {target}: {pixel:?}, expected ({x}, {y})"
                    );
                }
                (hit, expected) => panic!("{origin} -> {target}: {hit:?}, expected {expected:?}"),
            }
        };
        let hand = Vec3::new(0.2, 1.2, -0.2);
        let (w, h) = (PANEL_PIXELS.0 as f32, PANEL_PIXELS.1 as f32);
        // Points on the panel, given in its own axes (x right, y up).
        let on_panel = |x: f32, y: f32| p.centre + p.rotation * Vec3::new(x, y, 0.0);
        check(hand, p.centre, Some((w / 2.0, h / 2.0)));
        check(hand, on_panel(-0.3, 0.22), Some((20.0, 20.0)));
        check(hand, on_panel(0.16, -0.12), Some((w * 0.75, h * 0.75)));
        // Beside the panel, away from it, and from behind it: no hit.
        check(hand, on_panel(0.5, 0.0), None);
        check(hand, hand + Vec3::Z, None);
        check(Vec3::new(0.0, 1.4, -1.5), p.centre, None);
    }
}
