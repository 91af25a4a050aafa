//! The renderer: one scene (floor, the table, avatars, shared objects) drawn with `wgpu` into whatever
//! target it is handed — a window surface, an OpenXR swapchain image per eye, or
//! an offscreen texture for tests and thumbnails.
//!
//! Shape: [`Renderer::new`] once per device and colour format, [`Renderer::prepare`]
//! once per frame (CPU work: instance data for every avatar, uploaded in one
//! write) and [`Renderer::prepare_objects`] for the shared objects,
//! [`Renderer::render`] once per view (one instanced draw per mesh: per avatar
//! part, per object kind, and the table), so two eyes share one `prepare`.

mod egui_texture;
mod model;
mod offscreen;
mod props;
mod quads;

use bytemuck::Zeroable as _;
use glam::{Mat4, Quat, Vec3};
use roomscale_protocol::pose::{AvatarPose, Joint, PoseFlags};
use thiserror::Error;
use wgpu::util::DeviceExt;

pub use egui_texture::{EguiPainter, EguiTexture};
pub use model::{AVATAR_GLTF, JointKind, MeshData, ModelError, Part, Vertex, load_avatar};
pub use offscreen::{
    OFFSCREEN_FORMAT, OffscreenTarget, PendingReadback, copy_layer_for_readback, write_png,
};
pub use props::{
    BALL_RADIUS, CUBE_SIZE, MARKER_LENGTH, MARKER_RADIUS, ObjectInstance, TABLE_COLOUR, ball_mesh,
    cube_mesh, marker_mesh, table_mesh,
};
pub use quads::{LineVertex, Quad, QuadTexture, quad_model};

/// Views one frame can hold: two eyes.
pub const MAX_VIEWS: usize = 2;

/// Where one view is drawn.
#[derive(Debug, Clone)]
pub struct ViewTarget<'a> {
    /// Which view of the frame, below [`MAX_VIEWS`].
    pub view: usize,
    pub colour: &'a wgpu::TextureView,
    pub depth: &'a wgpu::TextureView,
    /// GPU timestamps around this view's pass, where the device measures them.
    pub timestamps: Option<wgpu::RenderPassTimestampWrites<'a>>,
    /// Keep the depth image after the pass (an XR compositor reads it);
    /// otherwise it is discarded, which saves bandwidth on tiled GPUs.
    pub keep_depth: bool,
}

/// Depth buffer format every target uses.
pub const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

#[derive(Debug, Error)]
pub enum RenderError {
    #[error(
        "no graphics adapter: {0}; install a Vulkan driver (on Debian: apt-get install mesa-vulkan-drivers libvulkan1)"
    )]
    NoAdapter(String),
    #[error("the graphics device could not be opened: {0}")]
    NoDevice(String),
    #[error("reading the rendered image back failed: {0}")]
    Readback(String),
}

/// A device and its queue.
#[derive(Debug)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
}

impl Gpu {
    /// Any adapter, without a window: a real GPU, or lavapipe on machines without one.
    pub async fn headless() -> Result<Gpu, RenderError> {
        Gpu::headless_with(wgpu::Features::empty()).await
    }

    /// As [`Gpu::headless`], with `features` (multiview also raises the view
    /// count limit to two eyes). Fails where the adapter lacks one.
    pub async fn headless_with(features: wgpu::Features) -> Result<Gpu, RenderError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions::default())
            .await
            .map_err(|e| RenderError::NoAdapter(e.to_string()))?;
        let mut limits = wgpu::Limits::default();
        if features.contains(wgpu::Features::MULTIVIEW) {
            limits.max_multiview_view_count = MAX_VIEWS as u32;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                required_features: features,
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| RenderError::NoDevice(e.to_string()))?;
        Ok(Gpu {
            device,
            queue,
            adapter: adapter.get_info(),
        })
    }
}

/// One avatar to draw: its pose and colour (linear RGB).
#[derive(Debug, Clone, Copy)]
pub struct AvatarInstance {
    pub pose: AvatarPose,
    pub colour: [f32; 3],
}

/// Where a view looks from: view and projection, right-handed, depth 0..1.
#[derive(Debug, Clone, Copy)]
pub struct Camera {
    pub view: Mat4,
    pub projection: Mat4,
}

impl Camera {
    pub fn look_at(eye: Vec3, target: Vec3, vertical_fov_radians: f32, aspect: f32) -> Camera {
        Camera {
            view: glam::camera::rh::view::look_at_mat4(eye, target, Vec3::Y),
            projection: perspective(vertical_fov_radians, aspect),
        }
    }

    /// A camera at `joint` (an eye or a head), looking along its -Z.
    pub fn from_joint(joint: &Joint, projection: Mat4) -> Camera {
        let world =
            Mat4::from_rotation_translation(quat(joint.orientation), Vec3::from(joint.position));
        Camera {
            view: world.inverse(),
            projection,
        }
    }

    fn view_proj(&self) -> Mat4 {
        self.projection * self.view
    }

    /// Where the camera is, in the room.
    pub fn position(&self) -> Vec3 {
        self.view.inverse().w_axis.truncate()
    }

    /// Where `point` (room coordinates) lands in the image, in normalised
    /// device coordinates (x right, y up, both -1..1 across the image; z the
    /// depth 0..1), or `None` when it is behind the camera.
    pub fn project(&self, point: Vec3) -> Option<Vec3> {
        let clip = self.view_proj() * point.extend(1.0);
        (clip.w > 0.0).then(|| clip.truncate() / clip.w)
    }

    /// The ray from the camera through the image point `ndc` (normalised
    /// device coordinates, as [`Camera::project`] gives): origin and unit
    /// direction, room coordinates.
    pub fn ray(&self, ndc: [f32; 2]) -> (Vec3, Vec3) {
        let inverse = self.view_proj().inverse();
        let far = inverse.project_point3(Vec3::new(ndc[0], ndc[1], 1.0));
        let origin = self.position();
        (origin, (far - origin).normalize())
    }
}

/// A right-handed perspective projection into wgpu's clip space (depth 0..1, +Y up).
pub fn perspective(vertical_fov_radians: f32, aspect: f32) -> Mat4 {
    glam::camera::rh::proj::directx::perspective(vertical_fov_radians, aspect, NEAR, FAR)
}

/// The projection of an OpenXR/WebXR view from its four field-of-view angles
/// (radians; left and down are negative for a centred view), right-handed,
/// into wgpu's clip space with depth 0..1 — the same near and far planes as
/// [`perspective`], which it equals for a symmetric field of view.
pub fn projection_from_fov(left: f32, right: f32, up: f32, down: f32) -> Mat4 {
    let (near, far) = (NEAR, FAR);
    let (l, r, u, d) = (left.tan(), right.tan(), up.tan(), down.tan());
    let (width, height) = (r - l, u - d);
    Mat4::from_cols(
        glam::Vec4::new(2.0 / width, 0.0, 0.0, 0.0),
        glam::Vec4::new(0.0, 2.0 / height, 0.0, 0.0),
        glam::Vec4::new((r + l) / width, (u + d) / height, far / (near - far), -1.0),
        glam::Vec4::new(0.0, 0.0, near * far / (near - far), 0.0),
    )
}

/// The near and far planes of every projection, in metres.
pub const NEAR_PLANE: f32 = 0.05;
pub const FAR_PLANE: f32 = 100.0;
const NEAR: f32 = NEAR_PLANE;
const FAR: f32 = FAR_PLANE;

fn quat(q: [f32; 4]) -> Quat {
    Quat::from_array(q).normalize()
}

/// How a renderer's passes address views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewMode {
    /// One view a pass: a window, an offscreen image, or one eye at a time.
    Single,
    /// Both eyes in one pass into two-layer targets (`Features::MULTIVIEW`):
    /// the scene is recorded once and the GPU draws it for each layer.
    Multiview,
}

/// A pass over one colour view and nothing else: `load` keeps or clears it,
/// and the result is stored.
pub fn colour_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    label: &str,
    view: &wgpu::TextureView,
    load: wgpu::LoadOp<wgpu::Color>,
) -> wgpu::RenderPass<'e> {
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some(label),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations {
                load,
                store: wgpu::StoreOp::Store,
            },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

/// Whether multiview draws right on this adapter. Debian 12's lavapipe (Mesa
/// 22) sends some draws of a multiview pass (the floor) from the second view
/// into the first layer; Mesa 25's draws every layer right, as the multiview
/// golden test shows. Versions between were not checked, so only 25 and later
/// CPU rasterisers are trusted; GPUs are.
pub fn multiview_is_trustworthy(adapter: &wgpu::AdapterInfo) -> bool {
    if adapter.device_type != wgpu::DeviceType::Cpu {
        return true;
    }
    mesa_major(&adapter.driver_info).is_some_and(|major| major >= 25)
}

/// `22` from a driver string like "Mesa 22.3.6 (LLVM 15.0.6)".
fn mesa_major(driver_info: &str) -> Option<u32> {
    let rest = &driver_info[driver_info.find("Mesa ")? + "Mesa ".len()..];
    rest.split(['.', ' ']).next()?.parse().ok()
}

/// The renderer's shaders for `mode`: the shared view uniform in front of
/// `body`, whose vertex stages pick their view through `THIS_VIEW`.
pub(crate) fn shader_source(body: &str, mode: ViewMode) -> String {
    let (argument, view) = match mode {
        ViewMode::Single => ("", "frame.views[0]"),
        ViewMode::Multiview => (
            "@builtin(view_index) view_index: u32,",
            "frame.views[view_index]",
        ),
    };
    let body = body
        .replace("VIEW_INDEX_ARGUMENT", argument)
        .replace("THIS_VIEW", view);
    format!("{}\n{body}", include_str!("views.wgsl"))
}

impl ViewMode {
    /// The mask pipelines and passes carry: both layers for multiview.
    pub(crate) fn mask(self) -> Option<std::num::NonZeroU32> {
        match self {
            ViewMode::Single => None,
            ViewMode::Multiview => std::num::NonZeroU32::new(0b11),
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ViewUniform {
    view_proj: [[f32; 4]; 4],
    light_dir: [f32; 4],
}

impl ViewUniform {
    fn new(camera: &Camera) -> ViewUniform {
        let light = Vec3::new(-0.4, -1.0, -0.3).normalize();
        ViewUniform {
            view_proj: camera.view_proj().to_cols_array_2d(),
            light_dir: light.extend(0.0).to_array(),
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PartInstance {
    model: [[f32; 4]; 4],
    colour: [f32; 4],
}

struct GpuMesh {
    vertices: wgpu::Buffer,
    indices: wgpu::Buffer,
    index_count: u32,
}

impl GpuMesh {
    fn new(device: &wgpu::Device, label: &str, data: &MeshData) -> GpuMesh {
        GpuMesh {
            vertices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&data.vertices),
                usage: wgpu::BufferUsages::VERTEX,
            }),
            indices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&data.indices),
                usage: wgpu::BufferUsages::INDEX,
            }),
            index_count: data.indices.len() as u32,
        }
    }
}

pub struct Renderer {
    mode: ViewMode,
    avatar_pipeline: wgpu::RenderPipeline,
    floor_pipeline: wgpu::RenderPipeline,
    /// One camera buffer per view, so both eyes can be recorded before one
    /// submit; with multiview the first holds both eyes.
    views: Vec<(wgpu::Buffer, wgpu::BindGroup)>,
    /// The avatar model's parts, each drawn instanced once per view.
    parts: Vec<(Part, GpuMesh)>,
    instances: wgpu::Buffer,
    instance_capacity: usize,
    /// Per part: (first instance, count) in `instances` for this frame.
    ranges: Vec<(u32, u32)>,
    staging: Vec<PartInstance>,
    /// The objects' meshes (one per kind) and the table's, drawn with the
    /// avatar pipeline from their own instance buffer: the table's one
    /// instance first, then the objects grouped by kind.
    props: Vec<GpuMesh>,
    prop_instances: wgpu::Buffer,
    prop_capacity: usize,
    /// Per prop mesh: (first instance, count) in `prop_instances`.
    prop_ranges: [(u32, u32); props::MESHES],
    prop_staging: Vec<PartInstance>,
    overlay: quads::Overlay,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("instance_capacity", &self.instance_capacity)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer drawing one view a pass.
    pub fn new(device: &wgpu::Device, colour_format: wgpu::TextureFormat) -> Renderer {
        Renderer::with_views(device, colour_format, ViewMode::Single)
    }

    /// A renderer whose passes address views as `mode` says; `Multiview`
    /// needs a device opened with `Features::MULTIVIEW`.
    pub fn with_views(
        device: &wgpu::Device,
        colour_format: wgpu::TextureFormat,
        mode: ViewMode,
    ) -> Renderer {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("roomscale shaders"),
            source: wgpu::ShaderSource::Wgsl(
                shader_source(include_str!("shaders.wgsl"), mode).into(),
            ),
        });
        let frame_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("frame"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
        let views = (0..MAX_VIEWS)
            .map(|_| {
                let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("view"),
                    size: (MAX_VIEWS * std::mem::size_of::<ViewUniform>()) as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("view"),
                    layout: &frame_layout,
                    entries: &[wgpu::BindGroupEntry {
                        binding: 0,
                        resource: buffer.as_entire_binding(),
                    }],
                });
                (buffer, group)
            })
            .collect();
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("roomscale"),
            bind_group_layouts: &[Some(&frame_layout)],
            immediate_size: 0,
        });
        let depth = Some(wgpu::DepthStencilState {
            format: DEPTH_FORMAT,
            depth_write_enabled: Some(true),
            depth_compare: Some(wgpu::CompareFunction::Less),
            stencil: Default::default(),
            bias: Default::default(),
        });
        let target = [Some(wgpu::ColorTargetState::from(colour_format))];
        let vertex_attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3];
        let instance_attributes = wgpu::vertex_attr_array![2 => Float32x4, 3 => Float32x4, 4 => Float32x4, 5 => Float32x4, 6 => Float32x4];
        let avatar_pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("avatars"),
            layout: Some(&layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("avatar_vs"),
                compilation_options: Default::default(),
                buffers: &[
                    Some(wgpu::VertexBufferLayout {
                        array_stride: std::mem::size_of::<Vertex>() as u64,
                        step_mode: wgpu::VertexStepMode::Vertex,
                        attributes: &vertex_attributes,
                    }),
                    Some(wgpu::VertexBufferLayout {
                        array_stride: std::mem::size_of::<PartInstance>() as u64,
                        step_mode: wgpu::VertexStepMode::Instance,
                        attributes: &instance_attributes,
                    }),
                ],
            },
            primitive: wgpu::PrimitiveState {
                cull_mode: Some(wgpu::Face::Back),
                ..Default::default()
            },
            depth_stencil: depth.clone(),
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("avatar_fs"),
                compilation_options: Default::default(),
                targets: &target,
            }),
            multiview_mask: mode.mask(),
            cache: None,
        });
        let floor_pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("floor"),
            layout: Some(&layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("floor_vs"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: Default::default(),
            depth_stencil: depth,
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("floor_fs"),
                compilation_options: Default::default(),
                targets: &target,
            }),
            multiview_mask: mode.mask(),
            cache: None,
        });
        let parts: Vec<(Part, GpuMesh)> = load_avatar(AVATAR_GLTF)
            .expect("the avatar model compiled into the binary is checked by its tests")
            .into_iter()
            .map(|part| {
                let mesh = GpuMesh::new(device, "avatar part", &part.mesh);
                (part, mesh)
            })
            .collect();
        let instance_capacity = 64;
        let overlay = quads::Overlay::new(device, colour_format, &frame_layout, mode);
        let props = props::meshes()
            .iter()
            .map(|mesh| GpuMesh::new(device, "prop", mesh))
            .collect();
        // Room for the table and a full room of objects from the start.
        let prop_capacity = 1 + roomscale_protocol::objects::MAX_OBJECTS_PER_ROOM;
        let prop_instances = Self::prop_buffer(device, prop_capacity);
        let mut prop_ranges = [(0, 0); props::MESHES];
        prop_ranges[props::TABLE_MESH] = (0, 1);
        Renderer {
            props,
            prop_instances,
            prop_capacity,
            prop_ranges,
            prop_staging: Vec::new(),
            mode,
            overlay,
            avatar_pipeline,
            floor_pipeline,
            views,
            instances: Self::instance_buffer(device, parts.len(), instance_capacity),
            ranges: vec![(0, 0); parts.len()],
            parts,
            instance_capacity,
            staging: Vec::new(),
        }
    }

    fn instance_buffer(device: &wgpu::Device, parts: usize, capacity: usize) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("avatar instances"),
            size: (capacity * parts * std::mem::size_of::<PartInstance>()) as u64,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Holds the table's instance from the start, so a mode that never sets
    /// objects still shows the table.
    fn prop_buffer(device: &wgpu::Device, capacity: usize) -> wgpu::Buffer {
        let mut contents = vec![PartInstance::zeroed(); capacity];
        contents[0] = table_instance();
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("object instances"),
            contents: bytemuck::cast_slice(&contents),
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Sets the shared objects drawn from now on (every view, until the next
    /// call), uploaded in one write; the table is always drawn.
    pub fn prepare_objects(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        objects: &[ObjectInstance],
    ) {
        if 1 + objects.len() > self.prop_capacity {
            self.prop_capacity = (1 + objects.len()).next_power_of_two();
            self.prop_instances = Self::prop_buffer(device, self.prop_capacity);
        }
        self.prop_staging.clear();
        self.prop_staging.push(table_instance());
        self.prop_ranges[props::TABLE_MESH] = (0, 1);
        for kind in roomscale_protocol::objects::ObjectKind::ALL {
            let first = self.prop_staging.len() as u32;
            for object in objects.iter().filter(|o| o.kind == kind) {
                self.prop_staging.push(PartInstance {
                    model: object.model().to_cols_array_2d(),
                    colour: rgba(object.shown_colour()),
                });
            }
            self.prop_ranges[props::mesh_index(kind)] =
                (first, self.prop_staging.len() as u32 - first);
        }
        queue.write_buffer(
            &self.prop_instances,
            0,
            bytemuck::cast_slice(&self.prop_staging),
        );
    }

    /// Builds this frame's instance data for every avatar and uploads it.
    pub fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        avatars: &[AvatarInstance],
    ) {
        if avatars.len() > self.instance_capacity {
            self.instance_capacity = avatars.len().next_power_of_two();
            self.instances =
                Self::instance_buffer(device, self.parts.len(), self.instance_capacity);
        }
        self.staging.clear();
        for (range, (part, _)) in self.ranges.iter_mut().zip(&self.parts) {
            let first = self.staging.len() as u32;
            for avatar in avatars {
                let pose = &avatar.pose;
                // An untracked hand is hidden rather than frozen in place.
                let joint = match part.joint {
                    JointKind::Head => &pose.head,
                    JointKind::LeftHand if pose.flags.contains(PoseFlags::LEFT_TRACKED) => {
                        &pose.left
                    }
                    JointKind::RightHand if pose.flags.contains(PoseFlags::RIGHT_TRACKED) => {
                        &pose.right
                    }
                    _ => continue,
                };
                self.staging.push(instance(
                    joint,
                    rgba(part.fixed_colour.unwrap_or(avatar.colour)),
                ));
            }
            *range = (first, self.staging.len() as u32 - first);
        }
        queue.write_buffer(&self.instances, 0, bytemuck::cast_slice(&self.staging));
    }

    /// Makes `view` (an RGBA texture) available to [`Quad`]s.
    pub fn register_quad_texture(
        &mut self,
        device: &wgpu::Device,
        view: &wgpu::TextureView,
    ) -> QuadTexture {
        self.overlay.register_texture(device, view)
    }

    /// Sets this frame's quads and line segments (pairs of vertices), drawn
    /// over the room in every view until the next call.
    pub fn prepare_overlay(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        quads: &[Quad],
        lines: &[LineVertex],
    ) {
        self.overlay.prepare(device, queue, quads, lines);
    }

    pub fn view_mode(&self) -> ViewMode {
        self.mode
    }

    /// Records view number `view` (below [`MAX_VIEWS`]: 0 for a window, 0 and 1
    /// for two eyes) of the prepared scene into `colour`, cleared first.
    pub fn render(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: ViewTarget<'_>,
        camera: &Camera,
    ) {
        debug_assert_eq!(
            self.mode,
            ViewMode::Single,
            "a multiview renderer draws with render_both"
        );
        let (buffer, group) = &self.views[target.view];
        queue.write_buffer(buffer, 0, bytemuck::bytes_of(&ViewUniform::new(camera)));
        self.record(encoder, target, group);
    }

    /// Records both eyes in one multiview pass into `target`, whose colour and
    /// depth are two-layer views (layer 0 the left eye).
    pub fn render_both(
        &self,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        target: ViewTarget<'_>,
        cameras: [&Camera; MAX_VIEWS],
    ) {
        debug_assert_eq!(
            self.mode,
            ViewMode::Multiview,
            "a single-view renderer draws with render"
        );
        let uniforms = cameras.map(ViewUniform::new);
        let (buffer, group) = &self.views[0];
        queue.write_buffer(buffer, 0, bytemuck::cast_slice(&uniforms));
        self.record(encoder, target, group);
    }

    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        target: ViewTarget<'_>,
        group: &wgpu::BindGroup,
    ) {
        let (colour, depth) = (target.colour, target.depth);
        let timestamp_writes = target.timestamps;
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("scene"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: colour,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color {
                        r: 0.52,
                        g: 0.66,
                        b: 0.82,
                        a: 1.0,
                    }),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: depth,
                depth_ops: Some(wgpu::Operations {
                    load: wgpu::LoadOp::Clear(1.0),
                    store: if target.keep_depth {
                        wgpu::StoreOp::Store
                    } else {
                        wgpu::StoreOp::Discard
                    },
                }),
                stencil_ops: None,
            }),
            timestamp_writes,
            occlusion_query_set: None,
            multiview_mask: self.mode.mask(),
        });
        pass.set_bind_group(0, group, &[]);
        pass.set_pipeline(&self.floor_pipeline);
        pass.draw(0..6, 0..1);
        pass.set_pipeline(&self.avatar_pipeline);
        pass.set_vertex_buffer(1, self.instances.slice(..));
        for ((_, mesh), &(first, count)) in self.parts.iter().zip(&self.ranges) {
            if count == 0 {
                continue;
            }
            pass.set_vertex_buffer(0, mesh.vertices.slice(..));
            pass.set_index_buffer(mesh.indices.slice(..), wgpu::IndexFormat::Uint16);
            pass.draw_indexed(0..mesh.index_count, 0, first..first + count);
        }
        pass.set_vertex_buffer(1, self.prop_instances.slice(..));
        for (mesh, &(first, count)) in self.props.iter().zip(&self.prop_ranges) {
            if count == 0 {
                continue;
            }
            pass.set_vertex_buffer(0, mesh.vertices.slice(..));
            pass.set_index_buffer(mesh.indices.slice(..), wgpu::IndexFormat::Uint16);
            pass.draw_indexed(0..mesh.index_count, 0, first..first + count);
        }
        self.overlay.draw(&mut pass);
    }
}

/// The table, whose mesh is built in room coordinates.
fn table_instance() -> PartInstance {
    PartInstance {
        model: Mat4::IDENTITY.to_cols_array_2d(),
        colour: rgba(TABLE_COLOUR),
    }
}

fn rgba(c: [f32; 3]) -> [f32; 4] {
    [c[0], c[1], c[2], 1.0]
}

fn instance(joint: &Joint, colour: [f32; 4]) -> PartInstance {
    let model =
        Mat4::from_rotation_translation(quat(joint.orientation), Vec3::from(joint.position));
    PartInstance {
        model: model.to_cols_array_2d(),
        colour,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiview_is_trusted_on_gpus_and_recent_lavapipe_only() {
        let check = |device_type, driver_info: &str, expected| {
            let info = wgpu::AdapterInfo {
                device_type,
                driver_info: driver_info.into(),
                ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
            };
            assert_eq!(multiview_is_trustworthy(&info), expected, "{driver_info}");
        };
        check(wgpu::DeviceType::Cpu, "Mesa 22.3.6 (LLVM 15.0.6)", false);
        check(wgpu::DeviceType::Cpu, "Mesa 25.0.7-2 (LLVM 19.1.7)", true);
        check(wgpu::DeviceType::Cpu, "something else", false);
        check(wgpu::DeviceType::DiscreteGpu, "570.86.16", true);
        check(wgpu::DeviceType::IntegratedGpu, "Mesa 22.3.6", true);
    }

    #[test]
    fn a_symmetric_fov_projects_as_the_window_perspective_does() {
        let half = 40f32.to_radians();
        let aspect = 1.0;
        let from_fov = projection_from_fov(-half, half, half, -half);
        let window = perspective(2.0 * half, aspect);
        for (a, b) in from_fov.to_cols_array().iter().zip(window.to_cols_array()) {
            assert!((a - b).abs() < 1e-4, "{from_fov} vs {window}");
        }
    }

    #[test]
    fn an_asymmetric_fov_puts_its_edges_at_the_clip_edges() {
        let (left, right, up, down) = (-0.7f32, 0.6f32, 0.75f32, -0.8f32);
        let projection = projection_from_fov(left, right, up, down);
        let edge = |x: f32, y: f32| {
            let clip = projection * glam::Vec4::new(x, y, -1.0, 1.0);
            clip.truncate() / clip.w
        };
        assert!((edge(left.tan(), 0.0).x + 1.0).abs() < 1e-5);
        assert!((edge(right.tan(), 0.0).x - 1.0).abs() < 1e-5);
        assert!((edge(0.0, up.tan()).y - 1.0).abs() < 1e-5);
        assert!((edge(0.0, down.tan()).y + 1.0).abs() < 1e-5);
        let near = projection * glam::Vec4::new(0.0, 0.0, -NEAR, 1.0);
        let far = projection * glam::Vec4::new(0.0, 0.0, -FAR, 1.0);
        assert!((near.z / near.w).abs() < 1e-5 && (far.z / far.w - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_ray_through_a_projected_point_passes_through_it() {
        let camera = Camera::look_at(
            Vec3::new(0.3, 1.6, 2.0),
            Vec3::new(0.0, 0.8, -1.6),
            70f32.to_radians(),
            16.0 / 9.0,
        );
        assert!((camera.position() - Vec3::new(0.3, 1.6, 2.0)).length() < 1e-5);
        let point = Vec3::new(0.25, 0.8, -1.5);
        let ndc = camera.project(point).expect("in front");
        assert!(ndc.x.abs() < 1.0 && ndc.y.abs() < 1.0 && (0.0..1.0).contains(&ndc.z));
        let (origin, direction) = camera.ray([ndc.x, ndc.y]);
        let along = (point - origin).dot(direction);
        let miss = (origin + direction * along - point).length();
        assert!(miss < 1e-4, "the ray misses the point by {miss} m");
        assert!(camera.project(Vec3::new(0.3, 1.6, 3.0)).is_none(), "behind");
    }

    #[test]
    fn a_joint_camera_looks_along_minus_z() {
        let joint = Joint {
            position: [1.0, 1.6, 2.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
        };
        let camera = Camera::from_joint(&joint, Mat4::IDENTITY);
        let ahead = camera.view.transform_point3(Vec3::new(1.0, 1.6, 1.0));
        assert!(
            (ahead - Vec3::new(0.0, 0.0, -1.0)).length() < 1e-6,
            "{ahead}"
        );
    }
}
