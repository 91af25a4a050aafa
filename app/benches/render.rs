//! Renderer figures for `cargo xtask bench`: CPU time to prepare and submit a
//! frame of 100 avatars (two eye views), and the time to render two 1832x1920
//! eye views offscreen, on whatever adapter this machine has (lavapipe without a GPU).

use std::time::{Duration, Instant};

use roomscale_app::render::{
    AvatarInstance, Camera, Gpu, OFFSCREEN_FORMAT, OffscreenTarget, Renderer, ViewTarget,
};
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};

const AVATARS: usize = 100;
const EYE: (u32, u32) = (1832, 1920);
const FRAMES: usize = 30;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let gpu = match runtime.block_on(Gpu::headless()) {
        Ok(gpu) => gpu,
        Err(error) => {
            println!("renderer: skipped: {error}");
            return;
        }
    };
    let eyes = [
        OffscreenTarget::new(&gpu.device, EYE.0, EYE.1),
        OffscreenTarget::new(&gpu.device, EYE.0, EYE.1),
    ];
    let mut renderer = Renderer::new(&gpu.device, OFFSCREEN_FORMAT);
    let projection =
        roomscale_app::render::perspective(100f32.to_radians(), EYE.0 as f32 / EYE.1 as f32);
    let mut cpu = Vec::new();
    let mut total = Vec::new();
    for frame in 0..FRAMES + 3 {
        let avatars = crowd(frame as f32 / 72.0);
        let start = Instant::now();
        renderer.prepare(&gpu.device, &gpu.queue, &avatars);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for (view, eye) in eyes.iter().enumerate() {
            let offset = if view == 0 { -0.032 } else { 0.032 };
            let head = Joint {
                position: [offset, 1.65, 2.0],
                orientation: [0.0, 0.0, 0.0, 1.0],
            };
            let camera = Camera::from_joint(&head, projection);
            renderer.render(
                &gpu.queue,
                &mut encoder,
                ViewTarget {
                    view,
                    colour: &eye.colour_view,
                    depth: &eye.depth_view,
                    timestamps: None,
                    keep_depth: false,
                },
                &camera,
            );
        }
        gpu.queue.submit([encoder.finish()]);
        let submitted = start.elapsed();
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        if frame >= 3 {
            cpu.push(submitted);
            total.push(start.elapsed());
        }
    }
    println!(
        "renderer on {} ({:?}, {:?}):",
        gpu.adapter.name, gpu.adapter.backend, gpu.adapter.device_type
    );
    println!(
        "  prepare + record + submit, {AVATARS} avatars, 2 views: median {:.3} ms CPU per frame (target <= 1 ms)",
        median_ms(&mut cpu)
    );
    println!(
        "  two {}x{} eye views offscreen: median {:.1} ms per frame (GPU target <= 2 ms)",
        EYE.0,
        EYE.1,
        median_ms(&mut total)
    );
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// 100 avatars on a 10 x 10 grid in front of the viewer, heads bobbing.
fn crowd(t: f32) -> Vec<AvatarInstance> {
    (0..AVATARS)
        .map(|i| {
            let (x, z) = ((i % 10) as f32 - 4.5, -((i / 10) as f32) * 1.2 - 1.0);
            let bob = (t * 3.0 + i as f32).sin() * 0.03;
            let joint = |dx: f32, y: f32| Joint {
                position: [x + dx, y + bob, z],
                orientation: [0.0, 0.0, 0.0, 1.0],
            };
            AvatarInstance {
                pose: AvatarPose {
                    head: joint(0.0, 1.65),
                    left: joint(-0.3, 1.1),
                    right: joint(0.3, 1.1),
                    flags: PoseFlags(PoseFlags::LEFT_TRACKED | PoseFlags::RIGHT_TRACKED),
                },
                colour: [0.2 + (i % 7) as f32 * 0.1, 0.4, 0.8 - (i % 5) as f32 * 0.1],
            }
        })
        .collect()
}
