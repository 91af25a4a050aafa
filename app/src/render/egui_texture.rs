//! egui drawn into a texture instead of a window: the headset's UI panel and
//! its name tags are egui pages painted here and shown on quads in the room.

use super::OFFSCREEN_FORMAT;

/// An egui context with its own texture to paint into.
pub struct EguiTexture {
    ctx: egui::Context,
    renderer: egui_wgpu::Renderer,
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    pixels_per_point: f32,
}

impl std::fmt::Debug for EguiTexture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EguiTexture")
            .field("size", &self.texture.size())
            .finish_non_exhaustive()
    }
}

impl EguiTexture {
    /// A `width` × `height` pixel page; egui lays out in points, so
    /// `pixels_per_point` sets how large text looks on it.
    pub fn new(
        device: &wgpu::Device,
        width: u32,
        height: u32,
        pixels_per_point: f32,
    ) -> EguiTexture {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("egui page"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: OFFSCREEN_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT
                | wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        EguiTexture {
            ctx: egui::Context::default(),
            renderer: egui_wgpu::Renderer::new(
                device,
                OFFSCREEN_FORMAT,
                egui_wgpu::RendererOptions::default(),
            ),
            texture,
            view,
            pixels_per_point,
        }
    }

    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    /// The page's size in egui points.
    pub fn size_in_points(&self) -> egui::Vec2 {
        egui::vec2(
            self.texture.width() as f32 / self.pixels_per_point,
            self.texture.height() as f32 / self.pixels_per_point,
        )
    }

    pub fn pixels_per_point(&self) -> f32 {
        self.pixels_per_point
    }

    /// Runs `ui` with `events` and records painting the result (on a
    /// transparent page) into `encoder`.
    pub fn paint(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        events: Vec<egui::Event>,
        ui: impl FnMut(&mut egui::Ui),
    ) {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                self.size_in_points(),
            )),
            events,
            ..Default::default()
        };
        self.ctx.set_pixels_per_point(self.pixels_per_point);
        let output = self.ctx.run_ui(input, ui);
        let jobs = self.ctx.tessellate(output.shapes, self.pixels_per_point);
        let screen = egui_wgpu::ScreenDescriptor {
            size_in_pixels: [self.texture.width(), self.texture.height()],
            pixels_per_point: self.pixels_per_point,
        };
        let mut textures = output.textures_delta;
        for (id, deltas) in textures.set.drain() {
            for delta in &deltas {
                self.renderer.update_texture(device, queue, id, delta);
            }
        }
        self.renderer
            .update_buffers(device, queue, encoder, &jobs, &screen);
        {
            let pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("egui page"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &self.view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            self.renderer
                .render(&mut pass.forget_lifetime(), &jobs, &screen);
        }
        for id in std::mem::take(&mut textures.free) {
            self.renderer.free_texture(&id);
        }
    }
}
