//! Things drawn on top of the room that are not avatars: textured quads in
//! the world (the headset's UI panel, name tags) and coloured lines (the
//! pointing laser, the teleport arc). Quads sample textures registered once
//! with [`Overlay::register_texture`]; both kinds are rebuilt every frame by
//! [`Overlay::prepare`] and drawn in the scene's pass.

use glam::Mat4;
use wgpu::util::DeviceExt;

use super::{DEPTH_FORMAT, ViewMode, shader_source};

/// A texture quads can show, from [`Overlay::register_texture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuadTexture(usize);

/// One textured quad: `model` maps the unit square (centred, in its XY plane,
/// facing +Z) into the room; `uv_rect` is the texture's top-left and
/// bottom-right corner shown on it.
#[derive(Debug, Clone, Copy)]
pub struct Quad {
    pub texture: QuadTexture,
    pub model: Mat4,
    pub uv_rect: [f32; 4],
}

/// One end of a line segment.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LineVertex {
    pub position: [f32; 3],
    pub colour: [f32; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct QuadInstance {
    model: [[f32; 4]; 4],
    uv_rect: [f32; 4],
}

pub(super) struct Overlay {
    quad_pipeline: wgpu::RenderPipeline,
    line_pipeline: wgpu::RenderPipeline,
    texture_layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    textures: Vec<wgpu::BindGroup>,
    quads: GrowingBuffer,
    lines: GrowingBuffer,
    /// This frame's quads, grouped by texture: (texture, first, count).
    batches: Vec<(QuadTexture, u32, u32)>,
    line_vertices: u32,
    staging: Vec<QuadInstance>,
}

impl Overlay {
    pub(super) fn new(
        device: &wgpu::Device,
        colour_format: wgpu::TextureFormat,
        frame_layout: &wgpu::BindGroupLayout,
        mode: ViewMode,
    ) -> Overlay {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("quads and lines"),
            source: wgpu::ShaderSource::Wgsl(
                shader_source(include_str!("quads.wgsl"), mode).into(),
            ),
        });
        let texture_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("quad texture"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let quad_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("quads"),
            bind_group_layouts: &[Some(frame_layout), Some(&texture_layout)],
            immediate_size: 0,
        });
        let line_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("lines"),
            bind_group_layouts: &[Some(frame_layout)],
            immediate_size: 0,
        });
        // Tested against the scene's depth, never written: a panel does not
        // hide the laser that points at it.
        let depth = Some(wgpu::DepthStencilState {
            format: DEPTH_FORMAT,
            depth_write_enabled: Some(false),
            depth_compare: Some(wgpu::CompareFunction::LessEqual),
            stencil: Default::default(),
            bias: Default::default(),
        });
        let blended = [Some(wgpu::ColorTargetState {
            format: colour_format,
            blend: Some(wgpu::BlendState::ALPHA_BLENDING),
            write_mask: wgpu::ColorWrites::ALL,
        })];
        let quad_attributes = wgpu::vertex_attr_array![0 => Float32x4, 1 => Float32x4, 2 => Float32x4, 3 => Float32x4, 4 => Float32x4];
        let quad_pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("quads"),
            layout: Some(&quad_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("quad_vs"),
                compilation_options: Default::default(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<QuadInstance>() as u64,
                    step_mode: wgpu::VertexStepMode::Instance,
                    attributes: &quad_attributes,
                })],
            },
            // Panels are seen from both sides.
            primitive: Default::default(),
            depth_stencil: depth.clone(),
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("quad_fs"),
                compilation_options: Default::default(),
                targets: &blended,
            }),
            multiview_mask: mode.mask(),
            cache: None,
        });
        let line_attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x4];
        let line_pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("lines"),
            layout: Some(&line_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("line_vs"),
                compilation_options: Default::default(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<LineVertex>() as u64,
                    step_mode: wgpu::VertexStepMode::Vertex,
                    attributes: &line_attributes,
                })],
            },
            primitive: wgpu::PrimitiveState {
                topology: wgpu::PrimitiveTopology::LineList,
                ..Default::default()
            },
            depth_stencil: depth,
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("line_fs"),
                compilation_options: Default::default(),
                targets: &blended,
            }),
            multiview_mask: mode.mask(),
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("quad"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Overlay {
            quad_pipeline,
            line_pipeline,
            texture_layout,
            sampler,
            textures: Vec::new(),
            quads: GrowingBuffer::new("quads"),
            lines: GrowingBuffer::new("lines"),
            batches: Vec::new(),
            line_vertices: 0,
            staging: Vec::new(),
        }
    }

    pub(super) fn register_texture(
        &mut self,
        device: &wgpu::Device,
        view: &wgpu::TextureView,
    ) -> QuadTexture {
        self.textures
            .push(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("quad texture"),
                layout: &self.texture_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::TextureView(view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::Sampler(&self.sampler),
                    },
                ],
            }));
        QuadTexture(self.textures.len() - 1)
    }

    pub(super) fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        quads: &[Quad],
        lines: &[LineVertex],
    ) {
        self.staging.clear();
        self.batches.clear();
        let mut order: Vec<&Quad> = quads.iter().collect();
        order.sort_by_key(|quad| quad.texture.0);
        for quad in order {
            let index = self.staging.len() as u32;
            match self.batches.last_mut() {
                Some((texture, _, count)) if *texture == quad.texture => *count += 1,
                _ => self.batches.push((quad.texture, index, 1)),
            }
            self.staging.push(QuadInstance {
                model: quad.model.to_cols_array_2d(),
                uv_rect: quad.uv_rect,
            });
        }
        self.quads
            .write(device, queue, bytemuck::cast_slice(&self.staging));
        self.lines.write(device, queue, bytemuck::cast_slice(lines));
        self.line_vertices = lines.len() as u32;
    }

    /// Draws the prepared quads and lines; the frame bind group is set.
    pub(super) fn draw(&self, pass: &mut wgpu::RenderPass<'_>) {
        if let (false, Some(buffer)) = (self.batches.is_empty(), self.quads.buffer.as_ref()) {
            pass.set_pipeline(&self.quad_pipeline);
            pass.set_vertex_buffer(0, buffer.slice(..));
            for &(texture, first, count) in &self.batches {
                pass.set_bind_group(1, &self.textures[texture.0], &[]);
                pass.draw(0..6, first..first + count);
            }
        }
        if let (true, Some(buffer)) = (self.line_vertices > 0, self.lines.buffer.as_ref()) {
            pass.set_pipeline(&self.line_pipeline);
            pass.set_vertex_buffer(0, buffer.slice(..));
            pass.draw(0..self.line_vertices, 0..1);
        }
    }
}

/// A vertex buffer that grows to the largest frame seen.
struct GrowingBuffer {
    label: &'static str,
    buffer: Option<wgpu::Buffer>,
}

impl GrowingBuffer {
    fn new(label: &'static str) -> GrowingBuffer {
        GrowingBuffer {
            label,
            buffer: None,
        }
    }

    fn write(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &self.buffer {
            Some(buffer) if buffer.size() >= bytes.len() as u64 => {
                queue.write_buffer(buffer, 0, bytes);
            }
            _ => {
                self.buffer = Some(
                    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(self.label),
                        contents: bytes,
                        usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
                    }),
                );
            }
        }
    }
}

/// A quad's model matrix: centred at `centre`, `width` × `height` metres,
/// turned by `rotation` (its face looks along the rotated +Z).
pub fn quad_model(centre: glam::Vec3, rotation: glam::Quat, width: f32, height: f32) -> Mat4 {
    Mat4::from_scale_rotation_translation(glam::Vec3::new(width, height, 1.0), rotation, centre)
}
