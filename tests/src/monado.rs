//! A real OpenXR runtime for tests: Debian 13's Monado (`monado-service`, null
//! compositor, simulated HMD) running in a Debian 13 chroot. Debian 12 packages
//! no OpenXR runtime and Debian 13's needs a newer glibc, so the chroot is built
//! once with debootstrap and kept at [`DEFAULT_CHROOT`] between runs.
//!
//! XR tests run one at a time: one Monado per machine, and the OpenXR loader
//! allows one `XrInstance` per process at a time. [`MonadoRuntime::start`]
//! waits for the runtime before it to be dropped, inside this process (a mutex)
//! and across processes (a lock file next to the chroot).
//!
//! Everything here needs root (debootstrap, mount, chroot). Where the machine
//! cannot give it, the error is [`MonadoError::Skip`], and tests print
//! `skipped: <reason>` ([`start_or_skip`] does it for them).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where the chroot is kept between runs unless [`CHROOT_VAR`] names another place.
pub const DEFAULT_CHROOT: &str = "/var/cache/roomscale/monado-trixie";
/// Names another directory for the chroot.
pub const CHROOT_VAR: &str = "ROOMSCALE_MONADO_CHROOT";
/// Names the Debian mirror to build from, instead of the one apt uses here.
pub const MIRROR_VAR: &str = "ROOMSCALE_MONADO_MIRROR";
/// The Debian release with Monado: 13, "trixie".
pub const SUITE: &str = "trixie";
/// What the chroot holds besides a minimal Debian. `libopenxr-utils` brings
/// `openxr_runtime_list` and `hello_xr`, `openxr-layer-corevalidation` the
/// OpenXR API validation layer, `vulkan-validationlayers` Khronos' Vulkan one:
/// XR tests can count validation errors. Changing this list rebuilds the cache.
pub const PACKAGES: &[&str] = &[
    "monado-service",
    "libopenxr1-monado",
    "libopenxr-loader1",
    "libopenxr-utils",
    "openxr-layer-corevalidation",
    "mesa-vulkan-drivers",
    "libvulkan1",
    "vulkan-validationlayers",
];
/// Monado's runtime manifest inside the chroot (the one
/// `/etc/xdg/openxr/1/active_runtime.json` points at through alternatives).
pub const RUNTIME_JSON: &str = "/usr/share/openxr/1/openxr_monado.json";
/// Lists runtime, system and extensions; it creates an instance to do so.
pub const RUNTIME_LIST: &str = "/usr/bin/openxr_runtime_list";
/// The OpenXR API validation layer in the chroot (`XR_ENABLE_API_LAYERS`).
pub const XR_VALIDATION_LAYER: &str = "XR_APILAYER_LUNARG_core_validation";
/// The Khronos Vulkan validation layer in the chroot (`VK_INSTANCE_LAYERS`).
pub const VULKAN_VALIDATION_LAYER: &str = "VK_LAYER_KHRONOS_validation";
/// Where [`MonadoRuntime::install_binary`] puts host programs, inside the chroot.
pub const INSTALL_DIR: &str = "/opt/roomscale";

/// Monado's IPC socket, relative to the chroot: clients inside find it through
/// `XDG_RUNTIME_DIR=/tmp`, which both sides are given.
const SOCKET: &str = "tmp/monado_comp_ipc";
/// Monado's own "one service at a time" file, relative to the chroot.
const PID_FILE: &str = "tmp/monado.pid";
/// Written last into a finished chroot: the package list it was built with.
const STAMP: &str = "etc/roomscale-monado.packages";
/// The service's stdout and stderr, relative to the chroot.
const SERVICE_LOG: &str = "var/log/roomscale-monado-service.log";
const SOCKET_WAIT: Duration = Duration::from_secs(20);
/// A cold build takes a few minutes; another process doing it is waited for.
const BUILD_WAIT: Duration = Duration::from_secs(20 * 60);
/// How long to wait for another XR test's runtime to be dropped.
const TURN_WAIT: Duration = Duration::from_secs(10 * 60);
/// Used when this machine's apt names no Debian archive.
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// Why there is no runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonadoError {
    /// This machine cannot have one (not root, no debootstrap, no archive, no
    /// mounts): the test prints `skipped: <reason>` and passes.
    Skip(String),
    /// It should have worked and did not: the test fails with this message.
    Failed(String),
}

impl std::fmt::Display for MonadoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MonadoError::Skip(reason) => write!(f, "skipped: {reason}"),
            MonadoError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for MonadoError {}

type Result<T, E = MonadoError> = std::result::Result<T, E>;

fn skip(reason: impl Into<String>) -> MonadoError {
    MonadoError::Skip(reason.into())
}

fn failed(message: impl Into<String>) -> MonadoError {
    MonadoError::Failed(message.into())
}

/// Builds the chroot (or waits for it) and starts Monado in it. Where the
/// machine cannot, prints `skipped: <reason>` past the test harness's capture
/// and returns `None`; any other failure panics with what went wrong.
pub fn start_or_skip() -> Option<MonadoRuntime> {
    let started = ensure_chroot().and_then(|chroot| MonadoRuntime::start(&chroot));
    match started {
        Ok(runtime) => Some(runtime),
        Err(MonadoError::Skip(reason)) => {
            let _ = writeln!(io::stderr(), "skipped: {reason}");
            None
        }
        Err(MonadoError::Failed(message)) => panic!("{message}"),
    }
}

/// The chroot's directory: [`CHROOT_VAR`] or [`DEFAULT_CHROOT`].
pub fn chroot_path() -> PathBuf {
    match std::env::var_os(CHROOT_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_CHROOT),
    }
}

/// The Debian 13 chroot with Monado, built on first use and then taken from the
/// cache. A build goes into a sibling directory renamed into place when done,
/// so a killed build never leaves a chroot that looks finished; concurrent
/// callers wait on a lock file for one build.
pub fn ensure_chroot() -> Result<PathBuf> {
    require_root()?;
    let dir = chroot_path();
    if is_current(&dir) {
        return canonical(&dir);
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            failed(format!(
                "{CHROOT_VAR}={} has no parent directory",
                dir.display()
            ))
        })?;
    fs::create_dir_all(parent).map_err(|e| {
        skip(format!(
            "cannot create {} for the Monado chroot: {e} (set {CHROOT_VAR} to a writable place)",
            parent.display()
        ))
    })?;
    let _build_lock = lock_file(&sibling(&dir, ".build.lock"), BUILD_WAIT, "building")?;
    // Another process may have finished it while we waited.
    if is_current(&dir) {
        return canonical(&dir);
    }
    if dir.exists() {
        // Built with another package list: nobody may be using it while it goes.
        let _run_lock = lock_file(&sibling(&dir, ".run.lock"), TURN_WAIT, "using")?;
        eprintln!(
            "monado: {} was built with other packages; rebuilding it",
            dir.display()
        );
        kill_processes_rooted_in(&dir);
        remove_tree(&dir)?;
    }
    build(&dir)?;
    canonical(&dir)
}

fn canonical(dir: &Path) -> Result<PathBuf> {
    // Mount points in /proc/self/mountinfo are canonical paths.
    dir.canonicalize()
        .map_err(|e| failed(format!("cannot resolve {}: {e}", dir.display())))
}

/// Whether `dir` is a finished chroot built with today's [`PACKAGES`].
fn is_current(dir: &Path) -> bool {
    fs::read_to_string(dir.join(STAMP)).is_ok_and(|stamp| stamp == package_stamp())
}

fn package_stamp() -> String {
    PACKAGES.join("\n") + "\n"
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn build(dir: &Path) -> Result<()> {
    let debootstrap = find_debootstrap()?;
    let mirror = mirror()?;
    // Builds left half-done by a killed process: we hold the build lock, so
    // nobody is working in them any more.
    let prefix = format!(
        "{}.partial-",
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    let parent = dir.parent().expect("checked by ensure_chroot");
    if let Ok(entries) = fs::read_dir(parent) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_tree(&entry.path())?;
            }
        }
    }
    let partial = parent.join(format!("{prefix}{}", std::process::id()));
    let log_path = sibling(dir, ".debootstrap.log");
    let log = File::create(&log_path)
        .map_err(|e| failed(format!("cannot create {}: {e}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(|e| failed(format!("cannot reopen {}: {e}", log_path.display())))?;
    eprintln!(
        "monado: building a Debian {SUITE} chroot with Monado at {} from {mirror} \
         (a few minutes, once; log: {})",
        dir.display(),
        log_path.display()
    );
    let began = Instant::now();
    let status = Command::new(&debootstrap)
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&partial)
        .arg(&mirror)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| failed(format!("cannot run {}: {e}", debootstrap.display())))?;
    if !status.success() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        // debootstrap unmounts what it mounted only when it finishes well.
        let _ = remove_tree(&partial);
        return Err(debootstrap_failure(&text, &mirror, &log_path, status));
    }
    for needed in ["usr/bin/monado-service", RUNTIME_JSON, RUNTIME_LIST] {
        let path = partial.join(needed.trim_start_matches('/'));
        if !path.exists() {
            return Err(failed(format!(
                "debootstrap finished but {} is missing; see {}",
                path.display(),
                log_path.display()
            )));
        }
    }
    unmount_all_under(&partial);
    // The downloaded packages are installed; keeping them would double the size.
    if let Ok(entries) = fs::read_dir(partial.join("var/cache/apt/archives")) {
        for entry in entries.flatten() {
            if entry.path().extension() == Some(OsStr::new("deb")) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    fs::write(partial.join(STAMP), package_stamp())
        .map_err(|e| failed(format!("cannot write the chroot's stamp: {e}")))?;
    fs::rename(&partial, dir).map_err(|e| {
        failed(format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            dir.display()
        ))
    })?;
    eprintln!(
        "monado: built {} in {:.0} s",
        dir.display(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A failed debootstrap is a skip when the archive could not be reached (no
/// network, a mirror without trixie), a failure otherwise (say, a package gone).
fn debootstrap_failure(
    log: &str,
    mirror: &str,
    log_path: &Path,
    status: std::process::ExitStatus,
) -> MonadoError {
    const UNREACHABLE: &[&str] = &[
        "Failed getting release file",
        "Couldn't download",
        "Temporary failure resolving",
        "Could not resolve",
        "Connection refused",
        "Network is unreachable",
    ];
    if let Some(sign) = UNREACHABLE.iter().find(|sign| log.contains(*sign)) {
        return skip(format!(
            "the Debian archive {mirror} cannot give Debian {SUITE} for the Monado chroot \
             ({sign}; see {}); set {MIRROR_VAR} to a mirror that has it",
            log_path.display()
        ));
    }
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    failed(format!(
        "debootstrap of Debian {SUITE} failed ({status}); the end of {}:\n{}",
        log_path.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

fn find_debootstrap() -> Result<PathBuf> {
    let find = || {
        [
            "/usr/sbin/debootstrap",
            "/sbin/debootstrap",
            "/usr/bin/debootstrap",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    eprintln!("monado: installing debootstrap with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "debootstrap"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    // A fresh machine's package lists may be empty or old: update once.
    if !install() {
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        install();
    }
    find().ok_or_else(|| {
        skip("debootstrap is missing and `apt-get install debootstrap` failed; install it")
    })
}

fn mirror() -> Result<String> {
    if let Some(mirror) = std::env::var(MIRROR_VAR)
        .ok()
        .filter(|m| !m.trim().is_empty())
    {
        return Ok(mirror.trim().to_string());
    }
    let mut deb822 = vec![PathBuf::from("/etc/apt/sources.list.d/debian.sources")];
    let mut one_line = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            match path.extension().and_then(OsStr::to_str) {
                Some("sources") => deb822.push(path),
                Some("list") => one_line.push(path),
                _ => {}
            }
        }
    }
    let from_deb822 = deb822
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|text| mirror_from_deb822(&text));
    let found = from_deb822.or_else(|| {
        one_line
            .iter()
            .filter_map(|path| fs::read_to_string(path).ok())
            .find_map(|text| mirror_from_one_line(&text))
    });
    Ok(found.unwrap_or_else(|| FALLBACK_MIRROR.to_string()))
}

/// The archive of the first enabled `deb` stanza for a release (a suite with no
/// `-security`/`-updates` part) in a deb822 `.sources` file.
pub fn mirror_from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let mut types = "";
        let mut uris = "";
        let mut suites = "";
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') || line.starts_with(char::is_whitespace) {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types = value,
                "uris" => uris = value,
                "suites" => suites = value,
                "enabled" => enabled = value != "no",
                _ => {}
            }
        }
        let is_release = suites.split_whitespace().any(|suite| !suite.contains('-'));
        if enabled
            && types.split_whitespace().any(|t| t == "deb")
            && is_release
            && let Some(uri) = uris.split_whitespace().find(|uri| usable_uri(uri))
        {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// The archive of the first `deb` line for a release in a one-line
/// `sources.list` file.
pub fn mirror_from_one_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // Options: `[arch=amd64 signed-by=...]`, possibly spread over words.
            let mut closing = uri;
            while !closing.ends_with(']') {
                closing = words.next()?;
            }
            uri = words.next()?;
        }
        let suite = words.next().unwrap_or_default();
        if !suite.contains('-') && usable_uri(uri) {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

fn usable_uri(uri: &str) -> bool {
    ["http://", "https://", "file:/"]
        .iter()
        .any(|scheme| uri.starts_with(scheme))
}

fn require_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    match effective_uid(&status) {
        Some(0) => Ok(()),
        Some(uid) => Err(skip(format!(
            "the Monado chroot needs root (debootstrap, mount, chroot); running as uid {uid}"
        ))),
        None => Err(skip(
            "cannot read my uid from /proc/self/status (not Linux?)",
        )),
    }
}

/// The effective uid from the text of `/proc/self/status`.
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

// ---------------------------------------------------------------------------
// The running service
// ---------------------------------------------------------------------------

/// `monado-service` running in the chroot, with `/proc` and `/dev` mounted
/// there. Dropping it stops the service and unmounts, also when a test panics.
#[derive(Debug)]
pub struct MonadoRuntime {
    chroot: PathBuf,
    child: Child,
    log_path: PathBuf,
    // Dropped in this order after `drop` has stopped the service: unmount,
    // then let the next runtime (another process's, then this one's) start.
    _mounts: Mounts,
    _run_lock: File,
    _turn: Turn,
}

impl MonadoRuntime {
    /// Mounts `/proc` and `/dev` in `chroot` (a directory from
    /// [`ensure_chroot`]), starts Monado with the null compositor and waits
    /// until its socket is there. Waits first for any other runtime to go.
    pub fn start(chroot: &Path) -> Result<Self> {
        require_root()?;
        let chroot = canonical(chroot)?;
        let turn = Turn::take()?;
        let run_lock = lock_file(&sibling(&chroot, ".run.lock"), TURN_WAIT, "using")?;
        // Holding the lock, anything still running in the chroot was left by a
        // process that died without dropping its runtime.
        kill_processes_rooted_in(&chroot);
        let mounts = Mounts::mount(&chroot)?;
        for stale in [SOCKET, PID_FILE] {
            let _ = fs::remove_file(chroot.join(stale));
        }
        let log_path = chroot.join(SERVICE_LOG);
        let log = File::create(&log_path)
            .map_err(|e| failed(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| failed(format!("cannot reopen {}: {e}", log_path.display())))?;
        let mut command = Command::new(system_tool("chroot"));
        command
            .arg(&chroot)
            .arg("/usr/bin/monado-service")
            // The host's environment means nothing inside (paths, a runtime
            // directory); Monado aborts without HOME.
            .env_clear()
            .envs(base_env())
            .env("XRT_COMPOSITOR_NULL", "1")
            .env("XRT_NO_STDIN", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // Monado's own debugging switches (XRT_LOG=debug, ...) pass through.
        for (key, value) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("XRT_") {
                command.env(key, value);
            }
        }
        let began = Instant::now();
        // chroot(8) execs the service: the child is monado-service itself.
        let child = command
            .spawn()
            .map_err(|e| failed(format!("cannot run chroot {}: {e}", chroot.display())))?;
        let mut runtime = MonadoRuntime {
            chroot,
            child,
            log_path,
            _mounts: mounts,
            _run_lock: run_lock,
            _turn: turn,
        };
        runtime.wait_for_socket(began)?;
        eprintln!(
            "monado: monado-service {} ready in {} ms",
            runtime.pid(),
            began.elapsed().as_millis()
        );
        Ok(runtime)
    }

    fn wait_for_socket(&mut self, began: Instant) -> Result<()> {
        let socket = self.chroot.join(SOCKET);
        loop {
            if socket.exists() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(failed(format!(
                    "monado-service exited ({status}) before opening {}; its log:\n{}",
                    socket.display(),
                    self.log_tail(30)
                )));
            }
            if began.elapsed() > SOCKET_WAIT {
                return Err(failed(format!(
                    "monado-service did not open {} within {} s; its log:\n{}",
                    socket.display(),
                    SOCKET_WAIT.as_secs(),
                    self.log_tail(30)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The service's process id (on the host; the chroot shares its PID space).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The chroot the service runs in.
    pub fn chroot_dir(&self) -> &Path {
        &self.chroot
    }

    /// The service's stdout and stderr, on the host.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines the service wrote, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            // The end is what matters; the start is a long banner.
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Whether the service is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the service at once (SIGKILL), as a crashing runtime would go,
    /// and reaps it. The mounts stay until the runtime is dropped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `program` (a path inside the chroot) run in the chroot as an OpenXR
    /// application of this runtime: a clean environment with
    /// `XR_RUNTIME_JSON` and the runtime directory that finds Monado's socket.
    /// Add variables with `.env` (say `XR_ENABLE_API_LAYERS` =
    /// [`XR_VALIDATION_LAYER`], `VK_INSTANCE_LAYERS` = [`VULKAN_VALIDATION_LAYER`]).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(system_tool("chroot"));
        command
            .arg(&self.chroot)
            .arg(program)
            .env_clear()
            .envs(base_env())
            .env("XR_RUNTIME_JSON", RUNTIME_JSON)
            .env("LD_LIBRARY_PATH", format!("{INSTALL_DIR}/lib"));
        for key in ["RUST_BACKTRACE", "RUST_LOG"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
    }

    /// Copies a host program (built on Debian 12; its glibc is older, which is
    /// fine) into the chroot's [`INSTALL_DIR`] and returns its path inside.
    pub fn install_binary(&self, host_path: &Path) -> Result<PathBuf> {
        let name = host_path
            .file_name()
            .ok_or_else(|| failed(format!("{} names no file", host_path.display())))?;
        let dir = self.chroot.join(INSTALL_DIR.trim_start_matches('/'));
        fs::create_dir_all(&dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        // Copy then rename: overwriting a program still running fails (ETXTBSY).
        let target = dir.join(name);
        let temporary = dir.join(format!(
            ".{}.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        fs::copy(host_path, &temporary).map_err(|e| {
            failed(format!(
                "cannot copy {} into the chroot: {e}",
                host_path.display()
            ))
        })?;
        fs::rename(&temporary, &target)
            .map_err(|e| failed(format!("cannot rename to {}: {e}", target.display())))?;
        self.install_missing_libraries(host_path)?;
        Ok(Path::new(INSTALL_DIR).join(name))
    }

    /// Copies the host libraries `host_path` links that Debian 13 does not
    /// ship under the same name (Debian 12's libwebrtc_audio_processing.so.1
    /// is one) into the chroot's [`INSTALL_DIR`]`/lib`, which [`Self::command`]
    /// puts on the library path; Debian 13's own copies of the rest are used.
    fn install_missing_libraries(&self, host_path: &Path) -> Result<()> {
        let output = Command::new("ldd")
            .arg(host_path)
            .output()
            .map_err(|e| failed(format!("cannot run ldd on {}: {e}", host_path.display())))?;
        let lib_dir = self
            .chroot
            .join(INSTALL_DIR.trim_start_matches('/'))
            .join("lib");
        for (soname, host_library) in linked_libraries(&String::from_utf8_lossy(&output.stdout)) {
            let shipped = CHROOT_LIBRARY_DIRS
                .iter()
                .any(|dir| self.chroot.join(dir).join(&soname).exists());
            if shipped {
                continue;
            }
            fs::create_dir_all(&lib_dir)
                .map_err(|e| failed(format!("cannot create {}: {e}", lib_dir.display())))?;
            fs::copy(&host_library, lib_dir.join(&soname)).map_err(|e| {
                failed(format!(
                    "cannot copy {} into the chroot: {e}",
                    host_library.display()
                ))
            })?;
        }
        Ok(())
    }
}

/// Where Debian 13 keeps shared libraries, inside the chroot.
const CHROOT_LIBRARY_DIRS: &[&str] = &[
    "usr/lib/x86_64-linux-gnu",
    "lib/x86_64-linux-gnu",
    "usr/lib",
    "lib",
];

/// `(soname, host path)` of each library in `ldd` output that resolved to a file.
pub fn linked_libraries(ldd: &str) -> Vec<(String, PathBuf)> {
    ldd.lines()
        .filter_map(|line| {
            let (soname, rest) = line.trim().split_once(" => ")?;
            let path = rest.split_whitespace().next()?;
            path.starts_with('/')
                .then(|| (soname.to_string(), PathBuf::from(path)))
        })
        .collect()
}

impl Drop for MonadoRuntime {
    fn drop(&mut self) {
        if self.is_running() {
            // SIGTERM lets Monado remove its socket; SIGKILL if it hangs.
            signal("TERM", &[self.child.id().to_string()]);
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
        // Clients a test started and left behind would keep /dev busy.
        kill_processes_rooted_in(&self.chroot);
    }
}

/// What every program in the chroot gets, the service included.
fn base_env() -> [(&'static str, &'static str); 4] {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("XDG_RUNTIME_DIR", "/tmp"),
    ]
}

/// A program from util-linux or coreutils, found where Debian puts it even
/// when PATH has no sbin directories.
fn system_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

// ---------------------------------------------------------------------------
// One runtime at a time
// ---------------------------------------------------------------------------

static BUSY: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

/// This process's turn to run Monado; a flag rather than a held `MutexGuard`
/// keeps [`MonadoRuntime`] `Send`.
#[derive(Debug)]
struct Turn;

impl Turn {
    fn take() -> Result<Self> {
        let deadline = Instant::now() + TURN_WAIT;
        let mut busy = BUSY.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(failed(format!(
                    "another MonadoRuntime in this process was not dropped within {} s; \
                     XR tests run one at a time, so drop each runtime before the next",
                    TURN_WAIT.as_secs()
                )));
            }
            busy = FREED
                .wait_timeout(busy, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *busy = true;
        Ok(Turn)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(PoisonError::into_inner) = false;
        FREED.notify_all();
    }
}

/// An exclusive `flock` on `path`, waited for up to `wait`. The kernel drops
/// it when the process dies, so a killed test never leaves it stuck.
fn lock_file(path: &Path, wait: Duration, doing: &str) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| failed(format!("cannot open the lock file {}: {e}", path.display())))?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => {
                return Err(failed(format!("cannot lock {}: {e}", path.display())));
            }
        }
        if Instant::now() > deadline {
            return Err(failed(format!(
                "{} stayed locked for {} s (another test or process is {doing} the Monado \
                 chroot); the lock goes with its holder, so look for a hung test",
                path.display(),
                wait.as_secs()
            )));
        }
        if !told {
            eprintln!(
                "monado: waiting for {}: another test or process is {doing} the Monado chroot",
                path.display()
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// Mounts and clean-up
// ---------------------------------------------------------------------------

/// `/proc` and `/dev` mounted in the chroot; unmounted on drop.
#[derive(Debug)]
struct Mounts {
    chroot: PathBuf,
}

impl Mounts {
    fn mount(chroot: &Path) -> Result<Self> {
        // From here on, drop unmounts whatever did get mounted.
        let mounts = Mounts {
            chroot: chroot.to_path_buf(),
        };
        let proc_dir = chroot.join("proc");
        let dev_dir = chroot.join("dev");
        if !is_mount_point(&proc_dir) {
            run_mount(&["-t", "proc", "proc"], &proc_dir)?;
        }
        if !is_mount_point(&dev_dir) {
            run_mount(&["--rbind", "/dev"], &dev_dir)?;
            // Where / is a shared mount, unmounting the bound /dev/pts and
            // /dev/shm would otherwise unmount the host's own.
            run_mount(&["--make-rslave"], &dev_dir)?;
        }
        Ok(mounts)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        unmount_all_under(&self.chroot);
    }
}

fn run_mount(args: &[&str], target: &Path) -> Result<()> {
    let output = Command::new(system_tool("mount"))
        .args(args)
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| skip(format!("cannot run mount: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(skip(format!(
        "cannot mount {} {} for the Monado chroot (needs root with CAP_SYS_ADMIN): {}",
        args.join(" "),
        target.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

fn read_mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

fn is_mount_point(path: &Path) -> bool {
    mount_points(&read_mountinfo())
        .iter()
        .any(|point| Path::new(point) == path)
}

/// Every mount point in the text of `/proc/self/mountinfo`, in its order
/// (parents before what is mounted on them), octal escapes decoded.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .collect()
}

fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points strictly inside `dir`, innermost (latest) first: the order to
/// unmount them in.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut inside: Vec<PathBuf> = mount_points(mountinfo)
        .into_iter()
        .map(PathBuf::from)
        .filter(|point| point != dir && point.starts_with(dir))
        .collect();
    inside.reverse();
    inside
}

/// Unmounts everything inside `dir` (lazily where busy) and says so when
/// something stays.
fn unmount_all_under(dir: &Path) {
    for _ in 0..3 {
        let inside = mounts_under(&read_mountinfo(), dir);
        if inside.is_empty() {
            return;
        }
        for point in inside {
            let plain = Command::new(system_tool("umount"))
                .arg(&point)
                .stderr(Stdio::null())
                .status();
            if !plain.is_ok_and(|status| status.success()) {
                let _ = Command::new(system_tool("umount"))
                    .arg("-l")
                    .arg(&point)
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    let left = mounts_under(&read_mountinfo(), dir);
    if !left.is_empty() {
        eprintln!(
            "monado: could not unmount {left:?}; unmount them by hand (umount -l) before \
             removing {}",
            dir.display()
        );
    }
}

/// Removes a chroot tree: unmounts inside it first, and never crosses into
/// another file system, so a /dev bound inside is never deleted through it.
fn remove_tree(dir: &Path) -> Result<()> {
    unmount_all_under(dir);
    if !mounts_under(&read_mountinfo(), dir).is_empty() {
        return Err(failed(format!(
            "{} still has mounts inside; not removing it",
            dir.display()
        )));
    }
    let status = Command::new("rm")
        .args(["-rf", "--one-file-system"])
        .arg(dir)
        .status()
        .map_err(|e| failed(format!("cannot run rm: {e}")))?;
    if !status.success() || dir.exists() {
        return Err(failed(format!(
            "cannot remove {}; remove it by hand",
            dir.display()
        )));
    }
    Ok(())
}

/// Sends `SIG<name>` to `pids` with the shell's own `kill`, which every
/// machine has (no `unsafe` here for `kill(2)`).
fn signal(name: &str, pids: &[String]) {
    let _ = Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$@\"", name])
        .args(pids)
        .stderr(Stdio::null())
        .status();
}

/// SIGKILLs every process whose root is `chroot` and waits (briefly) for them
/// to go.
fn kill_processes_rooted_in(chroot: &Path) {
    let rooted = || -> Vec<String> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter(|entry| {
                fs::read_link(entry.path().join("root")).is_ok_and(|root| root == chroot)
            })
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let pids = rooted();
    if pids.is_empty() {
        return;
    }
    eprintln!(
        "monado: killing processes left in {}: {}",
        chroot.display(),
        pids.join(" ")
    );
    signal("KILL", &pids);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rooted().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn ldd_output_names_each_resolved_library() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibwebrtc_audio_processing.so.1 => /lib/x86_64-linux-gnu/libwebrtc_audio_processing.so.1 (0x00007f90)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f91)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f92)\n\tlibmissing.so.3 => not found\n";
        assert_eq!(
            linked_libraries(ldd),
            vec![
                (
                    "libwebrtc_audio_processing.so.1".to_string(),
                    PathBuf::from("/lib/x86_64-linux-gnu/libwebrtc_audio_processing.so.1")
                ),
                (
                    "libc.so.6".to_string(),
                    PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
                ),
            ]
        );
    }

    use super::*;

    #[test]
    fn the_release_archive_is_found_in_deb822_sources() {
        fn check(input: &str, expected: Option<&str>) {
            assert_eq!(mirror_from_deb822(input).as_deref(), expected, "{input}");
        }
        let bookworm = "Types: deb\n\
            # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
            URIs: http://deb.debian.org/debian\n\
            Suites: bookworm bookworm-updates\n\
            Components: main\n\
            Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
            \n\
            Types: deb\n\
            URIs: http://deb.debian.org/debian-security\n\
            Suites: bookworm-security\n\
            Components: main\n";
        check(bookworm, Some("http://deb.debian.org/debian"));
        // Security first in the file: still the release archive.
        check(
            "Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n\n\
             Types: deb deb-src\nURIs: https://mirror.example/debian/\nSuites: bookworm\n",
            Some("https://mirror.example/debian"),
        );
        check(
            "Types: deb-src\nURIs: http://a/debian\nSuites: bookworm\n",
            None,
        );
        check(
            "Enabled: no\nTypes: deb\nURIs: http://a/debian\nSuites: bookworm\n",
            None,
        );
        check(
            "Types: deb\nURIs: cdrom:[Debian]/ http://b/debian\nSuites: trixie\n",
            Some("http://b/debian"),
        );
        check("", None);
    }

    #[test]
    fn the_release_archive_is_found_in_one_line_sources() {
        fn check(input: &str, expected: Option<&str>) {
            assert_eq!(mirror_from_one_line(input).as_deref(), expected, "{input}");
        }
        check(
            "deb http://deb.debian.org/debian bookworm main\n",
            Some("http://deb.debian.org/debian"),
        );
        check(
            "# deb http://old/debian bookworm main\n\
             deb-src http://src/debian bookworm main\n\
             deb http://security.debian.org/debian-security bookworm-security main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://m/debian/ bookworm main contrib\n",
            Some("http://m/debian"),
        );
        check(
            "deb [ arch=amd64 ] http://spaced/debian bookworm main\n",
            Some("http://spaced/debian"),
        );
        check("deb cdrom:[Debian]/ bookworm main\n", None);
        check("", None);
    }

    #[test]
    fn the_effective_uid_is_read_from_proc_status() {
        fn check(input: &str, expected: Option<u32>) {
            assert_eq!(effective_uid(input), expected, "{input}");
        }
        check(
            "Name:\tcargo\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            Some(0),
        );
        check("Uid:\t1000\t1001\t1000\t1000\n", Some(1001));
        check("Name:\tx\n", None);
    }

    #[test]
    fn mounts_inside_the_chroot_come_innermost_first() {
        let mountinfo = "\
            22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
            30 22 0:5 / /dev rw - devtmpfs udev rw\n\
            40 22 0:20 / /var/cache/roomscale/monado-trixie/proc rw - proc proc rw\n\
            41 22 0:5 / /var/cache/roomscale/monado-trixie/dev rw - devtmpfs udev rw\n\
            42 41 0:21 / /var/cache/roomscale/monado-trixie/dev/pts rw - devpts devpts rw\n\
            43 22 0:22 / /var/cache/roomscale/monado-trixie-other/proc rw - proc proc rw\n\
            44 22 0:23 / /tmp/with\\040space rw - tmpfs tmpfs rw\n";
        let dir = Path::new("/var/cache/roomscale/monado-trixie");
        assert_eq!(
            mounts_under(mountinfo, dir),
            [dir.join("dev/pts"), dir.join("dev"), dir.join("proc"),]
        );
        assert!(mount_points(mountinfo).contains(&"/tmp/with space".to_string()));
        assert!(mounts_under(mountinfo, Path::new("/nowhere")).is_empty());
    }

    #[test]
    fn an_unreachable_archive_skips_and_other_debootstrap_failures_fail() {
        use std::os::unix::process::ExitStatusExt as _;
        let status = std::process::ExitStatus::from_raw(1 << 8);
        let check = |log: &str, skips: bool| {
            let error = debootstrap_failure(log, "http://m/debian", Path::new("/l.log"), status);
            assert_eq!(
                matches!(error, MonadoError::Skip(_)),
                skips,
                "{log}: {error}"
            );
        };
        check(
            "E: Failed getting release file http://m/debian/dists/trixie/Release\n",
            true,
        );
        check("W: Couldn't download package libc6\n", true);
        check("E: Couldn't find these debs: monado-servic\n", false);
        check("", false);
    }
}
