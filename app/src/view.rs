//! What a headless visitor sees: remote avatars interpolated from pose
//! batches, the table and the shared objects as the scene shows them, drawn
//! from this visitor's head into an offscreen image.

use std::path::Path;

use anyhow::{Context, Result};
use roomscale_app::render::{
    self, AvatarInstance, Camera, Gpu, ObjectInstance, OffscreenTarget, Renderer, ViewTarget,
};
use roomscale_app::scene::RoomScene;
use roomscale_protocol::pose::AvatarPose;

pub struct HeadlessView {
    gpu: Gpu,
    renderer: Renderer,
    target: OffscreenTarget,
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
        })
    }

    /// Renders `scene` as seen from `own` head at `now`.
    pub fn draw(&mut self, own: &AvatarPose, scene: &RoomScene, now: f64) -> Result<()> {
        let avatars: Vec<AvatarInstance> = scene
            .remote_avatars(now)
            .into_iter()
            .map(|avatar| avatar.instance)
            .collect();
        self.renderer
            .prepare(&self.gpu.device, &self.gpu.queue, &avatars);
        let objects: Vec<ObjectInstance> = scene
            .objects()
            .displayed(now)
            .map(|object| ObjectInstance::shown(&object, false))
            .collect();
        self.renderer
            .prepare_objects(&self.gpu.device, &self.gpu.queue, &objects);
        let aspect = self.target.width as f32 / self.target.height as f32;
        let camera = Camera::from_joint(&own.head, render::perspective(70f32.to_radians(), aspect));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        let target = ViewTarget {
            view: 0,
            colour: &self.target.colour_view,
            depth: &self.target.depth_view,
            timestamps: None,
            keep_depth: false,
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
