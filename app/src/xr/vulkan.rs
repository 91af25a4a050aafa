//! Vulkan shared between OpenXR and wgpu: the runtime creates the Vulkan
//! instance and device (`XR_KHR_vulkan_enable2`, so it can add what its
//! compositor needs), wgpu adopts them through wgpu-hal, and the runtime's
//! swapchain images become wgpu textures the one renderer draws into.
//!
//! This is the only module of the app that holds raw graphics handles.
// Handing raw Vulkan handles between two libraries cannot be done in safe
// Rust; every `unsafe` block below states the contract it relies on.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use ash::vk::{self, Handle};
use openxr as xr;
use thiserror::Error;
use wgpu::hal;

/// The Vulkan version asked of the instance and device. naga emits SPIR-V 1.6
/// for wgpu 30, which a Vulkan 1.3 device consumes without validation errors.
pub const VULKAN_API: u32 = vk::API_VERSION_1_3;
const VULKAN_API_XR: xr::Version = xr::Version::new(1, 3, 0);

const VALIDATION_LAYER: &CStr = c"VK_LAYER_KHRONOS_validation";

/// Validation messages of error severity seen in this process.
static VALIDATION_ERRORS: AtomicUsize = AtomicUsize::new(0);

/// How many Vulkan validation errors were reported so far (0 unless
/// validation was asked for with [`GpuOptions::validation`]).
pub fn validation_errors() -> usize {
    VALIDATION_ERRORS.load(Ordering::Relaxed)
}

#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "the Vulkan loader could not be opened ({0}); install it (on Debian: apt-get install libvulkan1 mesa-vulkan-drivers)"
    )]
    NoVulkan(String),
    #[error(
        "the OpenXR runtime needs Vulkan {min} to {max}.x but Roomscale draws with Vulkan 1.3; update the runtime"
    )]
    VulkanVersion { min: xr::Version, max: xr::Version },
    #[error(
        "Vulkan validation was asked for but the layer VK_LAYER_KHRONOS_validation is missing; install it (on Debian: apt-get install vulkan-validationlayers)"
    )]
    NoValidationLayer,
    #[error("the OpenXR runtime could not {action}: {error}")]
    Xr {
        action: &'static str,
        error: xr::sys::Result,
    },
    #[error("Vulkan could not {action}: {error}")]
    Vulkan {
        action: &'static str,
        error: vk::Result,
    },
    #[error(
        "the headset's graphics device ({0}) is not usable for drawing (wgpu refused it); update the graphics driver"
    )]
    UnusableAdapter(String),
    #[error("the headset's graphics device does not support Vulkan 1.3 ({0}); update the driver")]
    DeviceTooOld(String),
    #[error("wgpu could not open the headset's graphics device: {0}")]
    Device(String),
}

fn xr_error(action: &'static str) -> impl Fn(xr::sys::Result) -> GpuError {
    move |error| GpuError::Xr { action, error }
}

fn vk_error(action: &'static str) -> impl Fn(vk::Result) -> GpuError {
    move |error| GpuError::Vulkan { action, error }
}

/// What to ask of the shared device.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuOptions {
    /// Load the Khronos validation layer and count its errors.
    pub validation: bool,
}

/// The device wgpu draws with, created by the runtime for the headset.
pub struct XrGpu {
    // Field order is drop order: wgpu's device goes before its instance.
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    /// Raw handles for `xrCreateSession`.
    pub session_info: xr::vulkan::SessionCreateInfo,
    _adapter: wgpu::Adapter,
    _instance: wgpu::Instance,
}

impl std::fmt::Debug for XrGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XrGpu")
            .field("adapter", &self.adapter.name)
            .finish_non_exhaustive()
    }
}

impl XrGpu {
    /// Creates the Vulkan instance and device through the runtime for `system`
    /// and hands them to wgpu.
    pub fn new(
        xr_instance: &xr::Instance,
        system: xr::SystemId,
        options: GpuOptions,
    ) -> Result<XrGpu, GpuError> {
        let requirements = xr_instance
            .graphics_requirements::<xr::Vulkan>(system)
            .map_err(xr_error("say which Vulkan versions it supports"))?;
        if VULKAN_API_XR < requirements.min_api_version_supported
            || VULKAN_API_XR.major() > requirements.max_api_version_supported.major()
        {
            return Err(GpuError::VulkanVersion {
                min: requirements.min_api_version_supported,
                max: requirements.max_api_version_supported,
            });
        }
        // SAFETY: loading the system's Vulkan loader, which follows the Vulkan ABI.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| GpuError::NoVulkan(e.to_string()))?;

        let flags = wgpu::InstanceFlags::empty();
        let mut extensions = hal::vulkan::Instance::desired_extensions(&entry, VULKAN_API, flags)
            .map_err(|e| GpuError::NoVulkan(e.to_string()))?;
        let mut layers: Vec<*const std::ffi::c_char> = Vec::new();
        if options.validation {
            // SAFETY: a plain query on a loaded entry.
            let available = unsafe { entry.enumerate_instance_layer_properties() }
                .map_err(vk_error("list its layers"))?;
            if !available
                .iter()
                .any(|layer| layer.layer_name_as_c_str() == Ok(VALIDATION_LAYER))
            {
                return Err(GpuError::NoValidationLayer);
            }
            layers.push(VALIDATION_LAYER.as_ptr());
            extensions.push(ash::ext::debug_utils::NAME);
        }
        let extension_names: Vec<_> = extensions.iter().map(|e| e.as_ptr()).collect();
        let app_info = vk::ApplicationInfo::default()
            .application_name(c"Roomscale")
            .engine_name(c"Roomscale")
            .api_version(VULKAN_API);
        let create_info = vk::InstanceCreateInfo::default()
            .application_info(&app_info)
            .enabled_extension_names(&extension_names)
            .enabled_layer_names(&layers);
        let get_instance_proc_addr = entry.static_fn().get_instance_proc_addr;

        // SAFETY: `create_info` and everything it points to live across the
        // call; the function pointer comes from the same loader as `entry`.
        let raw_instance = unsafe {
            xr_instance.create_vulkan_instance(
                system,
                std::mem::transmute::<
                    vk::PFN_vkGetInstanceProcAddr,
                    xr::sys::platform::VkGetInstanceProcAddr,
                >(get_instance_proc_addr),
                std::ptr::from_ref(&create_info).cast(),
            )
        }
        .map_err(xr_error("create a Vulkan instance"))?
        .map_err(|raw| vk_error("create an instance")(vk::Result::from_raw(raw)))?;
        // SAFETY: the runtime just created this instance from `entry`'s loader.
        let instance = unsafe {
            ash::Instance::load(
                entry.static_fn(),
                vk::Instance::from_raw(raw_instance as u64),
            )
        };
        let messenger = if options.validation {
            Some(ValidationMessenger::new(&entry, &instance)?)
        } else {
            None
        };

        // SAFETY: the instance was created from `entry` with exactly
        // `extensions` (a superset of wgpu's desired ones) at VULKAN_API; the
        // drop callback keeps it alive until wgpu is done with it and then
        // destroys the messenger before the instance.
        let hal_instance = {
            let instance_for_drop = instance.clone();
            let drop_callback: hal::DropCallback = Box::new(move || {
                if let Some(messenger) = messenger {
                    messenger.destroy();
                }
                // SAFETY: wgpu has released every object made from this instance.
                unsafe { instance_for_drop.destroy_instance(None) };
            });
            unsafe {
                hal::vulkan::Instance::from_raw(
                    entry.clone(),
                    instance.clone(),
                    VULKAN_API,
                    0,
                    None,
                    extensions,
                    flags,
                    wgpu::MemoryBudgetThresholds::default(),
                    false,
                    Some(drop_callback),
                )
            }
            .map_err(|e| GpuError::NoVulkan(e.to_string()))?
        };

        // SAFETY: the instance came from `create_vulkan_instance` for this system.
        let physical_device = vk::PhysicalDevice::from_raw(
            unsafe { xr_instance.vulkan_graphics_device(system, raw_instance) }
                .map_err(xr_error("name the headset's graphics device"))? as u64,
        );
        let exposed = hal_instance
            .expose_adapter(physical_device)
            .ok_or_else(|| GpuError::UnusableAdapter(format!("{physical_device:?}")))?;
        let name = exposed.info.name.clone();
        let device_api = exposed
            .adapter
            .physical_device_capabilities()
            .properties()
            .api_version;
        if device_api < VULKAN_API {
            return Err(GpuError::DeviceTooOld(name));
        }
        // GPU time per frame is measured where the device can timestamp, and
        // both eyes are drawn in one pass where it has multiview.
        let features =
            exposed.features & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::MULTIVIEW);
        let mut limits = wgpu::Limits::default();
        if features.contains(wgpu::Features::MULTIVIEW) {
            limits.max_multiview_view_count = 2;
        }
        let enabled_extensions = exposed.adapter.required_device_extensions(features);
        let mut device_features = exposed
            .adapter
            .physical_device_features(&enabled_extensions, features);
        // SAFETY: a plain query on a valid physical device.
        let queue_family =
            unsafe { instance.get_physical_device_queue_family_properties(physical_device) }
                .iter()
                .position(|family| family.queue_flags.contains(vk::QueueFlags::GRAPHICS))
                .ok_or_else(|| GpuError::UnusableAdapter(format!("{name} has no graphics queue")))?
                as u32;
        let priorities = [1.0];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&priorities)];
        let extension_names: Vec<_> = enabled_extensions.iter().map(|e| e.as_ptr()).collect();
        let device_info = device_features.add_to_device_create(
            vk::DeviceCreateInfo::default()
                .queue_create_infos(&queues)
                .enabled_extension_names(&extension_names),
        );
        // SAFETY: `device_info` and its chain outlive the call; the physical
        // device is the one the runtime named.
        let raw_device = unsafe {
            xr_instance.create_vulkan_device(
                system,
                std::mem::transmute::<
                    vk::PFN_vkGetInstanceProcAddr,
                    xr::sys::platform::VkGetInstanceProcAddr,
                >(get_instance_proc_addr),
                physical_device.as_raw() as _,
                std::ptr::from_ref(&device_info).cast(),
            )
        }
        .map_err(xr_error("create a Vulkan device"))?
        .map_err(|raw| vk_error("create a device")(vk::Result::from_raw(raw)))?;
        // SAFETY: the device was just created on this instance.
        let device = unsafe {
            ash::Device::load(instance.fp_v1_0(), vk::Device::from_raw(raw_device as u64))
        };
        // SAFETY: created from this adapter with `enabled_extensions`, the
        // features wgpu-hal chose for them and `queue_family`; wgpu-hal owns it.
        let open = unsafe {
            exposed.adapter.device_from_raw(
                device,
                None,
                &enabled_extensions,
                features,
                &limits,
                &wgpu::MemoryHints::Performance,
                queue_family,
                0,
            )
        }
        .map_err(|e| GpuError::Device(e.to_string()))?;
        // SAFETY: each handle was made from the one before it, as wgpu requires.
        let wgpu_instance = unsafe { wgpu::Instance::from_hal::<hal::api::Vulkan>(hal_instance) };
        let adapter = unsafe { wgpu_instance.create_adapter_from_hal(exposed) };
        let (device, queue) = unsafe {
            adapter.create_device_from_hal(
                open,
                &wgpu::DeviceDescriptor {
                    label: Some("headset"),
                    required_features: features,
                    required_limits: limits,
                    ..Default::default()
                },
            )
        }
        .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(XrGpu {
            device,
            queue,
            adapter: adapter.get_info(),
            features,
            session_info: xr::vulkan::SessionCreateInfo {
                instance: raw_instance,
                physical_device: physical_device.as_raw() as _,
                device: raw_device,
                queue_family_index: queue_family,
                queue_index: 0,
            },
            _adapter: adapter,
            _instance: wgpu_instance,
        })
    }

    /// Wraps one image of a runtime swapchain as a wgpu texture with
    /// `layers` array layers. The runtime keeps owning the image.
    pub fn wrap_swapchain_image(
        &self,
        image: u64,
        descriptor: &wgpu::TextureDescriptor<'_>,
    ) -> wgpu::Texture {
        let hal_descriptor = hal::TextureDescriptor {
            label: descriptor.label,
            size: descriptor.size,
            mip_level_count: descriptor.mip_level_count,
            sample_count: descriptor.sample_count,
            dimension: descriptor.dimension,
            format: descriptor.format,
            usage: hal_uses(descriptor.usage, descriptor.format),
            memory_flags: hal::MemoryFlags::empty(),
            view_formats: Vec::new(),
        };
        // SAFETY: the device is Vulkan (we made it); the image belongs to a
        // swapchain created on it with this size, format and usage; the empty
        // drop callback leaves destroying it to the runtime, which happens only
        // after the swapchain (and so these textures) is dropped.
        unsafe {
            let hal_device = self
                .device
                .as_hal::<hal::api::Vulkan>()
                .expect("the headset device is a Vulkan device");
            let texture = hal_device.texture_from_raw(
                vk::Image::from_raw(image),
                &hal_descriptor,
                Some(Box::new(|| {})),
                hal::vulkan::TextureMemory::External,
            );
            drop(hal_device);
            self.device.create_texture_from_hal::<hal::api::Vulkan>(
                texture,
                descriptor,
                wgpu::TextureUses::UNINITIALIZED,
            )
        }
    }
}

fn hal_uses(usage: wgpu::TextureUsages, format: wgpu::TextureFormat) -> wgpu::TextureUses {
    let mut uses = wgpu::TextureUses::empty();
    if usage.contains(wgpu::TextureUsages::RENDER_ATTACHMENT) {
        uses |= if format.is_depth_stencil_format() {
            wgpu::TextureUses::DEPTH_STENCIL_WRITE
        } else {
            wgpu::TextureUses::COLOR_TARGET
        };
    }
    if usage.contains(wgpu::TextureUsages::COPY_SRC) {
        uses |= wgpu::TextureUses::COPY_SRC;
    }
    if usage.contains(wgpu::TextureUsages::TEXTURE_BINDING) {
        uses |= wgpu::TextureUses::RESOURCE;
    }
    uses
}

/// The debug messenger that counts validation errors and prints each one.
struct ValidationMessenger {
    loader: ash::ext::debug_utils::Instance,
    messenger: vk::DebugUtilsMessengerEXT,
}

impl ValidationMessenger {
    fn new(entry: &ash::Entry, instance: &ash::Instance) -> Result<Self, GpuError> {
        let loader = ash::ext::debug_utils::Instance::new(entry, instance);
        let info = vk::DebugUtilsMessengerCreateInfoEXT::default()
            .message_severity(
                vk::DebugUtilsMessageSeverityFlagsEXT::ERROR
                    | vk::DebugUtilsMessageSeverityFlagsEXT::WARNING,
            )
            .message_type(
                vk::DebugUtilsMessageTypeFlagsEXT::VALIDATION
                    | vk::DebugUtilsMessageTypeFlagsEXT::GENERAL
                    | vk::DebugUtilsMessageTypeFlagsEXT::PERFORMANCE,
            )
            .pfn_user_callback(Some(on_validation_message));
        // SAFETY: the instance was created with VK_EXT_debug_utils enabled.
        let messenger = unsafe { loader.create_debug_utils_messenger(&info, None) }
            .map_err(vk_error("start its validation messenger"))?;
        Ok(ValidationMessenger { loader, messenger })
    }

    fn destroy(self) {
        // SAFETY: created on this instance, destroyed once, before the instance.
        unsafe {
            self.loader
                .destroy_debug_utils_messenger(self.messenger, None)
        };
    }
}

unsafe extern "system" fn on_validation_message(
    severity: vk::DebugUtilsMessageSeverityFlagsEXT,
    _types: vk::DebugUtilsMessageTypeFlagsEXT,
    data: *const vk::DebugUtilsMessengerCallbackDataEXT<'_>,
    _user: *mut c_void,
) -> vk::Bool32 {
    // SAFETY: the layer passes valid callback data for the call's duration.
    let message = unsafe { data.as_ref() }
        .and_then(|data| unsafe { data.message_as_c_str() })
        .map(|m| m.to_string_lossy().into_owned())
        .unwrap_or_default();
    if severity.contains(vk::DebugUtilsMessageSeverityFlagsEXT::ERROR) {
        VALIDATION_ERRORS.fetch_add(1, Ordering::Relaxed);
        eprintln!("vulkan validation error: {message}");
    } else {
        eprintln!("vulkan validation warning: {message}");
    }
    vk::FALSE
}

/// Starts an OpenXR session on the device `gpu` holds.
pub fn create_session(
    instance: &xr::Instance,
    system: xr::SystemId,
    gpu: &XrGpu,
) -> Result<
    (
        xr::Session<xr::Vulkan>,
        xr::FrameWaiter,
        xr::FrameStream<xr::Vulkan>,
    ),
    GpuError,
> {
    // SAFETY: the handles in `session_info` were created through this
    // instance and system and live in `gpu`, which the caller keeps until
    // the session is dropped.
    unsafe { instance.create_session::<xr::Vulkan>(system, &gpu.session_info) }
        .map_err(xr_error("start a session"))
}
