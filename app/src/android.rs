//! The Quest entry point. NativeActivity loads `libroomscale.so` and winit's
//! Android glue (`android-activity`) calls [`android_main`] on a thread of its
//! own; this module is all the Android-only code there is.
//!
//! It asks for the microphone, then runs headset mode on a second thread with
//! the room picker on the panel (the OpenXR loader is told the Java VM and the
//! activity, `XR_KHR_loader_init_android` and
//! `XR_KHR_android_create_instance`), while this thread keeps answering the
//! activity's lifecycle events, as the glue needs. Printed lines reach logcat
//! (tag `RustStdoutStderr`) through the glue.

use std::time::Duration;

use anyhow::{Context, Result};
use jni::objects::{Global, JObject, JValue};
use jni::{Env, JavaVM, jni_sig, jni_str};
use openxr as xr;
use roomscale_protocol::events::ClientKind;
use winit::platform::android::activity::{AndroidApp, MainEvent, PollEvent};

use crate::client::{Identity, ServerUrl};
use crate::picker::ServerMemory;

/// The server the picker offers until one is remembered: with
/// `adb reverse tcp:4000 tcp:4000` it is the developer's computer.
const FIRST_SERVER: &str = "http://localhost:4000";
const MICROPHONE: &str = "android.permission.RECORD_AUDIO";

/// Called by the glue once the activity is created.
// The glue finds this function by its unmangled name.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
fn android_main(app: AndroidApp) {
    println!("roomscale: starting on Android");
    if let Err(error) = ask_for_microphone(&app) {
        // Voice needs it; the room works without it.
        eprintln!("roomscale: could not ask for the microphone: {error:#}");
    }
    let headset = {
        let app = app.clone();
        std::thread::Builder::new()
            .name("headset".into())
            .spawn(move || {
                if let Err(error) = run_headset(&app) {
                    eprintln!("roomscale: {error:#}");
                }
            })
    };
    let headset = match headset {
        Ok(thread) => Some(thread),
        Err(error) => {
            eprintln!("roomscale: could not start the headset thread: {error}");
            None
        }
    };
    let mut finishing = false;
    let mut destroyed = false;
    while !destroyed {
        app.poll_events(Some(Duration::from_millis(250)), |event| {
            if let PollEvent::Main(MainEvent::Destroy) = event {
                destroyed = true;
            }
        });
        // When headset mode ends (the visitor quit from the system menu, or
        // it failed), the activity ends with it instead of showing nothing.
        if !finishing && headset.as_ref().is_none_or(|thread| thread.is_finished()) {
            finishing = true;
            if let Err(error) = call_activity(&app, |env, activity| {
                env.call_method(activity, jni_str!("finish"), jni_sig!("()V"), &[])
                    .map(drop)
            }) {
                eprintln!("roomscale: could not end the activity: {error:#}");
            }
        }
    }
}

fn run_headset(app: &AndroidApp) -> Result<()> {
    let vm = JavaVM::singleton().context("the Java VM is not known to this process")?;
    // The OpenXR loader calls into Java from this thread.
    vm.attach_current_thread(|_env| -> Result<()> {
        // SAFETY: the glue hands out the process's JavaVM and a global
        // reference to the activity, which stays valid until the activity is
        // destroyed; `android_main` outlives this thread's use of it.
        #[allow(unsafe_code)]
        let platform =
            unsafe { xr::AndroidPlatformInfo::new(app.vm_as_ptr(), app.activity_as_ptr()) };
        let runtime = crate::xr::probe_with(&platform, |wanted| {
            wanted.khr_android_create_instance = true;
        })
        .map_err(|reason| anyhow::anyhow!("headset mode is not available: {reason}"))?;
        println!("xr: runtime {}", runtime.name);
        let memory = app
            .internal_data_path()
            .map(|dir| ServerMemory::in_dir(&dir));
        let identity = Identity {
            name: "Quest visitor".into(),
            colour: "#30a0e0".into(),
            kind: ClientKind::Xr,
        };
        let server = ServerUrl::parse(FIRST_SERVER)?;
        let report = crate::xr::run(
            runtime,
            crate::xr::HeadsetOptions::picker(server, identity, memory),
        )?;
        println!(
            "xr: {} frames, {} rendered; ended: {}",
            report.frames, report.frames_rendered, report.exit
        );
        Ok(())
    })
}

/// Asks for `RECORD_AUDIO` unless it is granted already. Android shows its
/// dialog over the app and answers through a callback NativeActivity does not
/// pass on, so voice checks the permission again when it starts.
fn ask_for_microphone(app: &AndroidApp) -> Result<()> {
    call_activity(app, |env, activity| {
        let permission = env.new_string(MICROPHONE)?;
        let granted = env
            .call_method(
                activity,
                jni_str!("checkSelfPermission"),
                jni_sig!("(Ljava/lang/String;)I"),
                &[JValue::Object(&permission)],
            )?
            .i()?;
        // PackageManager.PERMISSION_GRANTED
        if granted == 0 {
            println!("roomscale: the microphone is allowed");
            return Ok(());
        }
        let wanted = env.new_object_array(1, jni_str!("java/lang/String"), &permission)?;
        env.call_method(
            activity,
            jni_str!("requestPermissions"),
            jni_sig!("([Ljava/lang/String;I)V"),
            &[JValue::Object(&wanted), JValue::Int(1)],
        )?;
        println!("roomscale: asked for the microphone");
        Ok(())
    })
}

/// Runs `call` with this thread attached to the Java VM and the activity.
fn call_activity(
    app: &AndroidApp,
    call: impl FnOnce(&mut Env, &JObject) -> jni::errors::Result<()>,
) -> Result<()> {
    let vm = JavaVM::singleton().context("the Java VM is not known to this process")?;
    let raw = app.activity_as_ptr() as jni::sys::jobject;
    vm.attach_current_thread(|env| -> jni::errors::Result<()> {
        // SAFETY: `raw` is the glue's global reference to the activity, valid
        // until the activity is destroyed, which cannot happen while
        // `android_main` (our caller) runs.
        #[allow(unsafe_code)]
        let activity = unsafe { env.as_cast_raw::<Global<JObject>>(&raw)? };
        let result = call(env, &activity);
        if env.exception_check() {
            // A Java exception left pending would abort the next JNI call.
            env.exception_describe();
            env.exception_clear();
        }
        result
    })
    .context("calling the activity through JNI")
}
