//! The eyes' images: the runtime's swapchains (colour, and depth where the
//! compositor takes it) wrapped as wgpu textures with a view per eye and one
//! for both, and the images read back for `--screenshot`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use openxr as xr;
use roomscale_protocol::pose::Joint;

use super::vulkan::XrGpu;
use crate::render;

/// A runtime swapchain of two-layer images, each wrapped as a wgpu texture
/// with a view per eye.
pub(super) struct WrappedSwapchain {
    // Textures before the swapchain whose images they wrap.
    pub(super) textures: Vec<wgpu::Texture>,
    pub(super) layer_views: Vec<[wgpu::TextureView; 2]>,
    /// Per image, both layers as one view, for multiview passes.
    pub(super) both_views: Vec<wgpu::TextureView>,
    pub(super) handle: xr::Swapchain<xr::Vulkan>,
}

/// Where the eyes' depth goes: to the compositor with the colour
/// (`XR_KHR_composition_layer_depth`), or into a texture of our own.
pub(super) enum EyeDepth {
    Runtime(WrappedSwapchain),
    Own {
        layers: [wgpu::TextureView; 2],
        both: wgpu::TextureView,
    },
}

pub(super) struct EyeSwapchain {
    pub(super) colour: WrappedSwapchain,
    pub(super) depth: EyeDepth,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) format: wgpu::TextureFormat,
}

fn both_eyes_view(texture: &wgpu::Texture) -> wgpu::TextureView {
    texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("both eyes"),
        dimension: Some(wgpu::TextureViewDimension::D2Array),
        base_array_layer: 0,
        array_layer_count: Some(2),
        ..Default::default()
    })
}

fn eye_layer_view(texture: &wgpu::Texture, layer: u32) -> wgpu::TextureView {
    texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("eye"),
        dimension: Some(wgpu::TextureViewDimension::D2),
        base_array_layer: layer,
        array_layer_count: Some(1),
        ..Default::default()
    })
}

impl WrappedSwapchain {
    fn new(
        gpu: &XrGpu,
        session: &xr::Session<xr::Vulkan>,
        create: &xr::SwapchainCreateInfo<xr::Vulkan>,
        descriptor: &wgpu::TextureDescriptor<'_>,
    ) -> Result<WrappedSwapchain> {
        let handle = session
            .create_swapchain(create)
            .with_context(|| format!("creating the {}", descriptor.label.unwrap_or("swapchain")))?;
        let textures: Vec<wgpu::Texture> = handle
            .enumerate_images()
            .context("listing the swapchain's images")?
            .into_iter()
            .map(|image| gpu.wrap_swapchain_image(image, descriptor))
            .collect();
        let layer_views = textures
            .iter()
            .map(|texture| [eye_layer_view(texture, 0), eye_layer_view(texture, 1)])
            .collect();
        let both_views = textures.iter().map(both_eyes_view).collect();
        Ok(WrappedSwapchain {
            textures,
            layer_views,
            both_views,
            handle,
        })
    }

    /// Acquires the next image and waits until it may be drawn into.
    pub(super) fn acquire(&mut self) -> Result<usize> {
        let image = self
            .handle
            .acquire_image()
            .context("acquiring a swapchain image")? as usize;
        self.handle
            .wait_image(xr::Duration::INFINITE)
            .context("waiting for a swapchain image")?;
        Ok(image)
    }
}

/// One eye's image read back, RGBA8, with its camera in the room.
pub(super) struct EyeImage {
    pub(super) pixels: Vec<u8>,
    pub(super) eye: Joint,
    pub(super) fov: xr::Fovf,
}

/// Where the right eye's screenshot goes: `eye.png` → `eye-right.png`.
pub(super) fn right_eye_path(left: &std::path::Path) -> PathBuf {
    let stem = left
        .file_stem()
        .map_or_else(|| "eye".into(), |s| s.to_string_lossy().into_owned());
    let extension = left
        .extension()
        .map_or_else(|| "png".into(), |e| e.to_string_lossy().into_owned());
    left.with_file_name(format!("{stem}-right.{extension}"))
}

impl EyeSwapchain {
    /// The eyes' swapchain (and depth) at `width` × `height`; depth goes to
    /// the compositor when `depth_layer` says the runtime takes it.
    pub(super) fn new(
        gpu: &XrGpu,
        session: &xr::Session<xr::Vulkan>,
        depth_layer: bool,
        width: u32,
        height: u32,
    ) -> Result<EyeSwapchain> {
        let formats = session.enumerate_swapchain_formats()?;
        let (vk_format, format) = choose_format(&formats).context("no sRGB colour format")?;
        let create = |format: u32, usage_flags| xr::SwapchainCreateInfo {
            create_flags: xr::SwapchainCreateFlags::EMPTY,
            usage_flags,
            format,
            sample_count: 1,
            width,
            height,
            face_count: 1,
            array_size: 2,
            mip_count: 1,
        };
        let colour_descriptor = wgpu::TextureDescriptor {
            label: Some("eye swapchain"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 2,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        };
        let colour = WrappedSwapchain::new(
            gpu,
            session,
            &create(
                vk_format,
                xr::SwapchainUsageFlags::COLOR_ATTACHMENT | xr::SwapchainUsageFlags::TRANSFER_SRC,
            ),
            &colour_descriptor,
        )?;
        let depth_descriptor = wgpu::TextureDescriptor {
            label: Some("eye depth swapchain"),
            format: render::DEPTH_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            ..colour_descriptor
        };
        const D32_SFLOAT: u32 = 126;
        let depth = if depth_layer && formats.contains(&D32_SFLOAT) {
            EyeDepth::Runtime(WrappedSwapchain::new(
                gpu,
                session,
                &create(
                    D32_SFLOAT,
                    xr::SwapchainUsageFlags::DEPTH_STENCIL_ATTACHMENT,
                ),
                &depth_descriptor,
            )?)
        } else {
            let texture = gpu.device.create_texture(&depth_descriptor);
            EyeDepth::Own {
                layers: [eye_layer_view(&texture, 0), eye_layer_view(&texture, 1)],
                both: both_eyes_view(&texture),
            }
        };
        println!(
            "xr: eye images {width}x{height} ({format:?}), depth {}",
            match depth {
                EyeDepth::Runtime(_) => "to the compositor",
                EyeDepth::Own { .. } => "kept to ourselves",
            }
        );
        Ok(EyeSwapchain {
            colour,
            depth,
            width,
            height,
            format,
        })
    }
}

/// The swapchain format: the runtime's first 8-bit sRGB one (its list is in
/// order of preference), as the Vulkan value and as wgpu's.
pub(super) fn choose_format(offered: &[u32]) -> Option<(u32, wgpu::TextureFormat)> {
    const R8G8B8A8_SRGB: u32 = 43;
    const B8G8R8A8_SRGB: u32 = 50;
    offered.iter().find_map(|&format| match format {
        R8G8B8A8_SRGB => Some((format, wgpu::TextureFormat::Rgba8UnormSrgb)),
        B8G8R8A8_SRGB => Some((format, wgpu::TextureFormat::Bgra8UnormSrgb)),
        _ => None,
    })
}
