//! Golden-image test of the renderer: a fixed scene rendered offscreen (on
//! lavapipe where there is no GPU) must stay within a perceptual threshold of
//! the committed reference. On failure `<name>-actual.png` and
//! `<name>-difference.png` are written beside the reference.
//!
//! The threshold was set on lavapipe (llvmpipe, Vulkan, CPU): a pixel differs
//! when a channel moves by more than 24 of 255, and at most 0.5 % may differ,
//! which absorbs rasterisation differences between drivers but not a moved or
//! recoloured avatar. `ROOMSCALE_BLESS=1` rewrites the reference.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use glam::Vec3;
use roomscale_app::render::{
    AvatarInstance, Camera, Gpu, OFFSCREEN_FORMAT, OffscreenTarget, Renderer, ViewMode, ViewTarget,
    colour_from_hex, copy_layer_for_readback, write_png,
};
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};

const CHANNEL_TOLERANCE: u8 = 24;
const MAX_DIFFERING: f64 = 0.005;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn yaw(angle: f32) -> [f32; 4] {
    [0.0, (angle / 2.0).sin(), 0.0, (angle / 2.0).cos()]
}

/// Three avatars: one facing the camera, one turned, one with a hand down.
pub fn fixed_scene() -> Vec<AvatarInstance> {
    let avatar = |x: f32, z: f32, angle: f32, colour: &str, flags: u8| {
        let facing = yaw(angle);
        let (s, c) = angle.sin_cos();
        let side = |d: f32| [x + d * 0.28 * c, 1.15, z - d * 0.28 * s - 0.1 * c];
        AvatarInstance {
            pose: AvatarPose {
                head: Joint {
                    position: [x, 1.65, z],
                    orientation: facing,
                },
                left: Joint {
                    position: side(-1.0),
                    orientation: facing,
                },
                right: Joint {
                    position: side(1.0),
                    orientation: facing,
                },
                flags: PoseFlags(flags),
            },
            colour: colour_from_hex(colour).unwrap(),
        }
    };
    let both = PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED;
    vec![
        avatar(-1.0, -2.0, std::f32::consts::PI, "#3a7bd5", both),
        avatar(0.4, -3.0, std::f32::consts::FRAC_PI_2, "#e0a030", both),
        avatar(1.4, -1.6, 2.6, "#22aa66", PoseFlags::RIGHT_TRACKED),
    ]
}

fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

fn render(gpu: &Gpu, width: u32, height: u32) -> Vec<u8> {
    let target = OffscreenTarget::new(&gpu.device, width, height);
    let mut renderer = Renderer::new(&gpu.device, roomscale_app::render::OFFSCREEN_FORMAT);
    renderer.prepare(&gpu.device, &gpu.queue, &fixed_scene());
    let camera = Camera::look_at(
        Vec3::new(0.0, 1.8, 0.6),
        Vec3::new(0.2, 1.35, -2.2),
        50f32.to_radians(),
        width as f32 / height as f32,
    );
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    renderer.render(
        &gpu.queue,
        &mut encoder,
        ViewTarget {
            view: 0,
            colour: &target.colour_view,
            depth: &target.depth_view,
            timestamps: None,
            keep_depth: false,
        },
        &camera,
    );
    gpu.queue.submit([encoder.finish()]);
    target.read_rgba(gpu).expect("readback")
}

fn read_png(path: &Path) -> Option<(u32, u32, Vec<u8>)> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).ok()?));
    let mut reader = decoder.read_info().ok()?;
    let mut pixels = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut pixels).ok()?;
    pixels.truncate(info.buffer_size());
    Some((info.width, info.height, pixels))
}

#[test]
fn avatars_render_like_the_reference() {
    let gpu = match pollster_block_on(Gpu::headless()) {
        Ok(gpu) => gpu,
        Err(error) => {
            return skip(&format!(
                "golden image test needs a Vulkan adapter: {error}"
            ));
        }
    };
    let (width, height) = (320, 240);
    let actual = render(&gpu, width, height);
    let reference = golden_dir().join("avatars.png");
    if std::env::var_os("ROOMSCALE_BLESS").is_some() {
        write_png(&reference, width, height, &actual).unwrap();
    }
    let Some((w, h, expected)) = read_png(&reference) else {
        panic!(
            "missing reference {}: run with ROOMSCALE_BLESS=1 and review it",
            reference.display()
        );
    };
    assert_eq!((w, h), (width, height), "reference size");
    let mut differing = 0usize;
    let mut difference = vec![0u8; actual.len()];
    for (i, (a, e)) in actual.chunks(4).zip(expected.chunks(4)).enumerate() {
        let worst = a
            .iter()
            .zip(e)
            .take(3)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        if worst > CHANNEL_TOLERANCE {
            differing += 1;
            difference[i * 4..i * 4 + 4].copy_from_slice(&[255, 0, 255, 255]);
        } else {
            difference[i * 4..i * 4 + 4].copy_from_slice(&[e[0] / 3, e[1] / 3, e[2] / 3, 255]);
        }
    }
    let share = differing as f64 / f64::from(width * height);
    if share > MAX_DIFFERING {
        write_png(
            &golden_dir().join("avatars-actual.png"),
            width,
            height,
            &actual,
        )
        .unwrap();
        write_png(
            &golden_dir().join("avatars-difference.png"),
            width,
            height,
            &difference,
        )
        .unwrap();
        panic!(
            "{:.2} % of pixels differ (limit {:.2} %) on {} ({:?}); see tests/golden/avatars-actual.png and avatars-difference.png",
            share * 100.0,
            MAX_DIFFERING * 100.0,
            gpu.adapter.name,
            gpu.adapter.backend
        );
    }
    // The scene is not blank: the avatars' colours are on screen.
    let blue = colour_hits(&actual, [0x3a, 0x7b, 0xd5]);
    assert!(blue > 200, "the blue avatar covers {blue} pixels");
}

#[test]
fn a_multiview_pass_draws_each_eye_as_its_own_pass_does() {
    let gpu = match pollster_block_on(Gpu::headless_with(wgpu::Features::MULTIVIEW)) {
        Ok(gpu) => gpu,
        Err(error) => {
            return skip(&format!(
                "the multiview test needs a Vulkan adapter with multiview: {error}"
            ));
        }
    };
    if !roomscale_app::render::multiview_is_trustworthy(&gpu.adapter) {
        return skip(&format!(
            "{} ({}) draws some multiview draws into the wrong layer; headsets use one pass per eye there; the headset end-to-end test checks both eyes of a multiview pass on Mesa 25",
            gpu.adapter.name, gpu.adapter.driver_info
        ));
    }
    let (width, height) = (320, 240);
    let eye = |x: f32| {
        Camera::look_at(
            Vec3::new(x, 1.8, 0.6),
            Vec3::new(x + 0.2, 1.35, -2.2),
            50f32.to_radians(),
            width as f32 / height as f32,
        )
    };
    let cameras = [eye(-0.2), eye(0.2)];

    // Each eye alone, as the window and one-pass-per-eye headsets draw it.
    let mut single = Renderer::new(&gpu.device, OFFSCREEN_FORMAT);
    single.prepare(&gpu.device, &gpu.queue, &fixed_scene());
    let alone: Vec<Vec<u8>> = cameras
        .iter()
        .map(|camera| {
            let target = OffscreenTarget::new(&gpu.device, width, height);
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            single.render(
                &gpu.queue,
                &mut encoder,
                ViewTarget {
                    view: 0,
                    colour: &target.colour_view,
                    depth: &target.depth_view,
                    timestamps: None,
                    keep_depth: false,
                },
                camera,
            );
            gpu.queue.submit([encoder.finish()]);
            target.read_rgba(&gpu).expect("readback")
        })
        .collect();

    // Both eyes in one multiview pass into two-layer images.
    let layered = |format, usage| {
        gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("two eyes"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 2,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage,
            view_formats: &[],
        })
    };
    let colour = layered(
        OFFSCREEN_FORMAT,
        wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
    );
    let depth = layered(
        roomscale_app::render::DEPTH_FORMAT,
        wgpu::TextureUsages::RENDER_ATTACHMENT,
    );
    let view = |texture: &wgpu::Texture, base: u32, count: u32, dimension| {
        texture.create_view(&wgpu::TextureViewDescriptor {
            dimension: Some(dimension),
            base_array_layer: base,
            array_layer_count: Some(count),
            ..Default::default()
        })
    };
    let mut multiview = Renderer::with_views(&gpu.device, OFFSCREEN_FORMAT, ViewMode::Multiview);
    multiview.prepare(&gpu.device, &gpu.queue, &fixed_scene());
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    multiview.render_both(
        &gpu.queue,
        &mut encoder,
        ViewTarget {
            view: 0,
            colour: &view(&colour, 0, 2, wgpu::TextureViewDimension::D2Array),
            depth: &view(&depth, 0, 2, wgpu::TextureViewDimension::D2Array),
            timestamps: None,
            keep_depth: false,
        },
        [&cameras[0], &cameras[1]],
    );
    let layer_views: Vec<_> = (0..2)
        .map(|layer| view(&colour, layer, 1, wgpu::TextureViewDimension::D2))
        .collect();
    let pending: Vec<_> = (0..2)
        .map(|layer| {
            copy_layer_for_readback(
                &gpu.device,
                &mut encoder,
                &colour,
                layer,
                &layer_views[layer as usize],
            )
        })
        .collect();
    gpu.queue.submit([encoder.finish()]);
    let together: Vec<Vec<u8>> = pending
        .into_iter()
        .map(|p| p.finish(&gpu.device).expect("readback"))
        .collect();

    let differing = |a: &[u8], b: &[u8]| {
        a.chunks(4)
            .zip(b.chunks(4))
            .filter(|(x, y)| {
                x.iter()
                    .zip(*y)
                    .take(3)
                    .any(|(p, q)| p.abs_diff(*q) > CHANNEL_TOLERANCE)
            })
            .count() as f64
            / f64::from(width * height)
    };
    for eye in 0..2 {
        let share = differing(&together[eye], &alone[eye]);
        if share > MAX_DIFFERING {
            for (name, pixels) in [("multiview", &together[eye]), ("alone", &alone[eye])] {
                let path = golden_dir().join(format!("eye{eye}-{name}-actual.png"));
                write_png(&path, width, height, pixels).unwrap();
            }
        }
        assert!(
            share <= MAX_DIFFERING,
            "eye {eye}: {:.2} % of pixels differ between the multiview pass and its own pass",
            share * 100.0
        );
    }
    // The eyes see the room from two places: the layers are not one image twice.
    let between = differing(&together[0], &together[1]);
    assert!(
        between > 0.01,
        "the two eyes differ in only {:.2} % of pixels",
        between * 100.0
    );
    let blue = colour_hits(&together[1], [0x3a, 0x7b, 0xd5]);
    assert!(
        blue > 200,
        "the right eye shows the blue avatar ({blue} pixels)"
    );
}

/// Pixels close in hue to an sRGB colour (lit anywhere between 35 % and 100 %).
fn colour_hits(rgba: &[u8], srgb: [u8; 3]) -> usize {
    let target = Vec3::new(f32::from(srgb[0]), f32::from(srgb[1]), f32::from(srgb[2])).normalize();
    rgba.chunks(4)
        .filter(|p| {
            let v = Vec3::new(f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
            v.length() > 40.0 && v.normalize().dot(target) > 0.995
        })
        .count()
}

/// Blocks on a future without an async runtime (wgpu's futures resolve at once
/// on native backends once polled).
fn pollster_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}
