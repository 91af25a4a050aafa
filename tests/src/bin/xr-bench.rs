//! `xr-bench`: the headset frame's cost against a real OpenXR runtime (Monado
//! with its simulated headset in the Debian 13 chroot, see
//! `roomscale_tests::monado`): the release app in headset mode, in a room of a
//! release server, drawing 100 avatars into two 1832×1920 eyes. Prints the
//! CPU time from `xrWaitFrame` returning to `xrEndFrame` returning, and the GPU
//! time of both eyes' passes measured with timestamp queries.
//!
//! `cargo xtask bench` runs it; by hand:
//! `cargo build --release -p roomscale-server -p roomscale-app -p roomscale-tests --bin xr-bench`
//! then `target/release/xr-bench` (as root: the runtime needs a chroot).

use std::io::BufRead as _;
use std::process::{ExitCode, Stdio};

use roomscale_tests::{monado, process};

const AVATARS: &str = "100";
const EYE_SIZE: &str = "1832x1920";
const SECONDS: &str = "15";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("xr-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let server_binary = process::server_binary(None)?;
    let app = std::env::current_exe()
        .map_err(|e| format!("cannot find my own executable: {e}"))?
        .with_file_name("roomscale");
    if !app.is_file() {
        return Err(format!(
            "no app binary at {}; build it with `cargo build --release -p roomscale-app`",
            app.display()
        ));
    }
    let server = process::start_server(&server_binary, 0, &[], "XR_BENCH_PINNED")?;
    let url = process::create_room_link(server.addr, "headset bench")?;

    let Some(monado) = monado::start_or_skip() else {
        return Ok(ExitCode::SUCCESS);
    };
    let inside = monado.install_binary(&app).map_err(|e| e.to_string())?;
    let mut child = monado
        .command(&inside)
        .args(["join", &url, "--xr", "--headless", "--verbose-xr"])
        .args(["--extra-avatars", AVATARS, "--eye-size", EYE_SIZE])
        .args(["--seconds", SECONDS, "--at", "0,0,3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the app in the runtime's chroot: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut adapter = String::from("an unnamed adapter");
    let mut timings = None;
    let mut summary = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading the app's output: {e}"))?;
        if let Some(name) = line.strip_prefix("xr: drawing with ") {
            adapter = name.to_string();
        } else if let Some(rest) = line.strip_prefix("xr: frame cpu ms ") {
            timings = Some(rest.to_string());
        } else if line.starts_with("xr: ") && line.contains(" frames, ") {
            summary = Some(line.clone());
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the app: {e}"))?;
    drop(monado);
    let (Some(timings), Some(summary)) = (timings, summary) else {
        return Err(format!(
            "the app ({status}) printed no frame timings; run it by hand to see why"
        ));
    };
    let unexpected = || format!("unexpected timing line: {timings}");
    let (cpu, rest) = timings.split_once("; wall ms ").ok_or_else(unexpected)?;
    let (wall, gpu) = rest.split_once("; gpu ms ").ok_or_else(unexpected)?;
    println!("headset frame, {AVATARS} avatars, two {EYE_SIZE} eyes, on {adapter}:");
    println!("  {}", summary.trim_start_matches("xr: "));
    println!(
        "  CPU, xrWaitFrame return to xrEndFrame (frame thread's CPU time): {cpu} (target: median ≤ 1 ms)"
    );
    println!("  wall time over the same span (includes waiting for the GPU in xrEndFrame): {wall}");
    println!(
        "  GPU, both eye passes by timestamp queries: {gpu} (target ≤ 2 ms on a GPU; a CPU rasteriser is far slower)"
    );
    Ok(ExitCode::SUCCESS)
}
