//! Headset mode: the native app in a PC headset through OpenXR.
//!
//! The logic that decides things (session lifecycle, locomotion, the binding
//! table) is plain code without I/O in its own modules; the OpenXR and Vulkan
//! calls live beside it (`headset`, `input`, `vulkan`) and only feed it inputs
//! and carry out its outputs. [`probe`] finds out, without side effects a
//! person would notice, whether a runtime with a headset is there.

pub mod bindings;
mod gpu_timer;
pub mod grab;
mod headset;
mod input;
mod layers;
pub mod locomotion;
pub mod panel;
pub mod session;
mod swapchain;
mod vulkan;

use openxr as xr;
use thiserror::Error;

pub use headset::{HeadsetOptions, HeadsetReport, run};

/// Why headset mode is not available, in words a person can act on.
#[derive(Debug, Error)]
pub enum Unavailable {
    #[error(
        "no OpenXR loader ({0}); install one (on Debian: apt-get install libopenxr-loader1) and an OpenXR runtime such as SteamVR or Monado"
    )]
    NoLoader(String),
    #[error(
        "no OpenXR runtime is active; start one (SteamVR, or Monado's monado-service) or point XR_RUNTIME_JSON at its manifest"
    )]
    NoRuntime,
    #[error(
        "XR_RUNTIME_JSON names {0}, which does not exist; point it at an OpenXR runtime's manifest (e.g. /usr/share/openxr/1/openxr_monado.json) or unset it"
    )]
    MissingManifest(String),
    #[error("the OpenXR runtime {runtime} sees no headset; connect the headset and switch it on")]
    NoHeadset { runtime: String },
    #[error(
        "the OpenXR runtime {runtime} lacks {extension}, which Roomscale needs to draw with Vulkan; update the runtime"
    )]
    MissingExtension {
        runtime: String,
        extension: &'static str,
    },
    #[error("the OpenXR runtime failed while {action}: {error}")]
    Failed {
        action: &'static str,
        error: xr::sys::Result,
    },
}

/// An OpenXR runtime with a headset, ready for a session.
pub struct Runtime {
    // The instance before the entry that loaded it.
    instance: xr::Instance,
    system: xr::SystemId,
    /// The runtime's name and version, e.g. "Monado(XRT) 25.0.0".
    pub name: String,
    /// The runtime offers `XR_EXT_hand_tracking` and the system supports it.
    pub hand_tracking: bool,
    /// The runtime takes each eye's depth with its colour
    /// (`XR_KHR_composition_layer_depth`).
    pub depth_layer: bool,
    _entry: xr::Entry,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("name", &self.name)
            .field("hand_tracking", &self.hand_tracking)
            .field("depth_layer", &self.depth_layer)
            .finish_non_exhaustive()
    }
}

/// Opens the OpenXR loader, the active runtime and its headset.
pub fn probe() -> Result<Runtime, Unavailable> {
    probe_with(&(), |_| {})
}

/// [`probe`] where the loader must be told about the process: on Android,
/// `platform` is the Java VM and activity (`xr::AndroidPlatformInfo`, for
/// `XR_KHR_loader_init_android`) and `platform_extensions` turns on
/// `XR_KHR_android_create_instance`.
pub fn probe_with<P: xr::PlatformInfo + ?Sized>(
    platform: &P,
    platform_extensions: impl FnOnce(&mut xr::ExtensionSet),
) -> Result<Runtime, Unavailable> {
    if let Some(manifest) = std::env::var_os("XR_RUNTIME_JSON")
        && !std::path::Path::new(&manifest).exists()
    {
        return Err(Unavailable::MissingManifest(
            manifest.to_string_lossy().into_owned(),
        ));
    }
    let entry = load_entry(platform)?;
    let no_runtime = |error: xr::sys::Result, action| match error {
        xr::sys::Result::ERROR_RUNTIME_UNAVAILABLE
        | xr::sys::Result::ERROR_RUNTIME_FAILURE
        | xr::sys::Result::ERROR_INSTANCE_LOST => Unavailable::NoRuntime,
        error => Unavailable::Failed { action, error },
    };
    let offered = entry
        .enumerate_extensions()
        .map_err(|e| no_runtime(e, "listing its extensions"))?;
    let mut wanted = xr::ExtensionSet::default();
    wanted.khr_vulkan_enable2 = offered.khr_vulkan_enable2;
    wanted.ext_hand_tracking = offered.ext_hand_tracking;
    wanted.khr_composition_layer_depth = offered.khr_composition_layer_depth;
    platform_extensions(&mut wanted);
    let instance = entry
        .create_instance(
            &xr::ApplicationInfo {
                application_name: "Roomscale",
                application_version: 1,
                engine_name: "Roomscale",
                engine_version: 1,
                // The loader Debian 12 ships speaks OpenXR 1.0.
                api_version: xr::Version::new(1, 0, 0),
            },
            &wanted,
            &[],
            platform,
        )
        .map_err(|e| no_runtime(e, "starting"))?;
    let properties = instance
        .properties()
        .map_err(|e| no_runtime(e, "naming itself"))?;
    let name = format!("{} {}", properties.runtime_name, properties.runtime_version);
    if !offered.khr_vulkan_enable2 {
        return Err(Unavailable::MissingExtension {
            runtime: name,
            extension: "XR_KHR_vulkan_enable2",
        });
    }
    let system = instance
        .system(xr::FormFactor::HEAD_MOUNTED_DISPLAY)
        .map_err(|error| match error {
            xr::sys::Result::ERROR_FORM_FACTOR_UNAVAILABLE
            | xr::sys::Result::ERROR_FORM_FACTOR_UNSUPPORTED => Unavailable::NoHeadset {
                runtime: name.clone(),
            },
            error => no_runtime(error, "looking for a headset"),
        })?;
    let hand_tracking =
        offered.ext_hand_tracking && instance.supports_hand_tracking(system).unwrap_or(false);
    Ok(Runtime {
        instance,
        system,
        name,
        hand_tracking,
        depth_layer: offered.khr_composition_layer_depth,
        _entry: entry,
    })
}

#[allow(unsafe_code)]
fn load_entry<P: xr::PlatformInfo + ?Sized>(platform: &P) -> Result<xr::Entry, Unavailable> {
    // SAFETY: the library loaded is the system's OpenXR loader (on Android:
    // Khronos's, packaged in the APK), which implements the OpenXR ABI.
    unsafe { xr::Entry::load(platform) }.map_err(|error| Unavailable::NoLoader(error.to_string()))
}
