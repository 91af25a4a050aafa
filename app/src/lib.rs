//! The Roomscale native client. Today: the pose interpolation every client uses
//! to show remote avatars smoothly; the room client, renderer and XR layers
//! build on it.

pub mod interpolation;
