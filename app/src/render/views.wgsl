// The views a pass draws, in front of every shader of the renderer: one (a
// window, an offscreen image, one eye at a time), or both eyes at once with
// multiview, where the built-in view index picks the eye. The renderer puts
// the right expression in place of THIS_VIEW and VIEW_INDEX_ARGUMENT.

struct View {
    view_proj: mat4x4<f32>,
    // Direction the light travels, world space.
    light_dir: vec4<f32>,
};
struct Views {
    views: array<View, 2>,
};
@group(0) @binding(0) var<uniform> frame: Views;
