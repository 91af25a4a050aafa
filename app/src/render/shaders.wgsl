// Lit, flat-coloured avatars and a checkered floor. Right-handed, +Y up.

// (The view uniform comes from views.wgsl, put in front of this file.)

fn shade(normal: vec3<f32>, colour: vec3<f32>) -> vec3<f32> {
    let diffuse = max(dot(normalize(normal), -frame.views[0].light_dir.xyz), 0.0);
    return colour * (0.35 + 0.65 * diffuse);
}

struct AvatarIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) m0: vec4<f32>,
    @location(3) m1: vec4<f32>,
    @location(4) m2: vec4<f32>,
    @location(5) m3: vec4<f32>,
    @location(6) colour: vec4<f32>,
};

struct AvatarOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) normal: vec3<f32>,
    @location(1) colour: vec3<f32>,
};

@vertex
fn avatar_vs(VIEW_INDEX_ARGUMENT v: AvatarIn) -> AvatarOut {
    let model = mat4x4<f32>(v.m0, v.m1, v.m2, v.m3);
    var out: AvatarOut;
    out.clip = THIS_VIEW.view_proj * model * vec4<f32>(v.position, 1.0);
    // Parts are rotated and translated, never scaled unevenly.
    out.normal = (model * vec4<f32>(v.normal, 0.0)).xyz;
    out.colour = v.colour.rgb;
    return out;
}

@fragment
fn avatar_fs(in: AvatarOut) -> @location(0) vec4<f32> {
    return vec4<f32>(shade(in.normal, in.colour), 1.0);
}

struct FloorOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
};

@vertex
fn floor_vs(VIEW_INDEX_ARGUMENT @builtin(vertex_index) index: u32) -> FloorOut {
    // Two triangles covering 40 m x 40 m around the origin.
    var corners = array<vec2<f32>, 6>(
        vec2(-20.0, -20.0), vec2(20.0, 20.0), vec2(20.0, -20.0),
        vec2(-20.0, -20.0), vec2(-20.0, 20.0), vec2(20.0, 20.0),
    );
    let c = corners[index];
    let world = vec3<f32>(c.x, 0.0, c.y);
    var out: FloorOut;
    out.clip = THIS_VIEW.view_proj * vec4<f32>(world, 1.0);
    out.world = world;
    return out;
}

@fragment
fn floor_fs(in: FloorOut) -> @location(0) vec4<f32> {
    // One-metre checkers, fading with distance so the horizon stays calm.
    let cell = floor(in.world.xz);
    let checker = abs((cell.x + cell.y) % 2.0);
    let base = mix(vec3<f32>(0.36, 0.38, 0.42), vec3<f32>(0.45, 0.47, 0.52), checker);
    let fade = clamp(length(in.world.xz) / 20.0, 0.0, 1.0);
    return vec4<f32>(shade(vec3<f32>(0.0, 1.0, 0.0), mix(base, vec3<f32>(0.5, 0.55, 0.62), fade)), 1.0);
}
