//! `cargo xtask <command>`: the project's tasks beyond cargo.
//!
//! - `run [-- server flags]`: build what is needed and start the server with the
//!   embedded SQLite database, serving the web client.
//! - `test`: every test the project has (Rust, JavaScript, end-to-end).
//! - `bench`: the benchmarks, printing the figures the issues ask for.
//! - `codegen`: regenerate committed generated files (TypeScript types, vectors).
//! - `tidy`: formatting and lints, as a reviewer would check them.
//! - `apk`: the Quest APK (`apk/`).
//!
//! What a fresh machine lacks (Debian packages, npm modules) is installed here,
//! as root or through sudo; where that is impossible the task stops with the
//! exact command to run.

mod apk;
mod prereqs;
mod summary;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

fn main() {
    if let Err(error) = run_task() {
        eprintln!("xtask: {error:#}");
        std::process::exit(1);
    }
}

fn run_task() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_else(|| "help".into());
    let rest: Vec<String> = args.collect();
    let root = project_root();
    std::env::set_current_dir(&root).context("entering the project root")?;
    match task.as_str() {
        "run" => run_server(&rest),
        "test" => test(&rest),
        "bench" => bench(),
        "codegen" => codegen(),
        "tidy" => tidy(),
        "apk" => apk::task(&rest),
        "test-quest" => {
            let mut summary = summary::Summary::default();
            apk::test_steps(&mut summary)?;
            summary.finish()
        }
        "help" | "--help" | "-h" => {
            println!("{}", include_str!("help.txt"));
            Ok(())
        }
        other => bail!("unknown task `{other}`; `cargo xtask help` lists the tasks"),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the project root")
        .to_path_buf()
}

fn run_server(args: &[String]) -> Result<()> {
    prereqs::ensure_npm_modules()?;
    build_web()?;
    let mut command = cargo();
    command.args([
        "run",
        "--package",
        "roomscale-server",
        "--bin",
        "roomscale-server",
        "--",
    ]);
    // `cargo xtask run -- --flag` and `cargo xtask run --flag` mean the same.
    let args = match args.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => args,
    };
    command.args(args);
    println!("xtask: starting the server (Ctrl-C stops it)");
    run(&mut command)
}

fn test(args: &[String]) -> Result<()> {
    let mut summary = summary::Summary::default();
    prereqs::ensure_build_packages()?;
    // The voice device tests play and capture through a PulseAudio null sink.
    if let Err(error) = prereqs::ensure_apt_packages(&["pulseaudio"], &["pulseaudio"]) {
        summary.note_skip(format!("PulseAudio: {error:#}"));
    }
    prereqs::ensure_npm_modules()?;
    let postgres = prereqs::ensure_postgres();
    match &postgres {
        Ok(url) => println!("xtask: PostgreSQL tests use {url}"),
        Err(reason) => summary.note_skip(format!("PostgreSQL tests: {reason:#}")),
    }

    // The renderer's golden images need a Vulkan driver: lavapipe without a GPU.
    if let Err(error) = prereqs::ensure_apt_packages(&[], &["mesa-vulkan-drivers", "libvulkan1"]) {
        summary.note_skip(format!("Vulkan driver: {error:#}"));
    }
    // The app's desktop entry test checks the entry with desktop-file-validate.
    if let Err(error) =
        prereqs::ensure_apt_packages(&["desktop-file-validate"], &["desktop-file-utils"])
    {
        summary.note_skip(format!("desktop-file-utils: {error:#}"));
    }
    let mut cargo_test = cargo();
    cargo_test
        .args(["test", "--workspace"])
        .args(args)
        .env("XDG_RUNTIME_DIR", xdg_runtime_dir()?);
    if let Ok(url) = &postgres {
        cargo_test.env("ROOMSCALE_TEST_POSTGRES_URL", url);
    }
    summary.run_cargo_tests("Rust tests", &mut cargo_test)?;

    let mut vectors = Command::new("node");
    vectors.arg("protocol/vectors/phoenix-frames.mjs");
    summary.run_step("phoenix.js frame vectors", &mut vectors)?;

    summary.run_step("web client build", &mut web_build_command())?;
    summary.run_node_tests("web client tests", &mut node_tests("server/web/test/"))?;
    // The browser tests need Debian's Chromium; without it they say why and skip.
    if let Err(error) = prereqs::ensure_apt_packages(&["chromium"], &["chromium"]) {
        summary.note_skip(format!("Chromium: {error:#}"));
    }
    summary.run_node_tests("browser end-to-end tests", &mut node_tests("tests/web/"))?;
    match voice_test_command() {
        Ok(mut command) => summary.run_node_tests(
            "voice end-to-end tests (private network namespace)",
            &mut command,
        )?,
        Err(reason) => summary.note_skip(format!("voice end-to-end tests: {reason}")),
    }

    let mut fuzz = cargo();
    fuzz.args([
        "build",
        "--quiet",
        "--manifest-path",
        "protocol/fuzz/Cargo.toml",
    ])
    .env("CARGO_TARGET_DIR", "target/fuzz");
    summary.run_step("fuzz targets build", &mut fuzz)?;

    // Quest: the Android code passes clippy, and the APK packaging path works.
    apk::test_steps(&mut summary)?;

    summary.finish()
}

/// A test file that runs longer than this has hung: it fails instead of
/// holding the whole run (each takes about a minute).
const NODE_TEST_FILE_TIMEOUT: &str = "--test-timeout=600000";

/// `node --test` over one directory, one file at a time (the browser tests
/// each start servers and browsers; two cores do not run them side by side),
/// reporting TAP so the summary can count its results.
fn node_tests(dir: &str) -> Command {
    let mut command = Command::new("node");
    command.args([
        "--test",
        "--test-concurrency=1",
        "--test-reporter=tap",
        NODE_TEST_FILE_TIMEOUT,
        dir,
    ]);
    command.env(
        "XDG_RUNTIME_DIR",
        xdg_runtime_dir().unwrap_or_else(|_| "/tmp".into()),
    );
    use_built_binaries(&mut command);
    command
}

/// Points the browser tests at the binaries `cargo test --workspace` built:
/// building one package alone resolves features differently and would compile
/// much of the dependency tree again.
fn use_built_binaries(command: &mut Command) {
    for (variable, binary) in [
        ("ROOMSCALE_SERVER_BIN", "roomscale-server"),
        ("ROOMSCALE_APP_BIN", "roomscale"),
        ("ROOMSCALE_XR_RUN_BIN", "xr-run"),
    ] {
        let path = project_root().join("target/debug").join(binary);
        if path.is_file() {
            command.env(variable, path);
        }
    }
}

/// The voice test, inside a private network namespace so WebRTC sees only
/// loopback. The server is built first: the namespace has no network.
fn voice_test_command() -> Result<Command, String> {
    let unshare_works = Command::new("unshare")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !unshare_works {
        return Err(
            "cannot create a network namespace (`unshare -n` needs root); run `cargo xtask test` as root"
                .into(),
        );
    }
    // The native client talks in voice tests too.
    for (package, binary) in [
        ("roomscale-server", "roomscale-server"),
        ("roomscale-app", "roomscale"),
    ] {
        if !project_root().join("target/debug").join(binary).is_file() {
            run(cargo().args(["build", "--quiet", "--package", package, "--bin", binary]))
                .map_err(|error| format!("{error:#}"))?;
        }
    }
    let mut command = Command::new("unshare");
    command
        .args([
            "-n",
            "sh",
            "-c",
            &format!(
                "ip link set lo up && exec node --test --test-concurrency=1 --test-reporter=tap \
                 {NODE_TEST_FILE_TIMEOUT} tests/web/voice.netns.mjs tests/web/native-voice.netns.mjs"
            ),
        ])
        .env(
            "XDG_RUNTIME_DIR",
            xdg_runtime_dir().unwrap_or_else(|_| "/tmp".into()),
        );
    use_built_binaries(&mut command);
    Ok(command)
}

fn web_build_command() -> Command {
    let mut command = Command::new("node");
    command.arg("server/web/build.mjs");
    command
}

/// Bundles the browser client into server/web/dist, which the server serves.
fn build_web() -> Result<()> {
    run(&mut web_build_command()).context("building the web client (server/web/build.mjs)")
}

fn bench() -> Result<()> {
    prereqs::ensure_build_packages()?;
    println!("== pose codec");
    run(cargo().args([
        "bench",
        "--quiet",
        "--package",
        "roomscale-protocol",
        "--bench",
        "codec",
    ]))?;
    println!(
        "\n== object physics (flight step cost, Rust and the browser's twin; a held object on the wire)"
    );
    run(cargo().args([
        "bench",
        "--quiet",
        "--package",
        "roomscale-physics",
        "--bench",
        "flight",
    ]))?;
    prereqs::ensure_npm_modules()?;
    run(Command::new("node").arg("physics/benches/flight-ts.mjs"))?;
    println!("\n== room server load (one server core, rooms of 25, poses at 30 Hz)");
    run_load_benchmark("room-load")?;
    println!(
        "\n== voice SFU (one server core, str0m peers, rooms of 17, Opus-sized frames every 20 ms)"
    );
    run_load_benchmark("voice-load")?;
    println!("\n== browser client (bundle size, time to in-room on loopback)");
    prereqs::ensure_npm_modules()?;
    build_web()?;
    run(Command::new("node").arg("tests/web/bench.mjs"))?;
    println!("\n== headset (OpenXR: Monado's simulated headset in a Debian 13 chroot)");
    run_with_release_app("xr-bench")?;
    println!("\n== renderer");
    run(cargo()
        .args([
            "bench",
            "--quiet",
            "--package",
            "roomscale-app",
            "--bench",
            "render",
        ])
        .env("XDG_RUNTIME_DIR", xdg_runtime_dir()?))?;
    println!("\n== voice (jitter buffer, Opus decoding, spatial mixer; one core)");
    run(cargo().args([
        "bench",
        "--quiet",
        "--package",
        "roomscale-app",
        "--bench",
        "voice",
    ]))?;
    println!("\n== native voice (two release clients with WAV devices through the release server)");
    run_with_release_app("voice-latency")?;
    // Last, as it takes longest: a failed soak stops no other benchmark.
    match soak_seconds()? {
        0 => println!("\n== soak: skipped (ROOMSCALE_SOAK_SECS=0)"),
        seconds => {
            println!(
                "\n== soak ({seconds} s: rooms of 25 with poses, chat and rejoins while an \
                 attacker cycles through the security catalogue)"
            );
            run_load_benchmark_with("soak", &["--duration", &seconds.to_string()])?;
        }
    }
    Ok(())
}

/// Builds the release server and app next to `bench` (a binary of
/// `roomscale-tests` that starts them itself), then runs it.
fn run_with_release_app(bench: &str) -> Result<()> {
    run(cargo().args(["build", "--quiet", "--release"]).args([
        "--package",
        "roomscale-server",
        "--package",
        "roomscale-app",
        "--package",
        "roomscale-tests",
        "--bin",
        "roomscale-server",
        "--bin",
        "roomscale",
        "--bin",
        bench,
    ]))?;
    run(&mut Command::new(
        project_root().join("target/release").join(bench),
    ))
}

/// How long the soak in `bench` runs: ROOMSCALE_SOAK_SECS, 600 when unset,
/// 0 to skip it.
fn soak_seconds() -> Result<u64> {
    match std::env::var("ROOMSCALE_SOAK_SECS") {
        Ok(value) => value.trim().parse().with_context(|| {
            format!("ROOMSCALE_SOAK_SECS={value:?}: give whole seconds (20 or more), or 0 to skip")
        }),
        Err(_) => Ok(600),
    }
}

/// Builds the optimised server next to a load generator of `roomscale-tests`
/// (which starts that server itself), then runs the generator.
fn run_load_benchmark(generator: &str) -> Result<()> {
    run_load_benchmark_with(generator, &[])
}

/// [`run_load_benchmark`] with arguments for the generator.
fn run_load_benchmark_with(generator: &str, args: &[&str]) -> Result<()> {
    let release = [
        "--quiet",
        "--release",
        "--package",
        "roomscale-tests",
        "--bin",
        generator,
    ];
    run(cargo()
        .args([
            "build",
            "--package",
            "roomscale-server",
            "--bin",
            "roomscale-server",
        ])
        .args(release))?;
    run(cargo().arg("run").args(release).arg("--").args(args))
}

/// A private runtime directory, which Vulkan loaders and winit expect to exist.
fn xdg_runtime_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return Ok(dir.into());
    }
    let dir = project_root().join("target/xdg-runtime");
    std::fs::create_dir_all(&dir).context("creating target/xdg-runtime")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

fn codegen() -> Result<()> {
    run(cargo()
        .args(["test", "--quiet", "--package", "roomscale-protocol"])
        .env("ROOMSCALE_BLESS", "1"))?;
    run(cargo()
        .args([
            "test",
            "--quiet",
            "--package",
            "roomscale-physics",
            "--test",
            "vectors",
        ])
        .env("ROOMSCALE_BLESS", "1"))?;
    prereqs::ensure_npm_modules()?;
    run(Command::new("node").args(["protocol/vectors/phoenix-frames.mjs", "--write"]))?;
    println!(
        "xtask: regenerated protocol/bindings, protocol/vectors and physics/vectors; review `git diff`"
    );
    Ok(())
}

fn tidy() -> Result<()> {
    prereqs::ensure_build_packages()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs a command to completion, failing with its command line when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
