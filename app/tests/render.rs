//! Golden-image test of the renderer: a fixed scene (avatars, the table and
//! objects on it) rendered offscreen (on
//! lavapipe where there is no GPU) must stay within a perceptual threshold of
//! the committed reference. On failure `<name>-actual.png` and
//! `<name>-difference.png` are written beside the reference.
//!
//! The threshold was set on lavapipe (llvmpipe, Vulkan, CPU): a pixel differs
//! when a channel moves by more than 24 of 255, and at most 0.5 % may differ,
//! which absorbs rasterisation differences between drivers but not a moved or
//! recoloured avatar. `ROOMSCALE_BLESS=1` rewrites the reference.

use std::f32::consts::FRAC_PI_2;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use glam::Vec3;
use roomscale_app::colour::colour_from_hex;
use roomscale_app::render::{
    AvatarInstance, Camera, Gpu, OFFSCREEN_FORMAT, ObjectInstance, OffscreenTarget, Renderer,
    TABLE_COLOUR, ViewMode, ViewTarget, copy_layer_for_readback, write_png,
};
use roomscale_protocol::objects::ObjectKind;
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

/// A prop of `kind` in `colour` at `position`, turned `angle` about +Y.
fn object(kind: ObjectKind, colour: &str, position: [f32; 3], angle: f32) -> ObjectInstance {
    ObjectInstance {
        kind,
        position,
        orientation: yaw(angle),
        colour: colour_from_hex(colour).unwrap(),
        highlight: false,
    }
}

/// Props resting on the table (top at 0.75 m) and one on the floor.
pub fn fixed_objects() -> Vec<ObjectInstance> {
    let lying = {
        // A marker lies on its side: its local Y turned onto X.
        let q = glam::Quat::from_rotation_y(0.4) * glam::Quat::from_rotation_z(FRAC_PI_2);
        q.to_array()
    };
    vec![
        object(ObjectKind::Cube, "#d03030", [-0.35, 0.80, -1.5], 0.5),
        object(ObjectKind::Cube, "#30a0d0", [-0.15, 0.80, -1.75], 0.0),
        object(ObjectKind::Ball, "#f0d020", [0.15, 0.81, -1.55], 0.0),
        ObjectInstance {
            orientation: lying,
            ..object(ObjectKind::Marker, "#202020", [0.4, 0.76, -1.6], 0.0)
        },
        object(ObjectKind::Ball, "#a040c0", [-1.2, 0.06, -3.0], 0.0),
    ]
}

fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

fn render(gpu: &Gpu, width: u32, height: u32) -> Vec<u8> {
    let camera = fixed_camera(width, height);
    render_view(gpu, width, height, &fixed_objects(), &camera)
}

/// The golden scene's camera: a standing visitor looking at the table.
fn fixed_camera(width: u32, height: u32) -> Camera {
    Camera::look_at(
        Vec3::new(0.0, 1.8, 0.6),
        Vec3::new(0.2, 1.35, -2.2),
        50f32.to_radians(),
        width as f32 / height as f32,
    )
}

/// The fixed avatars with `objects`, seen by `camera`, read back as RGBA.
fn render_view(
    gpu: &Gpu,
    width: u32,
    height: u32,
    objects: &[ObjectInstance],
    camera: &Camera,
) -> Vec<u8> {
    let target = OffscreenTarget::new(&gpu.device, width, height);
    let mut renderer = Renderer::new(&gpu.device, roomscale_app::render::OFFSCREEN_FORMAT);
    renderer.prepare(&gpu.device, &gpu.queue, &fixed_scene());
    renderer.prepare_objects(&gpu.device, &gpu.queue, objects);
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
        camera,
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
fn the_room_renders_like_the_reference() {
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
    let reference = golden_dir().join("room.png");
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
            &golden_dir().join("room-actual.png"),
            width,
            height,
            &actual,
        )
        .unwrap();
        write_png(
            &golden_dir().join("room-difference.png"),
            width,
            height,
            &difference,
        )
        .unwrap();
        panic!(
            "{:.2} % of pixels differ (limit {:.2} %) on {} ({:?}); see tests/golden/room-actual.png and room-difference.png",
            share * 100.0,
            MAX_DIFFERING * 100.0,
            gpu.adapter.name,
            gpu.adapter.backend
        );
    }
    // The scene is not blank: the avatars' and the props' colours are on screen.
    let blue = colour_hits(&actual, [0x3a, 0x7b, 0xd5]);
    assert!(blue > 200, "the blue avatar covers {blue} pixels");
    let red = colour_hits(&actual, [0xd0, 0x30, 0x30]);
    assert!(red > 30, "the red cube covers {red} pixels");
}

/// Each object is drawn in its colour where its centre projects, and
/// (re)placing objects moves them: the same scene with the objects elsewhere
/// shows the floor or the table at the old pixels.
#[test]
fn objects_show_in_their_colour_at_their_projected_pixel() {
    let gpu = match pollster_block_on(Gpu::headless()) {
        Ok(gpu) => gpu,
        Err(error) => {
            return skip(&format!(
                "the object render test needs a Vulkan adapter: {error}"
            ));
        }
    };
    let (width, height) = (320, 240);
    let camera = fixed_camera(width, height);
    let objects = fixed_objects();
    let image = render_view(&gpu, width, height, &objects, &camera);
    // The same room with every object lifted 3 m up, out of the picture.
    let lifted: Vec<ObjectInstance> = objects
        .iter()
        .map(|o| ObjectInstance {
            position: [o.position[0], o.position[1] + 3.0, o.position[2]],
            ..*o
        })
        .collect();
    let without = render_view(&gpu, width, height, &lifted, &camera);
    let srgb = |linear: [f32; 3]| {
        linear.map(|c| {
            let c = if c <= 0.003_130_8 {
                c * 12.92
            } else {
                1.055 * c.powf(1.0 / 2.4) - 0.055
            };
            (c * 255.0).round() as u8
        })
    };
    for object in &objects {
        let ndc = camera
            .project(Vec3::from(object.position))
            .expect("in front of the camera");
        assert!(
            ndc.x.abs() < 1.0 && ndc.y.abs() < 1.0,
            "{:?} at {:?} is out of the picture",
            object.kind,
            object.position
        );
        let x = ((ndc.x + 1.0) / 2.0 * width as f32) as usize;
        let y = ((1.0 - ndc.y) / 2.0 * height as f32) as usize;
        let at = |pixels: &[u8]| {
            let i = (y * width as usize + x) * 4;
            [pixels[i], pixels[i + 1], pixels[i + 2]]
        };
        let expected = srgb(object.colour);
        let shown = at(&image);
        assert!(
            lit_like(shown, expected),
            "{:?} at pixel ({x}, {y}) shows {shown:?}, not its colour {expected:?} lit",
            object.kind
        );
        let behind = at(&without);
        assert!(
            !lit_like(behind, expected),
            "with the {:?} gone, pixel ({x}, {y}) still shows {behind:?}",
            object.kind
        );
    }
    // The table top shows under where the props stood.
    let table = camera
        .project(Vec3::new(0.0, 0.75, -1.35))
        .expect("the table is in view");
    let (x, y) = (
        ((table.x + 1.0) / 2.0 * width as f32) as usize,
        ((1.0 - table.y) / 2.0 * height as f32) as usize,
    );
    let i = (y * width as usize + x) * 4;
    let shown = [without[i], without[i + 1], without[i + 2]];
    assert!(
        lit_like(shown, srgb(TABLE_COLOUR)),
        "the table top at ({x}, {y}) shows {shown:?}"
    );
}

/// `shown` is `colour` under the renderer's light: the same hue, between the
/// ambient 35 % and full brightness (a near-black colour only needs to stay dark).
fn lit_like(shown: [u8; 3], colour: [u8; 3]) -> bool {
    let v = |c: [u8; 3]| Vec3::new(f32::from(c[0]), f32::from(c[1]), f32::from(c[2]));
    let (shown, colour) = (v(shown), v(colour));
    if colour.length() < 60.0 {
        return shown.length() <= colour.length() + 12.0;
    }
    shown.length() > 0.3 * colour.length()
        && shown.length() < 1.05 * colour.length() + 12.0
        && shown.normalize().dot(colour.normalize()) > 0.99
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
    single.prepare_objects(&gpu.device, &gpu.queue, &fixed_objects());
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
    multiview.prepare_objects(&gpu.device, &gpu.queue, &fixed_objects());
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
