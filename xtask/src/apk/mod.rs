//! `cargo xtask apk`: the Quest APK. Builds the app's library for
//! `aarch64-linux-android` with the Android NDK (or takes a prebuilt one with
//! `--so`), packages it with `android/AndroidManifest.xml`, the icons and
//! Khronos's OpenXR loader (`--loader`), aligns and signs the APK, and checks
//! the result the way a Quest needs it ([`check`]).
//!
//! The packaging tools are Debian's (`aapt2`/`aapt`, `zipalign`, `apksigner`,
//! `android-framework-res` as the platform to link against), so everything but
//! the library builds without the Android SDK. `cargo xtask test` runs the
//! Android clippy check and packages a placeholder library, since a real link
//! needs the NDK ([`test_steps`]).

mod check;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail, ensure};

use crate::summary::Summary;
use crate::{cargo, prereqs, run};

pub const TARGET: &str = "aarch64-linux-android";
/// The Android API level the library links against: Quest 2 and later run
/// Android 10 (29) or newer; the manifest's minSdkVersion says the same.
const API_LEVEL: u32 = 29;
/// The manifest's `android.app.lib_name`: NativeActivity loads `lib<it>.so`.
const LIB_NAME: &str = "roomscale";
const FRAMEWORK_RES: &str = "/usr/share/android-framework-res/framework-res.apk";
/// Android builds have their own target directory, so a minutes-long
/// cross build never holds the host build's lock.
const TARGET_DIR: &str = "target/android";
/// Debian packages with the tools that package, sign and read back an APK.
pub const PACKAGING_PACKAGES: &[&str] = &[
    "aapt",
    "zipalign",
    "apksigner",
    "android-framework-res",
    "openjdk-17-jre-headless",
];
/// Debian's cross C compiler, which compiles the C in the app's dependencies
/// (aws-lc-sys with cc, libopus with CMake) for the Android clippy check when
/// there is no NDK.
pub const CHECK_C_PACKAGES: &[&str] = &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "cmake"];
/// The CMake toolchain for that check: without one, CMake insists on an NDK
/// for an Android target.
const CHECK_CMAKE_TOOLCHAIN: &str =
    "# Written by `cargo xtask test`: the C in the app's dependencies is compiled
# with Debian's aarch64 cross gcc for the Android clippy check only (no NDK here).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
";
/// The environment variable naming a release keystore's password
/// (apksigner reads it itself; it never appears on a command line).
const KEYSTORE_PASS_ENV: &str = "ROOMSCALE_KEYSTORE_PASS";

const USAGE: &str = "cargo xtask apk [--so LIB.so] [--loader libopenxr_loader.so|.aar] [--out APK]
                 [--keystore KEYSTORE --key-alias ALIAS] [--check-each-requirement]";

/// What `cargo xtask apk` was asked for.
#[derive(Debug, Default)]
struct Options {
    /// A prebuilt library instead of building one with the NDK.
    so: Option<PathBuf>,
    loader: Option<PathBuf>,
    out: Option<PathBuf>,
    keystore: Option<PathBuf>,
    key_alias: Option<String>,
    /// After the APK, build one with each requirement taken away and expect
    /// the check to name it.
    check_each_requirement: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value; usage: {USAGE}"))
            };
            match arg.as_str() {
                "--so" => options.so = Some(value("--so")?.into()),
                "--loader" => options.loader = Some(value("--loader")?.into()),
                "--out" => options.out = Some(value("--out")?.into()),
                "--keystore" => options.keystore = Some(value("--keystore")?.into()),
                "--key-alias" => options.key_alias = Some(value("--key-alias")?),
                "--check-each-requirement" => options.check_each_requirement = true,
                other => bail!("unknown option {other}; usage: {USAGE}"),
            }
        }
        Ok(options)
    }
}

/// `cargo xtask apk [options]`.
pub fn task(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let tools = Tools::find()?;
    // Both inputs are looked for before a minutes-long build starts.
    let loader = loader_library(options.loader.as_deref())?;
    let signer = Signer::from_options(&options)?;
    let (library, beside) = match &options.so {
        Some(path) => {
            println!("apk: packaging the prebuilt library {}", path.display());
            (path.clone(), Vec::new())
        }
        None => build_library()?,
    };
    describe_library(&library)?;
    describe_library(&loader)?;
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(TARGET_DIR).join("roomscale.apk"));
    let package = Package {
        manifest: std::fs::read_to_string("android/AndroidManifest.xml")
            .context("reading android/AndroidManifest.xml")?,
        libraries: [
            (format!("lib{LIB_NAME}.so"), library),
            ("libopenxr_loader.so".into(), loader),
        ]
        .into_iter()
        .chain(beside)
        .collect(),
    };
    let work = PathBuf::from(TARGET_DIR).join("apk-work");
    package.assemble(&tools, &signer, &work, &out)?;
    let apk = tools.inspect(&out)?;
    let missing = check::missing(&apk);
    ensure!(
        missing.is_empty(),
        "{} lacks what a Quest needs: {}",
        out.display(),
        missing.join("; ")
    );
    let size = std::fs::metadata(&out)?.len();
    println!(
        "apk: {} ({size} bytes): signed (apksigner verify), aligned (zipalign -c -p 4), \
         manifest and libraries checked ({} requirements); aapt2 dump badging:\n{}",
        out.display(),
        check::REQUIREMENTS.len(),
        apk.badging().trim_end()
    );
    if options.check_each_requirement {
        check_each_requirement(&tools, &signer, &package)?;
    }
    Ok(())
}

/// The Android steps of `cargo xtask test`: clippy for the Android target,
/// then the packaging path with a placeholder library.
pub fn test_steps(summary: &mut Summary) -> Result<()> {
    match android_clippy() {
        Ok(mut clippy) => summary.run_step(
            "Android build check (clippy -p roomscale-app --target aarch64-linux-android)",
            &mut clippy,
        )?,
        Err(reason) => summary.note_skip(format!("Android clippy: {reason:#}")),
    }
    if let Err(error) = prereqs::ensure_apt_packages(&[], PACKAGING_PACKAGES) {
        summary.note_skip(format!("Quest APK packaging: {error:#}"));
        return Ok(());
    }
    let placeholder = match build_placeholder() {
        Ok(path) => path,
        Err(error) => {
            summary.note_skip(format!("Quest APK packaging: {error:#}"));
            return Ok(());
        }
    };
    let xtask = std::env::current_exe().context("finding the xtask binary")?;
    let apk = |extra: &[&str]| {
        let mut command = Command::new(&xtask);
        command
            .arg("apk")
            .arg("--so")
            .arg(&placeholder)
            .arg("--loader")
            .arg(&placeholder)
            .arg("--out")
            .arg(Path::new(TARGET_DIR).join("test/roomscale-placeholder.apk"))
            .args(extra);
        command
    };
    summary.run_step(
        "Quest APK from a PLACEHOLDER library: packaged, aligned, signed, manifest checked",
        &mut apk(&[]),
    )?;
    summary.run_step(
        "Quest APK check fails on a manifest or APK missing each required item",
        &mut apk(&["--check-each-requirement"]),
    )?;
    Ok(())
}

/// `cargo clippy` of the app for the Android target. The C in its
/// dependencies is compiled with the NDK's clang when `ANDROID_NDK_HOME`
/// names one, else with Debian's aarch64 cross gcc: the Rust is checked
/// against the Android target either way, and nothing built here is linked.
fn android_clippy() -> Result<Command> {
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .output()
        .context("rustup is not on PATH")?;
    if !added.status.success() {
        bail!(
            "`rustup target add {TARGET}` failed: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        );
    }
    let mut command = cargo();
    command
        .args([
            "clippy",
            "--quiet",
            "--package",
            "roomscale-app",
            "--target",
            TARGET,
        ])
        .args(["--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", TARGET_DIR);
    let env_name = TARGET.replace('-', "_");
    match Ndk::find() {
        Ok(ndk) => {
            println!(
                "xtask: Android C code compiles with {}",
                ndk.clang().display()
            );
            command
                .env(format!("CC_{env_name}"), ndk.clang())
                .env(format!("AR_{env_name}"), ndk.bin("llvm-ar"));
        }
        Err(_) => {
            prereqs::ensure_apt_packages(&["aarch64-linux-gnu-gcc", "cmake"], CHECK_C_PACKAGES)
                .context("no Android NDK, and no cross C compiler to check with instead")?;
            std::fs::create_dir_all(TARGET_DIR)?;
            let toolchain =
                std::path::absolute(Path::new(TARGET_DIR).join("check-toolchain.cmake"))?;
            std::fs::write(&toolchain, CHECK_CMAKE_TOOLCHAIN)
                .with_context(|| format!("writing {}", toolchain.display()))?;
            println!(
                "xtask: no Android NDK (ANDROID_NDK_HOME); the C in the dependencies is compiled \
                 for this check only with Debian's aarch64-linux-gnu-gcc (glibc headers) and is never linked"
            );
            command
                .env(format!("CC_{env_name}"), "aarch64-linux-gnu-gcc")
                .env(format!("AR_{env_name}"), "aarch64-linux-gnu-ar")
                // Bionic declares what glibc shows only with _GNU_SOURCE (pthread_rwlock_t).
                .env(format!("CFLAGS_{env_name}"), "-D_GNU_SOURCE")
                .env(format!("CMAKE_TOOLCHAIN_FILE_{env_name}"), toolchain);
        }
    }
    Ok(command)
}

/// The source of the placeholder library: a `no_std` aarch64 Android
/// shared object whose NativeActivity entry point does nothing, so the
/// packaging path can be tested where the real library cannot be linked.
const PLACEHOLDER_SOURCE: &str = r#"//! PLACEHOLDER for libroomscale.so, built by `cargo xtask test` where no
//! Android NDK can link the real library. It only lets the APK packaging be
//! tested; an APK holding it does nothing on a headset.
#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// What NativeActivity calls; the real library's comes from android-activity.
#[unsafe(no_mangle)]
pub extern "C" fn ANativeActivity_onCreate(_activity: *mut u8, _state: *mut u8, _size: usize) {}
"#;

/// Builds the placeholder library with rustc and the linker it ships
/// (rust-lld): a genuine aarch64 ELF shared object, but not the app.
fn build_placeholder() -> Result<PathBuf> {
    let dir = PathBuf::from(TARGET_DIR).join("placeholder");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let source = dir.join("placeholder.rs");
    std::fs::write(&source, PLACEHOLDER_SOURCE)?;
    let library = dir.join(format!("lib{LIB_NAME}.so"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    run(Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "cdylib",
            "--target",
            TARGET,
        ])
        .args(["-C", "panic=abort", "-C", "opt-level=s"])
        .args(["-C", "linker=rust-lld", "-C", "linker-flavor=ld.lld"])
        .arg("-o")
        .arg(&library)
        .arg(&source))
    .with_context(|| {
        format!("building the placeholder library (needs `rustup target add {TARGET}`)")
    })?;
    println!(
        "xtask: PLACEHOLDER library {}: a no_std aarch64 ELF shared object from {} \
         (rustc + rust-lld, no NDK); the test APK packages it as both libroomscale.so and \
         libopenxr_loader.so and does nothing on a headset",
        library.display(),
        source.display()
    );
    Ok(library)
}

/// The Debian (or SDK) tools that package, sign and read an APK.
struct Tools {
    /// The platform resources to link against: Debian's framework-res.apk,
    /// or an SDK's android.jar named by `ANDROID_JAR`.
    platform: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools> {
        prereqs::ensure_apt_packages(
            &["aapt2", "aapt", "zipalign", "apksigner", "keytool"],
            PACKAGING_PACKAGES,
        )?;
        let platform = match std::env::var_os("ANDROID_JAR") {
            Some(jar) => PathBuf::from(jar),
            None => {
                prereqs::ensure_apt_packages(&[], &["android-framework-res"])?;
                PathBuf::from(FRAMEWORK_RES)
            }
        };
        ensure!(
            platform.is_file(),
            "{} is missing: install Debian's android-framework-res, or point ANDROID_JAR at an \
             Android SDK's platforms/android-NN/android.jar",
            platform.display()
        );
        Ok(Tools { platform })
    }

    /// What the check reads: the signature and alignment are verified here,
    /// the dumps returned.
    fn inspect(&self, apk: &Path) -> Result<check::Apk> {
        run(Command::new("apksigner").arg("verify").arg(apk))
            .with_context(|| format!("{}: the signature does not verify", apk.display()))?;
        let zipalign = output(
            Command::new("zipalign")
                .args(["-c", "-v", "-p", "4"])
                .arg(apk),
        )
        .with_context(|| format!("{}: not aligned to 4 bytes", apk.display()))?;
        let badging = output(Command::new("aapt2").args(["dump", "badging"]).arg(apk))?;
        let xmltree = output(
            Command::new("aapt2")
                .args(["dump", "xmltree", "--file", "AndroidManifest.xml"])
                .arg(apk),
        )?;
        Ok(check::Apk::from_dumps(&badging, &xmltree, &zipalign))
    }
}

/// What goes into an APK besides the icons.
#[derive(Debug, Clone)]
struct Package {
    manifest: String,
    /// (name under lib/arm64-v8a/, file)
    libraries: Vec<(String, PathBuf)>,
}

impl Package {
    /// Links the manifest and resources, adds the libraries uncompressed,
    /// aligns and signs, writing `out`.
    fn assemble(&self, tools: &Tools, signer: &Signer, work: &Path, out: &Path) -> Result<()> {
        if work.exists() {
            std::fs::remove_dir_all(work)
                .with_context(|| format!("clearing {}", work.display()))?;
        }
        let libs = work.join("stage/lib/arm64-v8a");
        std::fs::create_dir_all(&libs).with_context(|| format!("creating {}", libs.display()))?;
        let manifest = work.join("AndroidManifest.xml");
        std::fs::write(&manifest, &self.manifest)?;
        let resources = work.join("resources.zip");
        run(Command::new("aapt2")
            .args(["compile", "--dir", "android/res", "-o"])
            .arg(&resources))
        .context("compiling android/res")?;
        let unaligned = work.join("unaligned.apk");
        // `--warn-manifest-validation` keeps <queries> (newer than the
        // platform linked against) instead of rejecting the manifest; the
        // warning it then prints about <queries> is expected and not shown.
        let linked = Command::new("aapt2")
            .arg("link")
            .arg("-o")
            .arg(&unaligned)
            .arg("-I")
            .arg(&tools.platform)
            .arg("--manifest")
            .arg(&manifest)
            .arg("-R")
            .arg(&resources)
            .args(["--auto-add-overlay", "--warn-manifest-validation"])
            .output()
            .context("could not start aapt2")?;
        let messages = String::from_utf8_lossy(&linked.stderr);
        for line in messages.lines() {
            if !line.contains("unexpected element <queries>") {
                eprintln!("{line}");
            }
        }
        ensure!(
            linked.status.success(),
            "linking the manifest and resources (aapt2 link) failed: {messages}"
        );
        let mut add = Command::new("aapt");
        // `-0 ''` stores every added file uncompressed, as native libraries
        // should be; the paths are the entries' names, hence the directory.
        add.args(["add", "-0", ""])
            .arg(std::path::absolute(&unaligned)?)
            .current_dir(work.join("stage"));
        for (name, file) in &self.libraries {
            std::fs::copy(file, libs.join(name))
                .with_context(|| format!("copying {}", file.display()))?;
            add.arg(format!("lib/arm64-v8a/{name}"));
        }
        output(&mut add).context("adding the libraries (aapt add)")?;
        let aligned = work.join("aligned.apk");
        run(Command::new("zipalign")
            .args(["-f", "-p", "4"])
            .arg(&unaligned)
            .arg(&aligned))
        .context("aligning the APK (zipalign)")?;
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        signer.sign(&aligned, out)
    }
}

/// Builds the APK again with each requirement taken away in turn (a line
/// of the manifest, or a library) and expects the check to name it.
fn check_each_requirement(tools: &Tools, signer: &Signer, package: &Package) -> Result<()> {
    let mut failures = Vec::new();
    for (i, requirement) in check::REQUIREMENTS.iter().enumerate() {
        let mut broken = package.clone();
        let taken = if requirement.marker.starts_with("lib/") {
            let name = requirement.marker.trim_start_matches("lib/arm64-v8a/");
            broken.libraries.retain(|(n, _)| n != name);
            format!("without {}", requirement.marker)
        } else if let Some(other) = requirement.break_with {
            broken.manifest = broken.manifest.replace(requirement.marker, other);
            format!("with {} changed to {other}", requirement.marker)
        } else {
            broken.manifest = broken
                .manifest
                .lines()
                .filter(|line| !check::mentions(line, requirement.marker))
                .map(|line| format!("{line}\n"))
                .collect();
            format!("without the manifest lines naming {}", requirement.marker)
        };
        ensure!(
            broken.manifest != package.manifest
                || broken.libraries.len() != package.libraries.len(),
            "{} is not in android/AndroidManifest.xml as the check expects",
            requirement.marker
        );
        let work = PathBuf::from(TARGET_DIR).join(format!("check-each/{i}"));
        let apk = work.join("broken.apk");
        let result = broken
            .assemble(tools, signer, &work.join("work"), &apk)
            .and_then(|()| tools.inspect(&apk));
        match result {
            Ok(inspected) => {
                let missing = check::missing(&inspected);
                if missing.contains(&requirement.what) {
                    println!("ok: {taken}, the check reports: {}", missing.join("; "));
                } else {
                    println!("FAILED: {taken}, the check reports {missing:?}");
                    failures.push(requirement.what);
                }
            }
            Err(error) => {
                println!("FAILED: {taken}, the APK was not built: {error:#}");
                failures.push(requirement.what);
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "the check missed: {}",
        failures.join("; ")
    );
    println!(
        "apk: the check named each of the {} requirements when it was taken away",
        check::REQUIREMENTS.len()
    );
    Ok(())
}

/// How the APK is signed.
#[derive(Debug)]
enum Signer {
    /// The SDK's convention: `~/.android/debug.keystore`, made here with
    /// keytool when missing, password `android`.
    Debug(PathBuf),
    /// A release keystore; its password comes from `ROOMSCALE_KEYSTORE_PASS`.
    Release { keystore: PathBuf, alias: String },
}

impl Signer {
    fn from_options(options: &Options) -> Result<Signer> {
        match (&options.keystore, &options.key_alias) {
            (Some(keystore), Some(alias)) => {
                ensure!(
                    keystore.is_file(),
                    "the keystore {} does not exist",
                    keystore.display()
                );
                ensure!(
                    std::env::var_os(KEYSTORE_PASS_ENV).is_some(),
                    "set {KEYSTORE_PASS_ENV} to the password of {}",
                    keystore.display()
                );
                Ok(Signer::Release {
                    keystore: keystore.clone(),
                    alias: alias.clone(),
                })
            }
            (None, None) => {
                let dir = std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".android"))
                    .unwrap_or_else(|| PathBuf::from(TARGET_DIR));
                Ok(Signer::Debug(dir.join("debug.keystore")))
            }
            _ => bail!("--keystore and --key-alias go together; usage: {USAGE}"),
        }
    }

    fn sign(&self, aligned: &Path, out: &Path) -> Result<()> {
        let mut apksigner = Command::new("apksigner");
        apksigner.arg("sign");
        match self {
            Signer::Debug(keystore) => {
                if !keystore.is_file() {
                    create_debug_key(keystore)?;
                }
                apksigner.arg("--ks").arg(keystore).args([
                    "--ks-pass",
                    "pass:android",
                    "--ks-key-alias",
                    "androiddebugkey",
                ]);
            }
            Signer::Release { keystore, alias } => {
                apksigner
                    .arg("--ks")
                    .arg(keystore)
                    .args(["--ks-pass", &format!("env:{KEYSTORE_PASS_ENV}")])
                    .args(["--ks-key-alias", alias]);
            }
        }
        run(apksigner.arg("--out").arg(out).arg(aligned)).context("signing the APK (apksigner)")
    }
}

fn create_debug_key(keystore: &Path) -> Result<()> {
    if let Some(dir) = keystore.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    println!("apk: creating the debug signing key {}", keystore.display());
    run(Command::new("keytool")
        .args(["-genkeypair", "-keystore"])
        .arg(keystore)
        .args(["-storepass", "android", "-keypass", "android"])
        .args([
            "-alias",
            "androiddebugkey",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
        ])
        .args([
            "-validity",
            "10000",
            "-dname",
            "CN=Android Debug,O=Android,C=US",
        ]))
    .context("creating the debug key (keytool, from openjdk-17-jre-headless)")
}

/// The Android NDK named by `ANDROID_NDK_HOME` (or `ANDROID_NDK_ROOT`).
struct Ndk {
    bin: PathBuf,
}

impl Ndk {
    fn find() -> Result<Ndk> {
        let home = std::env::var_os("ANDROID_NDK_HOME")
            .or_else(|| std::env::var_os("ANDROID_NDK_ROOT"))
            .context(NO_NDK)?;
        let host = if cfg!(target_os = "macos") {
            "darwin-x86_64"
        } else {
            "linux-x86_64"
        };
        let ndk = Ndk {
            bin: PathBuf::from(&home)
                .join("toolchains/llvm/prebuilt")
                .join(host)
                .join("bin"),
        };
        ensure!(
            ndk.clang().is_file(),
            "ANDROID_NDK_HOME={} has no {}; point it at an unpacked NDK r26 or newer \
             (the directory holding ndk-build)",
            PathBuf::from(home).display(),
            ndk.clang().display()
        );
        Ok(ndk)
    }

    fn clang(&self) -> PathBuf {
        self.bin.join(format!("{TARGET}{API_LEVEL}-clang"))
    }

    fn bin(&self, tool: &str) -> PathBuf {
        self.bin.join(tool)
    }

    /// The C++ runtime a library linked against it needs beside it.
    fn cxx_shared(&self) -> PathBuf {
        self.bin
            .join("../sysroot/usr/lib")
            .join(TARGET)
            .join("libc++_shared.so")
    }
}

const NO_NDK: &str = "building the Quest library needs the Android NDK (r26 or newer), and \
    ANDROID_NDK_HOME is not set. Install it (https://developer.android.com/ndk/downloads, unpack \
    the Linux zip; or `sdkmanager \"ndk;27.2.12479018\"`), then run \
    `ANDROID_NDK_HOME=/path/to/android-ndk-r27c cargo xtask apk --loader ...`. \
    To package a library built elsewhere, pass it with --so PATH";

/// Builds `libroomscale_app.so` for the Quest with the NDK's clang as the
/// linker; returns its path and the NDK libraries it needs beside it.
fn build_library() -> Result<(PathBuf, Vec<(String, PathBuf)>)> {
    let ndk = Ndk::find()?;
    run(Command::new("rustup").args(["target", "add", TARGET]))
        .with_context(|| format!("installing the Rust standard library for {TARGET}"))?;
    let env_name = TARGET.replace('-', "_");
    println!("apk: building the library for {TARGET} (profile `android`)");
    // `cargo rustc --crate-type cdylib` makes the shared library for this
    // build only; the crate's manifest keeps host builds to an rlib.
    run(cargo()
        .args([
            "rustc",
            "--package",
            "roomscale-app",
            "--lib",
            "--target",
            TARGET,
        ])
        .args(["--profile", "android", "--crate-type", "cdylib"])
        .env("CARGO_TARGET_DIR", TARGET_DIR)
        .env(
            format!("CARGO_TARGET_{}_LINKER", env_name.to_uppercase()),
            ndk.clang(),
        )
        .env(format!("CC_{env_name}"), ndk.clang())
        .env(format!("AR_{env_name}"), ndk.bin("llvm-ar")))
    .context("building the Quest library")?;
    let library = PathBuf::from(TARGET_DIR)
        .join(TARGET)
        .join("android/libroomscale_app.so");
    let needed = output(
        Command::new(ndk.bin("llvm-readelf"))
            .args(["--needed-libs"])
            .arg(&library),
    )?;
    // A dependency with C++ in it (an audio backend, say) links the NDK's
    // shared C++ runtime, which then travels in the APK beside the library.
    let mut beside = Vec::new();
    if needed.contains("libc++_shared.so") {
        beside.push(("libc++_shared.so".to_string(), ndk.cxx_shared()));
    }
    Ok((library, beside))
}

/// The loader library: `--loader`, else `OPENXR_LOADER_ANDROID`; an `.aar`
/// is opened for the arm64 library inside.
fn loader_library(given: Option<&Path>) -> Result<PathBuf> {
    let path = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("OPENXR_LOADER_ANDROID").map(PathBuf::from))
        .context(
            "the OpenXR loader for Android is missing: download Khronos's AAR \
             (https://repo1.maven.org/maven2/org/khronos/openxr/openxr_loader_for_android/, \
             e.g. 1.1.49/openxr_loader_for_android-1.1.49.aar) and pass it with \
             --loader path/to/openxr_loader_for_android-VERSION.aar \
             (or set OPENXR_LOADER_ANDROID to it)",
        )?;
    ensure!(
        path.is_file(),
        "the OpenXR loader {} does not exist",
        path.display()
    );
    if path.extension().is_none_or(|e| e != "aar") {
        return Ok(path);
    }
    let out = PathBuf::from(TARGET_DIR).join("loader/libopenxr_loader.so");
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    for entry in [
        "jni/arm64-v8a/libopenxr_loader.so",
        "prefab/modules/openxr_loader/libs/android.arm64-v8a/libopenxr_loader.so",
    ] {
        let unzip = Command::new("unzip")
            .arg("-p")
            .arg(&path)
            .arg(entry)
            .output();
        match unzip {
            Ok(found) if found.status.success() && !found.stdout.is_empty() => {
                std::fs::write(&out, found.stdout)?;
                println!("apk: OpenXR loader {entry} from {}", path.display());
                return Ok(out);
            }
            Ok(_) => {}
            Err(error) => bail!(
                "could not run unzip to open {} ({error}); install unzip or pass the \
                 libopenxr_loader.so inside it",
                path.display()
            ),
        }
    }
    bail!(
        "{} holds no arm64-v8a libopenxr_loader.so; is it openxr_loader_for_android?",
        path.display()
    )
}

/// Says what a library is, refusing anything but an aarch64 ELF shared object.
fn describe_library(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let what = elf_kind(&bytes);
    ensure!(
        what == Some(ElfKind::Aarch64Shared),
        "{} is not an aarch64 ELF shared object ({what:?}); a Quest loads only those",
        path.display()
    );
    println!(
        "apk: {} is an aarch64 ELF shared object, {} bytes",
        path.display(),
        bytes.len()
    );
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum ElfKind {
    Aarch64Shared,
    Other { class: u8, kind: u16, machine: u16 },
}

fn elf_kind(bytes: &[u8]) -> Option<ElfKind> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" || bytes[5] != 1 {
        return None;
    }
    let class = bytes[4];
    let kind = u16::from_le_bytes([bytes[16], bytes[17]]);
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    // ELFCLASS64, ET_DYN, EM_AARCH64.
    Some(if (class, kind, machine) == (2, 3, 183) {
        ElfKind::Aarch64Shared
    } else {
        ElfKind::Other {
            class,
            kind,
            machine,
        }
    })
}

/// Runs a command that must succeed and returns its standard output.
fn output(command: &mut Command) -> Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!(
            "{command:?} failed with {status}: {}{}",
            String::from_utf8_lossy(&stderr).trim(),
            String::from_utf8_lossy(&stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aarch64_shared_objects_are_packaged() {
        let header = |class: u8, kind: u16, machine: u16| {
            let mut bytes = b"\x7fELF".to_vec();
            bytes.extend([class, 1, 1, 0]);
            bytes.resize(16, 0);
            bytes.extend(kind.to_le_bytes());
            bytes.extend(machine.to_le_bytes());
            bytes
        };
        let check = |bytes: &[u8], expected: Option<ElfKind>| {
            assert_eq!(elf_kind(bytes), expected);
        };
        check(&header(2, 3, 183), Some(ElfKind::Aarch64Shared));
        // x86_64, an executable, 32-bit ARM, not ELF at all.
        check(
            &header(2, 3, 62),
            Some(ElfKind::Other {
                class: 2,
                kind: 3,
                machine: 62,
            }),
        );
        check(
            &header(2, 2, 183),
            Some(ElfKind::Other {
                class: 2,
                kind: 2,
                machine: 183,
            }),
        );
        check(
            &header(1, 3, 40),
            Some(ElfKind::Other {
                class: 1,
                kind: 3,
                machine: 40,
            }),
        );
        check(b"PK\x03\x04 a zip, not a library", None);
    }

    #[test]
    fn options_are_read() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let options = Options::parse(&args(&[
            "--so",
            "a.so",
            "--loader",
            "l.aar",
            "--check-each-requirement",
        ]))
        .unwrap();
        assert_eq!(options.so, Some(PathBuf::from("a.so")));
        assert_eq!(options.loader, Some(PathBuf::from("l.aar")));
        assert!(options.check_each_requirement);
        assert!(Options::parse(&args(&["--so"])).is_err());
        assert!(Options::parse(&args(&["--frobnicate"])).is_err());
    }
}
