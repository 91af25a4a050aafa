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
    AvatarInstance, Camera, Gpu, OffscreenTarget, Renderer, ViewTarget, colour_from_hex, write_png,
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
