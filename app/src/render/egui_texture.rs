//! egui drawn with wgpu: [`EguiPainter`] paints an egui frame's output into
//! any colour view (the desktop window draws its overlay with it), and
//! [`EguiTexture`] is an egui page with a texture of its own — the headset's
//! UI panel and its name tags, shown on quads in the room.

use super::{OFFSCREEN_FORMAT, colour_pass};

/// Paints egui output into colour views of one format.
pub struct EguiPainter {
    renderer: egui_wgpu::Renderer,
}

impl std::fmt::Debug for EguiPainter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EguiPainter").finish_non_exhaustive()
    }
}

impl EguiPainter {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> EguiPainter {
        EguiPainter {
            renderer: egui_wgpu::Renderer::new(
                device,
                format,
                egui_wgpu::RendererOptions::default(),
            ),
        }
    }

    /// Applies `output`'s texture changes and records painting its shapes
    /// into `view` (`size_in_pixels`), which `load` keeps or clears first.
    #[allow(clippy::too_many_arguments)]
    pub fn paint(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        ctx: &egui::Context,
        output: egui::FullOutput,
        view: &wgpu::TextureView,
        size_in_pixels: [u32; 2],
        load: wgpu::LoadOp<wgpu::Color>,
    ) {
        let jobs = ctx.tessellate(output.shapes, output.pixels_per_point);
        let screen = egui_wgpu::ScreenDescriptor {
            size_in_pixels,
            pixels_per_point: output.pixels_per_point,
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
            let pass = colour_pass(encoder, "egui", view, load);
            self.renderer
                .render(&mut pass.forget_lifetime(), &jobs, &screen);
        }
        for id in std::mem::take(&mut textures.free) {
            self.renderer.free_texture(&id);
        }
    }
}

/// An egui context with its own texture to paint into.
pub struct EguiTexture {
    ctx: egui::Context,
    painter: EguiPainter,
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
            painter: EguiPainter::new(device, OFFSCREEN_FORMAT),
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
        let size = [self.texture.width(), self.texture.height()];
        self.painter.paint(
            device,
            queue,
            encoder,
            &self.ctx,
            output,
            &self.view,
            size,
            wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
        );
    }
}
