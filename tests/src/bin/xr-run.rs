//! `xr-run`: runs a program as an OpenXR application of a real runtime —
//! Debian 13's Monado in a chroot (see `roomscale_tests::monado`) — for the
//! browser + headset end-to-end test and the headset benchmark, which start it
//! as a child process.
//!
//! ```text
//! xr-run [--openxr-validation] [--copy-in HOST=INSIDE]... [--copy-out INSIDE=HOST]... -- PROGRAM [ARGS...]
//! ```
//!
//! Prints `xr-run: monado-service <pid>` once the runtime is up (a test kills
//! that process to see a runtime go away), runs PROGRAM (a host binary, copied
//! into the chroot, with each --copy-in file) with the runtime's environment and this process's stdout
//! and stderr, passes SIGINT and SIGTERM on to it, then copies each INSIDE
//! file (a path in the chroot) to HOST, stops the runtime and exits with the
//! program's status. `--openxr-validation` loads the Khronos OpenXR core
//! validation layer into the program. Where the machine cannot run the runtime it prints
//! `skipped: <reason>` and exits with status 77.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use roomscale_tests::monado;

/// The exit status that tells a caller the runtime could not be had here.
const SKIPPED: u8 = 77;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("xr-run: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").ok_or(
        "usage: xr-run [--openxr-validation] [--copy-in HOST=INSIDE]... [--copy-out INSIDE=HOST]... -- PROGRAM [ARGS...]",
    )?;
    let (options, command) = (&args[..split], &args[split + 1..]);
    let mut copies: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut copies_in: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut openxr_validation = false;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.as_str() {
            "--copy-out" => {
                let pair = options.next().ok_or("--copy-out needs INSIDE=HOST")?;
                let (inside, host) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--copy-out {pair}: expected INSIDE=HOST"))?;
                copies.push((inside.into(), host.into()));
            }
            "--openxr-validation" => openxr_validation = true,
            "--copy-in" => {
                let pair = options.next().ok_or("--copy-in needs HOST=INSIDE")?;
                let (host, inside) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--copy-in {pair}: expected HOST=INSIDE"))?;
                copies_in.push((host.into(), inside.into()));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let (program, program_args) = command.split_first().ok_or("no program given after --")?;

    let Some(runtime) = monado::start_or_skip() else {
        return Ok(ExitCode::from(SKIPPED));
    };
    println!("xr-run: monado-service {}", runtime.pid());
    let inside = runtime
        .install_binary(Path::new(program))
        .map_err(|e| e.to_string())?;
    for (host, inside) in &copies_in {
        let to = runtime
            .chroot_dir()
            .join(inside.strip_prefix("/").unwrap_or(inside));
        std::fs::copy(host, &to)
            .map_err(|e| format!("cannot copy {} into the chroot: {e}", host.display()))?;
    }
    let mut command = runtime.command(&inside);
    command.args(program_args);
    if openxr_validation {
        command.env("XR_ENABLE_API_LAYERS", monado::XR_VALIDATION_LAYER);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {program} in the chroot: {e}"))?;
    // chroot(8) execs the program, so signals sent to this pid reach it.
    let pid = child.id();
    let forwarder = std::thread::spawn(move || forward_signals(pid));
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {program}: {e}"))?;
    drop(forwarder);
    for (inside, host) in &copies {
        let from = runtime
            .chroot_dir()
            .join(inside.strip_prefix("/").unwrap_or(inside));
        if let Err(error) = std::fs::copy(&from, host) {
            eprintln!(
                "xr-run: cannot copy {} out to {}: {error}",
                from.display(),
                host.display()
            );
        }
    }
    drop(runtime);
    Ok(match status.code() {
        Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
        None => ExitCode::FAILURE,
    })
}

/// Passes SIGINT and SIGTERM that reach this process on to `pid`.
fn forward_signals(pid: u32) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "-INT",
                _ = terminate.recv() => "-TERM",
            };
            let _ = Command::new("kill").args([name, &pid.to_string()]).status();
        }
    });
}
