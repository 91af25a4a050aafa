//! Server settings, from command-line flags or the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::storage::redact_url;

/// Every flag can also be given as the environment variable named in `--help`;
/// a flag on the command line wins over the variable.
#[derive(Clone, Parser)]
#[command(
    name = "roomscale-server",
    version,
    about = "Roomscale social-VR room server: room pages, JSON API and real-time rooms."
)]
pub struct Config {
    /// Address and port to listen on for HTTP and WebSocket connections.
    #[arg(
        long,
        env = "ROOMSCALE_BIND",
        value_name = "ADDR",
        default_value = "127.0.0.1:4000"
    )]
    pub bind: SocketAddr,

    /// Directory for the server's files: the SQLite database (roomscale.db) and the
    /// key that signs cookies and socket tokens (secret.key); created if missing.
    #[arg(
        long,
        env = "ROOMSCALE_DATA_DIR",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// Database to use, sqlite://PATH or postgres://USER:PASSWORD@HOST/DB; without it
    /// the server keeps its rooms in roomscale.db inside the data directory.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Most people that can be in one room at the same time.
    #[arg(
        long,
        env = "ROOMSCALE_ROOM_CAPACITY",
        value_name = "N",
        default_value_t = 25,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub room_capacity: u16,

    /// Seconds a socket may stay silent before the server closes it and its
    /// member leaves presence; clients send a heartbeat every 30 s.
    #[arg(
        long,
        env = "ROOMSCALE_HEARTBEAT_TIMEOUT",
        value_name = "SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub heartbeat_timeout: u64,

    /// UDP port of the voice SFU, on the --bind address; 0 picks a free port
    /// (the log says which). Open it in the firewall for remote visitors.
    #[arg(
        long,
        env = "ROOMSCALE_VOICE_PORT",
        value_name = "PORT",
        default_value_t = 0
    )]
    pub voice_port: u16,

    /// The address visitors reach this server at, when it is behind NAT and
    /// differs from --bind: announced to them as an extra voice candidate.
    #[arg(long, env = "ROOMSCALE_VOICE_PUBLIC_IP", value_name = "IP")]
    pub voice_public_ip: Option<std::net::IpAddr>,

    /// The most voices one listener receives at once; in bigger rooms each
    /// listener hears the most recent and nearest speakers.
    #[arg(
        long,
        env = "ROOMSCALE_VOICE_MAX_SPEAKERS",
        value_name = "N",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub voice_max_speakers: u16,

    /// Directory holding the built browser client (room.js, pages.js, avatar.gltf),
    /// served at /assets/; `node server/web/build.mjs` builds it into the default.
    #[arg(
        long,
        env = "ROOMSCALE_WEB_DIR",
        value_name = "DIR",
        default_value = DEFAULT_WEB_DIR
    )]
    pub web_dir: PathBuf,

    /// The address visitors use, such as https://rooms.example.org: the origin
    /// pages and sockets must come from, and with https the cookie is Secure.
    /// Without it the server's own origin is the Host a request names.
    #[arg(long, env = "ROOMSCALE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Another origin whose pages may open sockets and send forms here
    /// (repeat the flag, or separate with commas in the variable).
    #[arg(
        long = "allowed-origin",
        env = "ROOMSCALE_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// File holding the operator's admin token, which may do anything through
    /// the JSON API (`Authorization: Bearer <token>`); generated (0600) when
    /// missing. Defaults to admin.token in the data directory.
    #[arg(long, env = "ROOMSCALE_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Lets /metrics answer beyond loopback to requests bearing this token
    /// (`Authorization: Bearer <token>`); without it only loopback may read it.
    #[arg(
        long,
        env = "ROOMSCALE_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Chat and object history older than this many days is deleted; 0 keeps it forever.
    #[arg(
        long,
        env = "ROOMSCALE_HISTORY_DAYS",
        value_name = "DAYS",
        default_value_t = 90
    )]
    pub history_days: u32,

    /// Most history events kept per room (the oldest go first); 0 keeps all.
    #[arg(
        long,
        env = "ROOMSCALE_HISTORY_MAX_EVENTS",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub history_max_events: u32,

    /// Most HTTP and WebSocket connections open at once; more wait to be accepted.
    #[arg(long, env = "ROOMSCALE_MAX_CONNECTIONS", value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most sockets one visitor may have open at once.
    #[arg(long, env = "ROOMSCALE_SOCKETS_PER_USER", value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub sockets_per_user: u32,

    /// Most sockets open at once from one IP address (behind a reverse proxy,
    /// every visitor shares its address: raise this).
    #[arg(long, env = "ROOMSCALE_SOCKETS_PER_IP", value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub sockets_per_ip: u32,

    /// Most rooms one socket may have joined at once.
    #[arg(long, env = "ROOMSCALE_CHANNELS_PER_SOCKET", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub channels_per_socket: u32,

    /// Socket tokens (POST /api/session) one IP address may get per minute.
    #[arg(long, env = "ROOMSCALE_TOKENS_PER_MINUTE", value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub tokens_per_minute: u32,

    /// Rooms one IP address may create per hour.
    #[arg(long, env = "ROOMSCALE_ROOMS_PER_HOUR", value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub rooms_per_hour: u32,

    /// Most voice peers in one room; defaults to the room capacity.
    #[arg(long, env = "ROOMSCALE_VOICE_MAX_PEERS_PER_ROOM", value_name = "N")]
    pub voice_max_peers_per_room: Option<u32>,

    /// Most voice peers on the whole server.
    #[arg(
        long,
        env = "ROOMSCALE_VOICE_MAX_PEERS",
        value_name = "N",
        default_value_t = 2_000
    )]
    pub voice_max_peers: u32,

    /// Log verbosity: error, warn, info, debug or trace, or a filter such as
    /// "info,roomscale_server=debug"; RUST_LOG, when set, takes precedence.
    #[arg(
        long,
        env = "ROOMSCALE_LOG",
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub log: String,

    /// How long a client may take to send a whole request (see
    /// [`crate::http::connections`]). Not a flag: tests shorten it.
    #[arg(skip = crate::http::connections::DEFAULT_READ_TIMEOUT)]
    pub http_read_timeout: std::time::Duration,
}

/// The SQLite file's name inside the data directory.
pub const DATABASE_FILE: &str = "roomscale.db";
/// The signing key's file name inside the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";
/// The admin token's file name inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Where `node server/web/build.mjs` puts the browser client in this checkout.
pub const DEFAULT_WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist");

impl Config {
    /// Where the voice SFU listens and what it announces.
    pub fn voice_settings(&self) -> crate::voice::VoiceSettings {
        crate::voice::VoiceSettings {
            bind: std::net::SocketAddr::new(self.bind.ip(), self.voice_port),
            public_ip: self.voice_public_ip,
            max_speakers: usize::from(self.voice_max_speakers),
            max_peers_per_room: self
                .voice_max_peers_per_room
                .map_or(usize::from(self.room_capacity), |peers| peers as usize),
            max_peers: self.voice_max_peers as usize,
        }
    }

    /// Defaults for a test: any free port on loopback, everything kept in `data_dir`.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            room_capacity: 25,
            heartbeat_timeout: 60,
            voice_port: 0,
            voice_public_ip: None,
            voice_max_speakers: 16,
            web_dir: DEFAULT_WEB_DIR.into(),
            public_url: None,
            allowed_origins: Vec::new(),
            admin_token_file: None,
            metrics_token: None,
            history_days: 90,
            history_max_events: 10_000,
            max_connections: 10_000,
            // Every test client comes from 127.0.0.1: tests of these limits
            // set them low themselves.
            sockets_per_user: 8,
            sockets_per_ip: 100_000,
            channels_per_socket: 4,
            tokens_per_minute: 100_000,
            rooms_per_hour: 100_000,
            voice_max_peers_per_room: None,
            voice_max_peers: 2_000,
            log: "info".into(),
            http_read_timeout: crate::http::connections::DEFAULT_READ_TIMEOUT,
        }
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.admin_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(ADMIN_TOKEN_FILE))
    }

    /// The database to open: `--database-url` if given, else the SQLite file in
    /// the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir.join(DATABASE_FILE)),
        }
    }

    pub fn secret_key_path(&self) -> PathBuf {
        self.data_dir.join(SECRET_KEY_FILE)
    }
}

/// A `sqlite://` URL for a file path. The path is made absolute so that a
/// relative `./data` is not read as a URL host, and the characters that would end
/// the path part of a URL are percent-encoded (sqlx decodes them again).
pub fn sqlite_url(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut url = String::from("sqlite://");
    for c in absolute.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url
}

// By hand rather than derived so that a database password never reaches a log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("room_capacity", &self.room_capacity)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("voice_port", &self.voice_port)
            .field("voice_public_ip", &self.voice_public_ip)
            .field("voice_max_speakers", &self.voice_max_speakers)
            .field("web_dir", &self.web_dir)
            .field("public_url", &self.public_url)
            .field("allowed_origins", &self.allowed_origins)
            .field("admin_token_file", &self.admin_token_file)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("history_days", &self.history_days)
            .field("history_max_events", &self.history_max_events)
            .field("max_connections", &self.max_connections)
            .field("sockets_per_user", &self.sockets_per_user)
            .field("sockets_per_ip", &self.sockets_per_ip)
            .field("channels_per_socket", &self.channels_per_socket)
            .field("tokens_per_minute", &self.tokens_per_minute)
            .field("rooms_per_hour", &self.rooms_per_hour)
            .field("voice_max_peers_per_room", &self.voice_max_peers_per_room)
            .field("voice_max_peers", &self.voice_max_peers)
            .field("log", &self.log)
            .field("http_read_timeout", &self.http_read_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_survive_odd_paths() {
        assert_eq!(
            sqlite_url(Path::new("/srv/a?b#c%d.db")),
            "sqlite:///srv/a%3Fb%23c%25d.db"
        );
        assert!(sqlite_url(Path::new("data/roomscale.db")).starts_with("sqlite:///"));
    }

    #[test]
    fn flags_and_defaults_parse() {
        let config =
            Config::try_parse_from(["roomscale-server", "--bind", "0.0.0.0:8080"]).unwrap();
        assert_eq!(config.bind, "0.0.0.0:8080".parse().unwrap());
        let custom =
            Config::try_parse_from(["roomscale-server", "--web-dir", "/srv/roomscale/web"])
                .unwrap();
        assert_eq!(custom.web_dir, Path::new("/srv/roomscale/web"));
        assert!(Config::try_parse_from(["roomscale-server", "--room-capacity", "0"]).is_err());
        assert!(Config::try_parse_from(["roomscale-server", "--bind", "localhost"]).is_err());
    }
}
