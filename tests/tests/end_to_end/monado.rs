//! A real OpenXR runtime: Debian 13's Monado in its chroot creates an instance
//! for an OpenXR program, offers what the native app's XR mode needs, and a
//! killed runtime is gone for the next one. Needs root; skips without it.

use roomscale_tests::monado::{self, MonadoRuntime};

/// Runs `openxr_runtime_list` (it creates an instance, reads the system and
/// lists extensions and layers) and returns its stdout, or its failure.
fn runtime_list(runtime: &MonadoRuntime) -> Result<String, String> {
    let output = runtime
        .command(monado::RUNTIME_LIST)
        .output()
        .expect("chroot runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{} ({}):\n{stdout}\n{}",
            monado::RUNTIME_LIST,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn an_openxr_instance_is_created_against_monado_in_the_chroot() {
    let Some(runtime) = monado::start_or_skip() else {
        return;
    };
    let listed = runtime_list(&runtime).unwrap_or_else(|error| {
        panic!(
            "no instance: {error}\nmonado-service's log:\n{}",
            runtime.log_tail(30)
        )
    });
    for expected in [
        "Monado: Simulated HMD",
        // What the app's XR mode builds on: Vulkan for wgpu, headless for tests.
        "XR_KHR_vulkan_enable2",
        "XR_MND_headless",
        "XR_EXT_debug_utils",
        monado::XR_VALIDATION_LAYER,
    ] {
        assert!(listed.contains(expected), "no {expected} in:\n{listed}");
    }
    let vulkan_layer = runtime
        .chroot_dir()
        .join("usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json");
    assert!(
        vulkan_layer.is_file(),
        "{} is missing",
        vulkan_layer.display()
    );
}

#[test]
fn a_killed_runtime_fails_the_next_instance() {
    let Some(mut runtime) = monado::start_or_skip() else {
        return;
    };
    runtime.kill();
    assert!(!runtime.is_running());
    let error = runtime_list(&runtime).expect_err("no instance without the service");
    assert!(error.contains("XR_ERROR_RUNTIME_FAILURE"), "{error}");
}
