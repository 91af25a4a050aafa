//! The Roomscale native client: the headless room client ([`client`]) that the
//! app, bots and tests drive, and the pose interpolation that shows remote
//! avatars smoothly. The renderer and XR layers build on them.

#[cfg(target_os = "android")]
mod android;
pub mod client;
pub mod colour;
pub mod desktop;
#[cfg(test)]
mod egui_probe;
pub mod interpolation;
pub mod link;
pub mod net;
pub mod objects;
pub mod picker;
pub mod render;
pub mod scene;
pub mod voice;
pub mod voice_controls;
pub mod xr;
