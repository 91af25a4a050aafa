// Textured quads in the world (the headset's UI panel, name tags) and
// coloured lines (the pointing laser, the teleport arc). Right-handed, +Y up.

// (The view uniform comes from views.wgsl, put in front of this file.)
@group(1) @binding(0) var quad_texture: texture_2d<f32>;
@group(1) @binding(1) var quad_sampler: sampler;

struct QuadIn {
    @location(0) m0: vec4<f32>,
    @location(1) m1: vec4<f32>,
    @location(2) m2: vec4<f32>,
    @location(3) m3: vec4<f32>,
    // uv of the quad's top-left (xy) and bottom-right (zw) corners.
    @location(4) uv_rect: vec4<f32>,
};

struct QuadOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn quad_vs(VIEW_INDEX_ARGUMENT @builtin(vertex_index) index: u32, q: QuadIn) -> QuadOut {
    // A unit square in the model's XY plane, centred, facing +Z.
    var corners = array<vec2<f32>, 6>(
        vec2(-0.5, -0.5), vec2(0.5, -0.5), vec2(0.5, 0.5),
        vec2(-0.5, -0.5), vec2(0.5, 0.5), vec2(-0.5, 0.5),
    );
    let c = corners[index];
    let model = mat4x4<f32>(q.m0, q.m1, q.m2, q.m3);
    var out: QuadOut;
    out.clip = THIS_VIEW.view_proj * model * vec4<f32>(c, 0.0, 1.0);
    // Texture rows run downwards, model +Y runs up.
    let t = vec2<f32>(c.x + 0.5, 0.5 - c.y);
    out.uv = mix(q.uv_rect.xy, q.uv_rect.zw, t);
    return out;
}

@fragment
fn quad_fs(in: QuadOut) -> @location(0) vec4<f32> {
    let texel = textureSample(quad_texture, quad_sampler, in.uv);
    if (texel.a < 0.02) {
        discard;
    }
    return texel;
}

struct LineIn {
    @location(0) position: vec3<f32>,
    @location(1) colour: vec4<f32>,
};

struct LineOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) colour: vec4<f32>,
};

@vertex
fn line_vs(VIEW_INDEX_ARGUMENT v: LineIn) -> LineOut {
    var out: LineOut;
    out.clip = THIS_VIEW.view_proj * vec4<f32>(v.position, 1.0);
    out.colour = v.colour;
    return out;
}

@fragment
fn line_fs(in: LineOut) -> @location(0) vec4<f32> {
    return in.colour;
}
