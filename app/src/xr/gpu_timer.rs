//! GPU time of the eye passes, from timestamp queries around them: what the
//! headset benchmark reports beside the frame's CPU time.

use std::time::Duration;

use super::vulkan::XrGpu;

pub(super) struct GpuTimer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f32,
}

impl GpuTimer {
    pub(super) fn new(gpu: &XrGpu) -> GpuTimer {
        let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("eye pass timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 4,
        });
        let size = 4 * std::mem::size_of::<u64>() as u64;
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps readback"),
            size,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        GpuTimer {
            queries,
            resolve,
            readback,
            period_ns: gpu.queue.get_timestamp_period(),
        }
    }

    pub(super) fn writes(&self, eye: usize) -> wgpu::RenderPassTimestampWrites<'_> {
        let first = 2 * eye as u32;
        wgpu::RenderPassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(first),
            end_of_pass_write_index: Some(first + 1),
        }
    }

    pub(super) fn resolve(&self, encoder: &mut wgpu::CommandEncoder, passes: usize) {
        let queries = 2 * passes as u32;
        encoder.resolve_query_set(&self.queries, 0..queries, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, None);
    }

    /// The eye passes' time in the last submitted frame (waits for it).
    pub(super) fn read(&self, device: &wgpu::Device, passes: usize) -> Option<Duration> {
        let slice = self.readback.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        device.poll(wgpu::PollType::wait_indefinitely()).ok()?;
        let ticks: Vec<u64> = {
            let mapped = slice.get_mapped_range().ok()?;
            bytemuck::cast_slice(&mapped).to_vec()
        };
        self.readback.unmap();
        let mut total = 0;
        for pass in ticks.chunks_exact(2).take(passes) {
            total += pass[1].checked_sub(pass[0])?;
        }
        Some(Duration::from_nanos(
            (total as f64 * f64::from(self.period_ns)) as u64,
        ))
    }
}
