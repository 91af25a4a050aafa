//! An offscreen colour + depth target that can be read back as RGBA8 pixels:
//! for headless screenshots, golden-image tests and benchmarks.

use super::{DEPTH_FORMAT, Gpu, RenderError, colour_pass};

pub const OFFSCREEN_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8UnormSrgb;

#[derive(Debug)]
pub struct OffscreenTarget {
    pub width: u32,
    pub height: u32,
    colour: wgpu::Texture,
    pub colour_view: wgpu::TextureView,
    pub depth_view: wgpu::TextureView,
}

impl OffscreenTarget {
    pub fn new(device: &wgpu::Device, width: u32, height: u32) -> OffscreenTarget {
        let texture = |format, usage, label| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        };
        let colour = texture(
            OFFSCREEN_FORMAT,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            "offscreen colour",
        );
        let depth = texture(
            DEPTH_FORMAT,
            wgpu::TextureUsages::RENDER_ATTACHMENT,
            "offscreen depth",
        );
        OffscreenTarget {
            width,
            height,
            colour_view: colour.create_view(&Default::default()),
            depth_view: depth.create_view(&Default::default()),
            colour,
        }
    }

    /// Copies the colour texture out: tightly packed RGBA8 rows, top row first.
    pub fn read_rgba(&self, gpu: &Gpu) -> Result<Vec<u8>, RenderError> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let pending = PendingReadback::record(&gpu.device, &mut encoder, &self.colour, 0);
        gpu.queue.submit([encoder.finish()]);
        pending.finish(&gpu.device)
    }
}

/// A copy of one texture layer on its way to the CPU.
#[derive(Debug)]
pub struct PendingReadback {
    buffer: wgpu::Buffer,
    width: u32,
    height: u32,
    padded_row: u32,
}

impl PendingReadback {
    /// Records the copy of array layer `layer` of an 8-bit, 4-channel texture.
    fn record(
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        texture: &wgpu::Texture,
        layer: u32,
    ) -> PendingReadback {
        let (width, height) = (texture.width(), texture.height());
        let padded_row = (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: u64::from(padded_row * height),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: 0,
                    y: 0,
                    z: layer,
                },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded_row),
                    rows_per_image: None,
                },
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
        PendingReadback {
            buffer,
            width,
            height,
            padded_row,
        }
    }

    /// Waits for the copy (submitted by now) and returns tightly packed rows,
    /// top row first.
    pub fn finish(self, device: &wgpu::Device) -> Result<Vec<u8>, RenderError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.buffer
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                let _ = sender.send(result);
            });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| RenderError::Readback(e.to_string()))?;
        receiver
            .recv()
            .map_err(|e| RenderError::Readback(e.to_string()))?
            .map_err(|e| RenderError::Readback(e.to_string()))?;
        let mapped = self
            .buffer
            .slice(..)
            .get_mapped_range()
            .map_err(|e| RenderError::Readback(e.to_string()))?;
        let unpadded = (self.width * 4) as usize;
        let mut pixels = Vec::with_capacity(unpadded * self.height as usize);
        for row in mapped.chunks(self.padded_row as usize) {
            pixels.extend_from_slice(&row[..unpadded]);
        }
        Ok(pixels)
    }
}

/// Records a read-back of layer `layer` of `texture`, then a pass that loads
/// and stores that layer (through `layer_view`) so the image ends in the
/// colour-attachment layout: an XR runtime expects a released swapchain image
/// in that layout, and a copy leaves it in the transfer one.
pub fn copy_layer_for_readback(
    device: &wgpu::Device,
    encoder: &mut wgpu::CommandEncoder,
    texture: &wgpu::Texture,
    layer: u32,
    layer_view: &wgpu::TextureView,
) -> PendingReadback {
    let pending = PendingReadback::record(device, encoder, texture, layer);
    colour_pass(
        encoder,
        "back to attachment layout",
        layer_view,
        wgpu::LoadOp::Load,
    );
    pending
}

/// Writes RGBA8 pixels as a PNG file.
pub fn write_png(
    path: &std::path::Path,
    width: u32,
    height: u32,
    rgba: &[u8],
) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(rgba)
        .map_err(std::io::Error::other)?;
    Ok(())
}
