//! What a headless visitor sees: remote avatars interpolated from pose batches,
//! drawn from this visitor's head into an offscreen image.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use roomscale_app::client::Presence;
use roomscale_app::interpolation::AvatarTrack;
use roomscale_app::render::{
    self, AvatarInstance, Camera, Gpu, OffscreenTarget, Renderer, ViewTarget,
};
use roomscale_protocol::pose::AvatarPose;

pub struct HeadlessView {
    gpu: Gpu,
    renderer: Renderer,
    target: OffscreenTarget,
    tracks: HashMap<u16, AvatarTrack>,
}

impl HeadlessView {
    pub async fn new(width: u32, height: u32) -> Result<HeadlessView> {
        let gpu = Gpu::headless()
            .await
            .context("opening a graphics adapter for --screenshot")?;
        let renderer = Renderer::new(&gpu.device, render::OFFSCREEN_FORMAT);
        let target = OffscreenTarget::new(&gpu.device, width, height);
        Ok(HeadlessView {
            gpu,
            renderer,
            target,
            tracks: HashMap::new(),
        })
    }

    /// Feeds a pose batch that arrived at `now` (seconds since start).
    pub fn poses(&mut self, now: f64, server_time_ms: u32, poses: Vec<(u16, AvatarPose)>) {
        for (slot, pose) in poses {
            self.tracks.entry(slot).or_default().push(
                now,
                f64::from(server_time_ms) / 1000.0,
                pose,
            );
        }
    }

    /// Renders the room as seen from `own` head at `now`.
    pub fn draw(
        &mut self,
        own: &AvatarPose,
        presence: &Presence,
        own_slot: u16,
        now: f64,
    ) -> Result<()> {
        self.tracks
            .retain(|slot, _| presence.by_slot(*slot).is_some());
        let avatars: Vec<AvatarInstance> = presence
            .members()
            .filter(|(_, meta)| meta.slot != own_slot)
            .filter_map(|(_, meta)| {
                let pose = self.tracks.get(&meta.slot)?.sample(now)?;
                Some(AvatarInstance {
                    pose,
                    colour: render::colour_from_hex(&meta.colour).unwrap_or([0.7, 0.7, 0.7]),
                })
            })
            .collect();
        self.renderer
            .prepare(&self.gpu.device, &self.gpu.queue, &avatars);
        let aspect = self.target.width as f32 / self.target.height as f32;
        let camera = Camera::from_joint(&own.head, render::perspective(70f32.to_radians(), aspect));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        let target = ViewTarget {
            view: 0,
            colour: &self.target.colour_view,
            depth: &self.target.depth_view,
        };
        self.renderer
            .render(&self.gpu.queue, &mut encoder, target, &camera);
        self.gpu.queue.submit([encoder.finish()]);
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let pixels = self.target.read_rgba(&self.gpu)?;
        render::write_png(path, self.target.width, self.target.height, &pixels)
            .with_context(|| format!("writing {}", path.display()))
    }
}
