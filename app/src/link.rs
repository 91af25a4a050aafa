//! `roomscale://` room links and the Linux desktop entry that hands them to
//! this app.
//!
//! A room page's "Open in the Roomscale app" link is
//! `roomscale://host[:port]/rooms/<room id>`; the operating system starts
//! `roomscale join <link>`, and [`room_argument`] turns it into the server and
//! room the client joins. Plain `http://host/rooms/<id>` page links keep
//! working through [`client::parse_room_url`].
//!
//! On Linux, `roomscale install-desktop-entry` writes a desktop entry that
//! claims the `x-scheme-handler/roomscale` type ([`desktop_entry`]) and makes it
//! the default handler with `xdg-mime`.

use std::ffi::OsString;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::client::{self, ServerUrl};

/// What a good link looks like, for every error message.
const EXAMPLE: &str = "roomscale://rooms.example.org/rooms/<room id> \
     (or roomscale://localhost:4000/rooms/<room id>; copy it from the room page's Share menu)";

/// A parsed `roomscale://` room link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLink {
    /// The server's base URL, e.g. `https://rooms.example.org` or
    /// `http://localhost:4000`.
    pub base_url: String,
    /// The room's id: a UUID in lowercase.
    pub room_id: String,
}

impl RoomLink {
    /// The room page's http(s) address, as the browser shows it.
    pub fn page_url(&self) -> String {
        format!("{}/rooms/{}", self.base_url, self.room_id)
    }
}

/// What is wrong with a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The scheme is not `roomscale:`.
    Scheme(String),
    /// `roomscale:` without the `//` before the host.
    NoSlashes,
    MissingHost,
    /// `user@host`: links carry no credentials.
    UserInfo,
    BadHost(String),
    BadPort(String),
    /// Only a server, no `/rooms/<id>`.
    MissingRoom,
    /// A path other than `/rooms/<id>`.
    BadPath(String),
    /// A `%` not followed by two hex digits, or escapes that decode to no text.
    BadEscape(String),
    BadRoomId(String),
    /// `insecure=` with a value other than 1/true/0/false.
    BadQuery(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Scheme(found) if found.is_empty() => {
                write!(f, "it does not start with \"roomscale://\"")
            }
            Problem::Scheme(found) => write!(f, "the scheme is \"{found}:\", not \"roomscale:\""),
            Problem::NoSlashes => {
                write!(f, "\"roomscale:\" must be followed by \"//\" and the host")
            }
            Problem::MissingHost => write!(f, "the host is missing"),
            Problem::UserInfo => write!(f, "a room link carries no user name or password (\"@\")"),
            Problem::BadHost(host) => write!(
                f,
                "\"{host}\" is not a host name or IP address (IPv6 addresses go in brackets, e.g. [::1])"
            ),
            Problem::BadPort(port) => {
                write!(f, "the port \"{port}\" is not a number from 1 to 65535")
            }
            Problem::MissingRoom => write!(
                f,
                "it names a server but no room (\"/rooms/<room id>\" is missing)"
            ),
            Problem::BadPath(path) => write!(f, "the path \"{path}\" is not /rooms/<room id>"),
            Problem::BadEscape(text) => write!(f, "\"{text}\" holds a broken %-escape"),
            Problem::BadRoomId(id) => write!(
                f,
                "\"{id}\" is not a room id (a UUID such as 3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b); the link may be cut short"
            ),
            Problem::BadQuery(value) => write!(f, "insecure=\"{value}\": expected insecure=1"),
        }
    }
}

/// A link that could not be read: the link, what was wrong, and what a good
/// one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{link}: {problem}; a room link looks like {EXAMPLE}")]
pub struct LinkError {
    pub link: String,
    pub problem: Problem,
}

/// Whether `text` is meant as a `roomscale:` link (scheme in any case).
pub fn is_room_link(text: &str) -> bool {
    text.trim()
        .get(..10)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("roomscale:"))
}

/// Reads `roomscale://host[:port]/rooms/<uuid>[/][?insecure=1][#...]`.
///
/// The server is reached over https (`roomscale://host` → `https://host`),
/// except over plain http when the link says `?insecure=1` or the host is
/// loopback (`localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`), where a
/// development server has no certificate. A port stays as given. The room id
/// must be a UUID; %-escapes in the path are decoded first, and upper case is
/// folded to the lower case the server names rooms by. Other query
/// parameters and a `#fragment` are ignored, so future links still open.
pub fn parse(link: &str) -> Result<RoomLink, LinkError> {
    let error = |problem| LinkError {
        link: link.to_string(),
        problem,
    };
    let text = link.trim();
    let (scheme, rest) = text
        .split_once(':')
        .ok_or_else(|| error(Problem::Scheme(String::new())))?;
    if !scheme.eq_ignore_ascii_case("roomscale") {
        return Err(error(Problem::Scheme(scheme.to_string())));
    }
    let rest = rest
        .strip_prefix("//")
        .ok_or_else(|| error(Problem::NoSlashes))?;
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));

    let (host, port) = parse_authority(authority).map_err(error)?;
    let room_id = parse_path(path).map_err(error)?;
    let insecure = parse_insecure(query).map_err(error)?;

    let scheme = if insecure || is_loopback(&host) {
        "http"
    } else {
        "https"
    };
    let port = match port {
        Some(port) => format!(":{port}"),
        // The client's URL reader splits the port at the last colon, which an
        // IPv6 address without a port would confuse: name the default port.
        None if host.starts_with('[') => format!(":{}", if scheme == "http" { 80 } else { 443 }),
        None => String::new(),
    };
    Ok(RoomLink {
        base_url: format!("{scheme}://{host}{port}"),
        room_id,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the host comes back in
/// lowercase, an IPv6 address in brackets.
fn parse_authority(authority: &str) -> Result<(String, Option<u16>), Problem> {
    if authority.is_empty() {
        return Err(Problem::MissingHost);
    }
    if authority.contains('@') {
        return Err(Problem::UserInfo);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| Problem::BadHost(authority.to_string()))?;
        let address: Ipv6Addr = address
            .parse()
            .map_err(|_| Problem::BadHost(format!("[{address}]")))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| Problem::BadHost(authority.to_string()))?,
            ),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(Problem::MissingHost);
        }
        let name_like = host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        if !name_like || host.starts_with('-') {
            return Err(Problem::BadHost(host.to_string()));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = port
        .map(|text| match text.parse::<u16>() {
            Ok(port) if port > 0 && text.chars().all(|c| c.is_ascii_digit()) => Ok(port),
            _ => Err(Problem::BadPort(text.to_string())),
        })
        .transpose()?;
    Ok((host, port))
}

/// `rooms/<uuid>` with an optional trailing slash; the id in lowercase.
fn parse_path(path: &str) -> Result<String, Problem> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Problem::MissingRoom);
    }
    // Split before decoding, so an escaped "/" cannot add a segment.
    let segments: Vec<&str> = trimmed.split('/').collect();
    let decoded: Vec<String> = segments
        .iter()
        .map(|segment| {
            percent_decode(segment).ok_or_else(|| Problem::BadEscape(segment.to_string()))
        })
        .collect::<Result<_, _>>()?;
    match decoded.as_slice() {
        [rooms] if rooms == "rooms" => Err(Problem::MissingRoom),
        [rooms, id] if rooms == "rooms" => {
            if is_uuid(id) {
                Ok(id.to_ascii_lowercase())
            } else {
                Err(Problem::BadRoomId(id.clone()))
            }
        }
        _ => Err(Problem::BadPath(format!("/{path}"))),
    }
}

/// Whether the query asks for plain http (`insecure=1`, `insecure=true` or a
/// bare `insecure`).
fn parse_insecure(query: &str) -> Result<bool, Problem> {
    let mut insecure = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "1"));
        if key != "insecure" {
            continue;
        }
        insecure = match value {
            "1" | "true" => true,
            "0" | "false" => false,
            other => return Err(Problem::BadQuery(other.to_string())),
        };
    }
    Ok(insecure)
}

/// Hosts that never leave the machine: no certificate to expect.
fn is_loopback(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return v4.is_loopback();
    }
    host.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
        .is_some_and(|v6| v6.is_loopback())
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The server and room that `roomscale join <argument>` means: a
/// `roomscale://` link or a room page's `http://` link.
pub fn room_argument(argument: &str) -> Result<(ServerUrl, String)> {
    if !is_room_link(argument) {
        return Ok(client::parse_room_url(argument)?);
    }
    let link = parse(argument)?;
    let page = link.page_url();
    client::parse_room_url(&page).map_err(|error| {
        if link.base_url.starts_with("https:") {
            anyhow::anyhow!(
                "{argument} means {page}, but the native client reaches servers over plain http \
                 for now; for a server on a trusted network, add ?insecure=1 to the link, or open \
                 the room in a browser"
            )
        } else {
            anyhow::Error::new(error).context(format!("{argument} means {page}"))
        }
    })
}

/// The name the entry is installed under; `xdg-mime` refers to it by name.
pub const DESKTOP_FILE: &str = "roomscale.desktop";
/// The icon name the entry refers to, installed under `icons/hicolor`.
const ICON_NAME: &str = "roomscale";
/// The Quest launcher icon serves the desktop too.
const ICON_PNG: &[u8] = include_bytes!("../../android/res/mipmap-xxxhdpi/ic_launcher.png");
const ICON_SIZE: &str = "192x192";

/// The desktop entry that opens `roomscale://` links with `exec join %u`;
/// `icon` is an icon name or absolute path.
pub fn desktop_entry(exec: &Path, icon: Option<&str>) -> Result<String> {
    let exec = exec_argument(exec)?;
    let mut entry = String::from("[Desktop Entry]\n");
    entry.push_str("Type=Application\n");
    entry.push_str("Version=1.0\n");
    entry.push_str("Name=Roomscale\n");
    entry.push_str("GenericName=Social VR rooms\n");
    entry.push_str(
        "Comment=Join Roomscale rooms from roomscale:// links, on the desktop or in a headset\n",
    );
    entry.push_str(&format!("Exec={exec} join %u\n"));
    if let Some(icon) = icon {
        entry.push_str(&format!("Icon={icon}\n"));
    }
    entry.push_str("Terminal=false\n");
    entry.push_str("Categories=Network;Chat;\n");
    entry.push_str("MimeType=x-scheme-handler/roomscale;\n");
    // A link handler, not a launcher: the room browser starts from a terminal.
    entry.push_str("NoDisplay=true\n");
    Ok(entry)
}

/// The program path as one `Exec` argument: quoted where the desktop entry
/// spec reserves a character, `%` doubled, and backslashes escaped twice
/// (once for the quoting, once for the string value).
fn exec_argument(path: &Path) -> Result<String> {
    let text = path.to_str().with_context(|| {
        format!(
            "{}: the program's path is not UTF-8; move it to a plain path",
            path.display()
        )
    })?;
    anyhow::ensure!(
        !text.chars().any(|c| c.is_control()),
        "{}: the program's path holds a control character; move it to a plain path",
        path.display()
    );
    let reserved = |c: char| " \t\"'\\><~|&;$*?#`()".contains(c);
    let text = text.replace('%', "%%");
    if !text.chars().any(reserved) {
        return Ok(text);
    }
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '`' | '$' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\\' => quoted.push_str("\\\\\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted)
}

/// Where desktop entries go: `$XDG_DATA_HOME/applications`, or
/// `~/.local/share/applications` when it is unset or not absolute (as the
/// base directory spec says).
pub fn data_home(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Result<PathBuf> {
    if let Some(dir) = xdg_data_home
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
    {
        return Ok(dir);
    }
    let home = home.filter(|home| !home.is_empty()).context(
        "neither XDG_DATA_HOME nor HOME is set: set one so the desktop entry has a place",
    )?;
    Ok(PathBuf::from(home).join(".local/share"))
}

/// `roomscale install-desktop-entry [--print]`: writes the entry (and its
/// icon) for the running binary and makes it the `roomscale://` handler;
/// `print` only prints the entry.
pub fn install_desktop_entry(print: bool) -> Result<()> {
    let exe = std::env::current_exe().context("finding the running program's path")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let data = data_home(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))?;
    let icon_path = data
        .join("icons/hicolor")
        .join(ICON_SIZE)
        .join("apps")
        .join(format!("{ICON_NAME}.png"));
    if print {
        let icon = icon_path.exists().then_some(ICON_NAME);
        print!("{}", desktop_entry(&exe, icon)?);
        return Ok(());
    }
    let write = |path: &Path, bytes: &[u8]| -> Result<()> {
        let dir = path.parent().expect("a file under the data directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write(&icon_path, ICON_PNG)?;
    let applications = data.join("applications");
    let entry_path = applications.join(DESKTOP_FILE);
    write(
        &entry_path,
        desktop_entry(&exe, Some(ICON_NAME))?.as_bytes(),
    )?;
    println!("wrote {}", entry_path.display());
    println!("wrote {}", icon_path.display());

    // Desktops read the scheme handlers from the cache this refreshes.
    let refreshed = Command::new("update-desktop-database")
        .arg(&applications)
        .status();
    if let Ok(status) = refreshed
        && !status.success()
    {
        println!(
            "update-desktop-database {} failed ({status}); continuing",
            applications.display()
        );
    }
    let by_hand = format!("xdg-mime default {DESKTOP_FILE} x-scheme-handler/roomscale");
    match Command::new("xdg-mime")
        .args(["default", DESKTOP_FILE, "x-scheme-handler/roomscale"])
        .status()
    {
        Ok(status) if status.success() => {
            println!("roomscale:// links now open with {}", exe.display());
            Ok(())
        }
        Ok(status) => anyhow::bail!(
            "the entry is written, but `{by_hand}` failed ({status}); run it yourself, or choose Roomscale \
             when the browser asks how to open a roomscale:// link"
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "xdg-mime is not installed (Debian: apt-get install xdg-utils), so Roomscale is not yet the \
                 default for roomscale:// links; install it and run `{by_hand}`, or choose Roomscale when the \
                 browser asks"
            );
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("running `{by_hand}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b";

    fn ok(link: &str) -> (String, String) {
        let parsed = parse(link).unwrap_or_else(|e| panic!("{link}: {e}"));
        (parsed.base_url, parsed.room_id)
    }

    fn problem(link: &str) -> Problem {
        match parse(link) {
            Ok(parsed) => panic!("{link} should not parse, got {parsed:?}"),
            Err(error) => error.problem,
        }
    }

    #[test]
    fn a_public_host_is_reached_over_https() {
        let link = format!("roomscale://rooms.example.org/rooms/{ID}");
        assert_eq!(ok(&link), ("https://rooms.example.org".into(), ID.into()));
        assert_eq!(
            parse(&link).unwrap().page_url(),
            format!("https://rooms.example.org/rooms/{ID}")
        );
    }

    #[test]
    fn ports_stay_as_given() {
        let link = format!("roomscale://rooms.example.org:8443/rooms/{ID}");
        assert_eq!(ok(&link).0, "https://rooms.example.org:8443");
        assert_eq!(
            ok(&format!("roomscale://localhost:4000/rooms/{ID}")).0,
            "http://localhost:4000"
        );
    }

    #[test]
    fn loopback_and_insecure_links_use_plain_http() {
        for (link, base) in [
            ("roomscale://localhost/rooms/", "http://localhost"),
            ("roomscale://LOCALHOST:4000/rooms/", "http://localhost:4000"),
            (
                "roomscale://dev.localhost:4000/rooms/",
                "http://dev.localhost:4000",
            ),
            ("roomscale://127.0.0.1:4000/rooms/", "http://127.0.0.1:4000"),
            ("roomscale://127.1.2.3/rooms/", "http://127.1.2.3"),
            (
                "roomscale://192.168.1.20:4000/rooms/",
                "https://192.168.1.20:4000",
            ),
        ] {
            assert_eq!(ok(&format!("{link}{ID}")).0, base, "{link}");
        }
        let insecure = format!("roomscale://lan-box:4000/rooms/{ID}?insecure=1");
        assert_eq!(ok(&insecure).0, "http://lan-box:4000");
        let explicit = format!("roomscale://lan-box/rooms/{ID}?x=y&insecure=0#top");
        assert_eq!(ok(&explicit).0, "https://lan-box");
        assert_eq!(
            problem(&format!("roomscale://lan-box/rooms/{ID}?insecure=maybe")),
            Problem::BadQuery("maybe".into())
        );
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert_eq!(
            ok(&format!("roomscale://[::1]:4000/rooms/{ID}")).0,
            "http://[::1]:4000"
        );
        // Without a port the default is named, for the client's URL reader.
        assert_eq!(
            ok(&format!("roomscale://[::1]/rooms/{ID}")).0,
            "http://[::1]:80"
        );
        assert_eq!(
            ok(&format!("roomscale://[2001:DB8::5]/rooms/{ID}")).0,
            "https://[2001:db8::5]:443"
        );
        assert!(matches!(
            problem(&format!("roomscale://[::zz]/rooms/{ID}")),
            Problem::BadHost(_)
        ));
        assert!(matches!(
            problem(&format!("roomscale://[::1/rooms/{ID}")),
            Problem::BadHost(_)
        ));
        assert!(matches!(
            problem(&format!("roomscale://::1/rooms/{ID}")),
            Problem::MissingHost
        ));
    }

    #[test]
    fn trailing_slash_case_and_whitespace_are_forgiven() {
        let upper = ID.to_ascii_uppercase();
        for link in [
            format!("roomscale://localhost:4000/rooms/{ID}/"),
            format!("  roomscale://localhost:4000/rooms/{ID}\n"),
            format!("RoomScale://localhost:4000/rooms/{upper}"),
            format!(
                "roomscale://localhost:4000/rooms/{}",
                ID.replace('-', "%2D")
            ),
            format!("roomscale://localhost:4000/%72ooms/{ID}"),
        ] {
            assert_eq!(
                ok(&link),
                ("http://localhost:4000".into(), ID.into()),
                "{link:?}"
            );
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        assert_eq!(
            problem(&format!("http://localhost:4000/rooms/{ID}")),
            Problem::Scheme("http".into())
        );
        assert_eq!(problem("rooms/abc"), Problem::Scheme(String::new()));
        assert_eq!(
            problem(&format!("roomscale:localhost/rooms/{ID}")),
            Problem::NoSlashes
        );
        assert!(!is_room_link(&format!("http://localhost:4000/rooms/{ID}")));
        assert!(is_room_link(&format!(" ROOMSCALE://x/rooms/{ID}")));
    }

    #[test]
    fn missing_parts_say_which() {
        assert_eq!(
            problem(&format!("roomscale:///rooms/{ID}")),
            Problem::MissingHost
        );
        assert_eq!(
            problem(&format!("roomscale://:4000/rooms/{ID}")),
            Problem::MissingHost
        );
        assert_eq!(problem("roomscale://localhost:4000"), Problem::MissingRoom);
        assert_eq!(problem("roomscale://localhost:4000/"), Problem::MissingRoom);
        assert_eq!(
            problem("roomscale://localhost:4000/rooms/"),
            Problem::MissingRoom
        );
        assert!(matches!(
            problem(&format!("roomscale://h/room/{ID}")),
            Problem::BadPath(_)
        ));
        assert!(matches!(
            problem(&format!("roomscale://h/rooms/{ID}/edit")),
            Problem::BadPath(_)
        ));
        assert_eq!(
            problem(&format!("roomscale://ada@h/rooms/{ID}")),
            Problem::UserInfo
        );
    }

    #[test]
    fn bad_ports_and_hosts_are_named() {
        for port in ["", "0", "65536", "+80", "http", "-1"] {
            assert_eq!(
                problem(&format!("roomscale://h:{port}/rooms/{ID}")),
                Problem::BadPort(port.into()),
                "{port:?}"
            );
        }
        for host in ["bad_host", "a..b", "-x", "h%41st", "ho st"] {
            assert!(
                matches!(
                    problem(&format!("roomscale://{host}/rooms/{ID}")),
                    Problem::BadHost(_)
                ),
                "{host:?}"
            );
        }
    }

    #[test]
    fn bad_room_ids_are_refused() {
        for id in [
            "x",
            "3f2b8c1e5d4a4e6f9a7b1c2d3e4f5a6b",
            "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6",
            "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6bb",
            "3f2b8c1e-5d4a-4e6f-9a7b1-c2d3e4f5a6b",
            "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5g6b",
            "------------------------------------",
        ] {
            assert_eq!(
                problem(&format!("roomscale://h/rooms/{id}")),
                Problem::BadRoomId(id.into()),
                "{id}"
            );
        }
    }

    #[test]
    fn percent_encoding_junk_is_refused() {
        assert!(matches!(
            problem(&format!("roomscale://h/rooms/{ID}%")),
            Problem::BadEscape(_)
        ));
        assert!(matches!(
            problem(&format!("roomscale://h/rooms/{ID}%4")),
            Problem::BadEscape(_)
        ));
        assert!(matches!(
            problem(&format!("roomscale://h/rooms/%zz{ID}")),
            Problem::BadEscape(_)
        ));
        // Not UTF-8 once decoded.
        assert!(matches!(
            problem(&format!("roomscale://h/rooms/%ff{ID}")),
            Problem::BadEscape(_)
        ));
        // Escapes that decode to something that is not a UUID.
        assert_eq!(
            problem(&format!("roomscale://h/rooms/{ID}%00")),
            Problem::BadRoomId(format!("{ID}\0"))
        );
        // An escaped slash does not make a new path segment.
        assert!(matches!(
            problem(&format!("roomscale://h/rooms%2F{ID}")),
            Problem::BadPath(_)
        ));
        assert!(matches!(
            problem(&format!("roomscale://h/rooms/{ID}%2Fx")),
            Problem::BadRoomId(_)
        ));
    }

    #[test]
    fn errors_say_what_was_wrong_and_what_a_good_link_looks_like() {
        let message = parse("roomscale://h/rooms/nope").unwrap_err().to_string();
        assert!(
            message.starts_with("roomscale://h/rooms/nope: \"nope\" is not a room id"),
            "{message}"
        );
        assert!(
            message.contains("roomscale://localhost:4000/rooms/<room id>"),
            "{message}"
        );
    }

    #[test]
    fn join_takes_roomscale_and_page_links_alike() {
        let (server, room) =
            room_argument(&format!("roomscale://127.0.0.1:4000/rooms/{ID}")).unwrap();
        assert_eq!(
            (server.authority().as_str(), room.as_str()),
            ("127.0.0.1:4000", ID)
        );
        let (server, room) = room_argument(&format!("roomscale://[::1]/rooms/{ID}")).unwrap();
        assert_eq!(
            (server.authority().as_str(), room.as_str()),
            ("[::1]:80", ID)
        );
        let (server, room) = room_argument(&format!("http://localhost:4000/rooms/{ID}")).unwrap();
        assert_eq!(
            (server.authority().as_str(), room.as_str()),
            ("localhost:4000", ID)
        );
        let https =
            room_argument(&format!("roomscale://rooms.example.org/rooms/{ID}")).unwrap_err();
        assert!(
            format!("{https:#}").contains("add ?insecure=1"),
            "{https:#}"
        );
        let bad = room_argument("roomscale://localhost:4000/rooms/1234").unwrap_err();
        assert!(format!("{bad:#}").contains("is not a room id"), "{bad:#}");
    }

    #[test]
    fn the_entry_opens_links_with_the_binary() {
        let entry =
            desktop_entry(Path::new("/opt/roomscale/bin/roomscale"), Some("roomscale")).unwrap();
        let lines: Vec<&str> = entry.lines().collect();
        assert_eq!(lines[0], "[Desktop Entry]");
        for line in [
            "Type=Application",
            "Name=Roomscale",
            "Exec=/opt/roomscale/bin/roomscale join %u",
            "MimeType=x-scheme-handler/roomscale;",
            "Terminal=false",
            "Categories=Network;Chat;",
            "Icon=roomscale",
        ] {
            assert!(lines.contains(&line), "{line} missing from\n{entry}");
        }
        assert!(lines.iter().any(|l| l.starts_with("Comment=")), "{entry}");
        let no_icon = desktop_entry(Path::new("/usr/bin/roomscale"), None).unwrap();
        assert!(!no_icon.contains("Icon="), "{no_icon}");
    }

    #[test]
    fn exec_paths_are_quoted_as_the_spec_asks() {
        let exec = |path: &str| exec_argument(Path::new(path)).unwrap();
        assert_eq!(exec("/usr/bin/roomscale"), "/usr/bin/roomscale");
        assert_eq!(
            exec("/home/ada/My Apps/roomscale"),
            "\"/home/ada/My Apps/roomscale\""
        );
        assert_eq!(exec("/opt/100%/roomscale"), "/opt/100%%/roomscale");
        assert_eq!(exec("/opt/$x/a\"b`c"), "\"/opt/\\$x/a\\\"b\\`c\"");
        assert_eq!(exec("/opt/a\\b"), "\"/opt/a\\\\\\\\b\"");
        assert!(exec_argument(Path::new("/opt/a\nb")).is_err());
    }

    #[test]
    fn entries_go_under_xdg_data_home_or_home() {
        let dir = |xdg: Option<&str>, home: Option<&str>| {
            data_home(xdg.map(Into::into), home.map(Into::into))
        };
        assert_eq!(
            dir(Some("/data"), Some("/home/ada")).unwrap(),
            Path::new("/data")
        );
        assert_eq!(
            dir(None, Some("/home/ada")).unwrap(),
            Path::new("/home/ada/.local/share")
        );
        // A relative XDG_DATA_HOME is ignored, as the base directory spec says.
        assert_eq!(
            dir(Some("rel"), Some("/home/ada")).unwrap(),
            Path::new("/home/ada/.local/share")
        );
        assert!(dir(None, None).is_err());
    }
}
