//! `roomscale install-desktop-entry` run as a user would: the real binary
//! writes its entry and icon into a scratch `XDG_DATA_HOME`, Debian's
//! `desktop-file-validate` must accept the entry, and `xdg-mime` (where
//! installed) records it as the `roomscale://` handler in a scratch
//! `XDG_CONFIG_HOME`, never the user's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory under the system's temporary one, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("roomscale-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_roomscale"))
        .canonicalize()
        .unwrap()
}

/// Runs `roomscale install-desktop-entry <args>` with every XDG place and
/// HOME inside `scratch`, and `path` as PATH.
fn install(scratch: &Path, path: &str, args: &[&str]) -> Output {
    let output = Command::new(binary())
        .arg("install-desktop-entry")
        .args(args)
        .env("HOME", scratch.join("home"))
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CONFIG_HOME", scratch.join("config"))
        .env("XDG_DATA_DIRS", scratch.join("system"))
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "install-desktop-entry {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn on_path(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn the_installed_entry_is_valid_and_handles_roomscale_links() {
    let scratch = Scratch::new("desktop-entry");
    let path = std::env::var("PATH").unwrap_or_default();
    let output = install(&scratch.0, &path, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);

    let entry_path = scratch.0.join("data/applications/roomscale.desktop");
    let entry = std::fs::read_to_string(&entry_path)
        .unwrap_or_else(|e| panic!("{}: {e}; the command said:\n{stdout}", entry_path.display()));
    let exec = format!("Exec={} join %u", binary().display());
    assert!(entry.lines().any(|l| l == exec), "no `{exec}` in\n{entry}");
    assert!(
        entry
            .lines()
            .any(|l| l == "MimeType=x-scheme-handler/roomscale;"),
        "{entry}"
    );
    assert!(entry.lines().any(|l| l == "Icon=roomscale"), "{entry}");
    let icon = scratch
        .0
        .join("data/icons/hicolor/192x192/apps/roomscale.png");
    let png = std::fs::read(&icon).unwrap_or_else(|e| panic!("{}: {e}", icon.display()));
    assert_eq!(
        &png[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is no PNG",
        icon.display()
    );

    if on_path("xdg-mime") {
        let list = scratch.0.join("config/mimeapps.list");
        let mimeapps = std::fs::read_to_string(&list)
            .unwrap_or_else(|e| panic!("{}: {e}; the command said:\n{stdout}", list.display()));
        assert!(
            mimeapps.contains("x-scheme-handler/roomscale=roomscale.desktop"),
            "{mimeapps}"
        );
        assert!(
            stdout.contains("roomscale:// links now open with"),
            "{stdout}"
        );
    } else {
        println!(
            "skipped: the xdg-mime check: xdg-mime is not installed (apt-get install xdg-utils)"
        );
    }

    if !on_path("desktop-file-validate") {
        println!(
            "skipped: desktop-file-validate is not installed (apt-get install desktop-file-utils)"
        );
        return;
    }
    let validated = Command::new("desktop-file-validate")
        .arg(&entry_path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    assert!(
        validated.status.success() && !said.contains("error"),
        "desktop-file-validate refused the entry:\n{said}\n{entry}"
    );
}

#[test]
fn without_xdg_mime_the_entry_is_written_and_the_missing_tool_named() {
    let scratch = Scratch::new("no-xdg-mime");
    // An empty PATH: neither xdg-mime nor update-desktop-database is found.
    let empty = scratch.0.join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let output = install(&scratch.0, empty.to_str().unwrap(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("xdg-mime is not installed")
            && stdout.contains("xdg-mime default roomscale.desktop x-scheme-handler/roomscale"),
        "{stdout}"
    );
    assert!(
        scratch
            .0
            .join("data/applications/roomscale.desktop")
            .exists()
    );
    assert!(!scratch.0.join("config/mimeapps.list").exists());
}

#[test]
fn print_shows_the_entry_and_writes_nothing() {
    let scratch = Scratch::new("print");
    let path = std::env::var("PATH").unwrap_or_default();
    let output = install(&scratch.0, &path, &["--print"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("[Desktop Entry]\n"), "{stdout}");
    let exec = format!("Exec={} join %u", binary().display());
    assert!(stdout.lines().any(|l| l == exec), "{stdout}");
    // No icon installed yet, so the entry names none.
    assert!(!stdout.contains("Icon="), "{stdout}");
    assert!(
        !scratch.0.join("data").exists(),
        "--print wrote under {}",
        scratch.0.display()
    );
    assert!(!scratch.0.join("config").exists());
}
