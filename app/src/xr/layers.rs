//! Depth for the compositor (`XR_KHR_composition_layer_depth`): each eye's
//! projection view carries the depth image it was drawn with, so the runtime
//! can reproject more exactly. The `openxr` crate has no safe builder for that
//! extension chain, so this module links it by hand.
// Chaining a structure through `next` is a raw pointer by the OpenXR ABI.
#![allow(unsafe_code)]

use openxr as xr;

use crate::render;

/// One eye's depth description; must stay alive until `xrEndFrame` returns.
#[derive(Debug, Clone, Copy)]
pub struct DepthInfo(xr::sys::CompositionLayerDepthInfoKHR);

impl DepthInfo {
    /// Layer `eye` of `depth`, drawn with the renderer's depth range (0 at the
    /// near plane, 1 at the far plane).
    pub fn new(depth: &xr::Swapchain<xr::Vulkan>, eye: u32, rect: xr::Rect2Di) -> DepthInfo {
        DepthInfo(xr::sys::CompositionLayerDepthInfoKHR {
            ty: xr::sys::CompositionLayerDepthInfoKHR::TYPE,
            next: std::ptr::null(),
            sub_image: xr::sys::SwapchainSubImage {
                swapchain: depth.as_raw(),
                image_rect: rect,
                image_array_index: eye,
            },
            min_depth: 0.0,
            max_depth: 1.0,
            near_z: render::NEAR_PLANE,
            far_z: render::FAR_PLANE,
        })
    }
}

/// `view` with `depth` chained to it; the borrow keeps `depth` alive for as
/// long as the view is used.
pub fn with_depth<'a>(
    view: xr::CompositionLayerProjectionView<'a, xr::Vulkan>,
    depth: &'a DepthInfo,
) -> xr::CompositionLayerProjectionView<'a, xr::Vulkan> {
    let mut raw = view.into_raw();
    raw.next = std::ptr::from_ref(&depth.0).cast();
    // SAFETY: `raw` came from a valid view; the chained structure is a valid
    // depth info that outlives the returned view ('a), and the swapchain it
    // names outlives it too (the depth swapchain is borrowed by `DepthInfo::new`'s
    // caller for the frame).
    unsafe { xr::CompositionLayerProjectionView::from_raw(raw) }
}
