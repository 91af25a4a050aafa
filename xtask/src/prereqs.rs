//! Installs what a fresh machine lacks: Debian packages (as root or through
//! sudo), npm modules (`npm ci`) and a local PostgreSQL for the storage tests.
//! Where it cannot, it stops with the exact command a person should run.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::run;

/// How this process may run privileged commands.
enum Privilege {
    Root,
    Sudo,
    None,
}

fn privilege() -> Privilege {
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.is_some_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0") {
        return Privilege::Root;
    }
    let sudo = Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if sudo.is_ok_and(|s| s.success()) {
        Privilege::Sudo
    } else {
        Privilege::None
    }
}

fn has_command(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_package(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Installs Debian `packages` unless the commands in `probe` are already on
/// PATH (or, with no probe, unless dpkg knows every package as installed).
pub fn ensure_apt_packages(probe: &[&str], packages: &[&str]) -> Result<()> {
    let present = if probe.is_empty() {
        packages.iter().all(|package| has_package(package))
    } else {
        probe.iter().all(|command| has_command(command))
    };
    if present {
        return Ok(());
    }
    let install = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let mut command = match privilege() {
        Privilege::Root => {
            let mut c = Command::new("sh");
            c.args(["-c", &install]);
            c
        }
        Privilege::Sudo => {
            let mut c = Command::new("sudo");
            c.args(["-n", "sh", "-c", &install]);
            c
        }
        Privilege::None => bail!(
            "missing Debian packages {}; install them with:\n    sudo sh -c '{install}'",
            packages.join(" ")
        ),
    };
    println!("xtask: installing {}", packages.join(" "));
    command.env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut command).with_context(|| format!("installing {}", packages.join(" ")))
}

/// What building the app takes beyond Rust: CMake (libopus), pkg-config and
/// the ALSA headers (cpal), WebRTC audio processing and libclang (bindgen).
const BUILD_PACKAGES: &[&str] = &[
    "cmake",
    "pkg-config",
    "libasound2-dev",
    "libwebrtc-audio-processing-dev",
    "libclang-dev",
];

/// Installs [`BUILD_PACKAGES`] where they are missing.
pub fn ensure_build_packages() -> Result<()> {
    ensure_apt_packages(&[], BUILD_PACKAGES)
}

/// Runs `npm ci` when node_modules is missing or older than package-lock.json.
pub fn ensure_npm_modules() -> Result<()> {
    ensure_apt_packages(&["node", "npm"], &["nodejs", "npm"])?;
    let stamp = Path::new("node_modules/.package-lock.json");
    let lock = Path::new("package-lock.json");
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    if modified(stamp).is_some() && modified(stamp) >= modified(lock) {
        return Ok(());
    }
    println!("xtask: installing npm modules (npm ci)");
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]))
        .context("`npm ci` failed; check that the npm registry is reachable")
}

const POSTGRES_ROLE: &str = "roomscale";

/// A PostgreSQL server URL for the storage tests: `ROOMSCALE_TEST_POSTGRES_URL`
/// when set, else a local Debian cluster started (and created) here.
pub fn ensure_postgres() -> Result<String> {
    if let Ok(url) = std::env::var("ROOMSCALE_TEST_POSTGRES_URL") {
        return Ok(url);
    }
    let prefix: &[&str] = match privilege() {
        Privilege::Root => &[],
        Privilege::Sudo => &["sudo", "-n"],
        Privilege::None => bail!(
            "no PostgreSQL: set ROOMSCALE_TEST_POSTGRES_URL=postgres://USER:PASSWORD@127.0.0.1:5432/postgres \
             (a role that may create databases), or run `cargo xtask test` as root or with passwordless sudo"
        ),
    };
    ensure_apt_packages(&["pg_lsclusters"], &["postgresql"])?;
    let privileged = |args: &[&str]| {
        let mut all: Vec<&str> = prefix.to_vec();
        all.extend_from_slice(args);
        let mut command = Command::new(all[0]);
        command.args(&all[1..]);
        command
    };

    let clusters = String::from_utf8(
        privileged(&["pg_lsclusters", "--no-header"])
            .output()
            .context("running pg_lsclusters")?
            .stdout,
    )?;
    let cluster = match clusters.lines().next() {
        Some(line) => line
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>(),
        None => {
            let version = installed_postgres_version()?;
            run(&mut privileged(&["pg_createcluster", &version, "main"]))?;
            vec![version, "main".into(), "5432".into(), "down".into()]
        }
    };
    let [version, name, port, status, ..] = &cluster[..] else {
        bail!("cannot read pg_lsclusters output: {clusters}");
    };
    if status != "online" {
        run(&mut privileged(&["pg_ctlcluster", version, name, "start"]))
            .context("starting PostgreSQL")?;
    }
    let create_role = format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{POSTGRES_ROLE}') THEN \
         CREATE ROLE {POSTGRES_ROLE} LOGIN SUPERUSER PASSWORD '{POSTGRES_ROLE}'; END IF; END $$;"
    );
    let mut psql = privileged(&[
        "runuser", "-u", "postgres", "--", "psql", "-q", "-p", port, "-c",
    ]);
    psql.arg(&create_role).stdout(Stdio::null());
    run(&mut psql).context("creating the test role in PostgreSQL")?;
    Ok(format!(
        "postgres://{POSTGRES_ROLE}:{POSTGRES_ROLE}@127.0.0.1:{port}/postgres"
    ))
}

fn installed_postgres_version() -> Result<String> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed under /usr/lib/postgresql")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions
        .last()
        .map(u32::to_string)
        .context("no PostgreSQL version under /usr/lib/postgresql")
}
