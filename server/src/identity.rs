//! Who a visitor is: a random user id in a signed cookie, exchanged for signed,
//! expiring socket tokens.
//!
//! There are no accounts. A browser keeps its user id in the `roomscale_user`
//! cookie; the room page embeds a socket token for it, and the native app asks
//! `POST /api/session` for one. Cookie and token are HMAC-SHA256 signed with the
//! 32-byte key in the data directory's `secret.key`, each under its own label so
//! one can never pass for the other. Signatures are compared in constant time.
//!
//! Forms carry a CSRF token, the HMAC of the visitor's user id under a third
//! label: a page on another site cannot read it, so it cannot post a form in the
//! visitor's name. The operator's [`AdminToken`] is a random secret in a file of
//! its own (`--admin-token-file`), compared in constant time.

use std::convert::Infallible;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac};
use rand::{Rng as _, TryRng as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::time::{rfc3339, unix_millis};

/// The visitor cookie's name.
pub const COOKIE_NAME: &str = "roomscale_user";
/// How long a browser keeps the visitor cookie. Browsers cap cookie lifetimes at
/// about 400 days, so a year is as "long" as is useful.
pub const COOKIE_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How long a socket token is accepted after it was issued.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Length of the signing key.
pub const KEY_BYTES: usize = 32;

/// Labels that keep the cookie's and the token's signatures apart.
const COOKIE_LABEL: &[u8] = b"roomscale cookie v1\0";
const TOKEN_LABEL: &[u8] = b"roomscale socket token v1\0";
const CSRF_LABEL: &[u8] = b"roomscale form token v1\0";

type HmacSha256 = Hmac<Sha256>;

/// The server's signing key; cheap to clone.
#[derive(Clone)]
pub struct Identity {
    key: Arc<[u8; KEY_BYTES]>,
    /// Whether the visitor cookie is sent only over HTTPS (`--public-url https://`).
    secure_cookie: bool,
}

/// What a valid socket token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub user_id: String,
    /// The display name asked for when the token was issued, if any.
    pub name: Option<String>,
    /// Unix time, milliseconds.
    pub expires_at: i64,
}

/// Why a socket token was refused. Each message tells the client what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no socket token was given; ask the server for one with POST /api/session and \
         connect with ?token=..."
    )]
    Missing,
    #[error(
        "the socket token is malformed ({0}); ask the server for a new one with POST /api/session"
    )]
    Malformed(&'static str),
    #[error(
        "the socket token's signature does not match: it was altered, or signed by another \
         server or with an older key; ask the server for a new one with POST /api/session"
    )]
    BadSignature,
    #[error("the socket token expired at {}; ask the server for a new one with POST /api/session", rfc3339(*.expires_at))]
    Expired { expires_at: i64 },
}

/// Why the signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("could not read the secret key file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("could not create the secret key file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "the secret key file {path} holds {len} bytes instead of {KEY_BYTES}; restore it from \
         a backup, or delete it to make a new key (which signs every visitor out)"
    )]
    WrongLength { path: PathBuf, len: usize },
    #[error(
        "the admin token file {path} holds a token of {len} characters; an admin token needs \
         at least 16: write a longer one, or delete the file to have a new one made"
    )]
    AdminTokenTooShort { path: PathBuf, len: usize },
}

impl Identity {
    pub fn from_key(key: [u8; KEY_BYTES]) -> Identity {
        Identity {
            key: Arc::new(key),
            secure_cookie: false,
        }
    }

    /// The same identity, marking the visitor cookie `Secure` (sent only over
    /// HTTPS) when `secure` is true: for a server whose public URL is https.
    pub fn with_secure_cookie(mut self, secure: bool) -> Identity {
        self.secure_cookie = secure;
        self
    }

    /// The token every form of `user_id` carries in its `_csrf` field.
    pub fn csrf_token(&self, user_id: &str) -> String {
        let signature = self
            .mac(CSRF_LABEL, user_id.as_bytes())
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(signature)
    }

    /// Whether `token` is `user_id`'s form token (compared in constant time).
    pub fn verify_csrf_token(&self, user_id: &str, token: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        self.mac(CSRF_LABEL, user_id.as_bytes())
            .verify_slice(&signature)
            .is_ok()
    }

    /// An identity with a fresh random key, e.g. for tests.
    pub fn generate() -> Identity {
        let mut key = [0u8; KEY_BYTES];
        // Straight from the operating system: the key outlives any process.
        rand::rngs::SysRng
            .try_fill_bytes(&mut key)
            .expect("the operating system's random number generator failed");
        Identity::from_key(key)
    }

    /// Reads the key from `path`, or creates it there (owner-only, 0600) when the
    /// file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Identity, KeyFileError> {
        load_or_create_secret(
            path,
            &|bytes| {
                let key = <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
                    KeyFileError::WrongLength {
                        path: path.to_owned(),
                        len: bytes.len(),
                    }
                })?;
                warn_if_readable_by_others(path, "the secret key file");
                Ok(Identity::from_key(key))
            },
            &|| {
                tracing::info!(path = %path.display(), "creating a new secret key");
                let identity = Identity::generate();
                let bytes = identity.key.to_vec();
                (identity, bytes)
            },
        )
    }

    /// A new random user id: 16 bytes, base64url.
    pub fn new_user_id() -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The visitor cookie's value for a user: `<user id>.<signature>`.
    pub fn cookie_value(&self, user_id: &str) -> String {
        let signature = self
            .mac(COOKIE_LABEL, user_id.as_bytes())
            .finalize()
            .into_bytes();
        format!("{user_id}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The user id in a visitor cookie's value, when its signature is ours.
    pub fn verify_cookie_value(&self, value: &str) -> Option<String> {
        let (user_id, signature) = value.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        if user_id.is_empty() {
            return None;
        }
        self.mac(COOKIE_LABEL, user_id.as_bytes())
            .verify_slice(&signature)
            .ok()?;
        Some(user_id.to_string())
    }

    /// The visitor making a request: the user of a valid `roomscale_user` cookie,
    /// or a new user who must be sent the cookie.
    pub fn visitor(&self, headers: &HeaderMap) -> Visitor {
        let existing = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE_NAME)
            .find_map(|(_, value)| self.verify_cookie_value(value));
        match existing {
            Some(user_id) => Visitor {
                user_id,
                set_cookie: None,
            },
            None => {
                let user_id = Identity::new_user_id();
                let cookie = format!(
                    "{COOKIE_NAME}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
                    self.cookie_value(&user_id),
                    COOKIE_MAX_AGE.as_secs(),
                    if self.secure_cookie { "; Secure" } else { "" },
                );
                Visitor {
                    user_id,
                    set_cookie: Some(
                        HeaderValue::try_from(cookie).expect("base64url cookies are valid headers"),
                    ),
                }
            }
        }
    }

    /// A socket token for `user_id`, valid for [`TOKEN_LIFETIME`] from `now`, and
    /// its expiry in Unix milliseconds. The token is `<claims>.<signature>`, both
    /// base64url; the claims are JSON.
    pub fn issue_token(&self, user_id: &str, name: Option<&str>, now: SystemTime) -> (String, i64) {
        let expires_at = unix_millis(now + TOKEN_LIFETIME);
        let claims = Claims {
            user_id: user_id.to_string(),
            name: name.map(str::to_string),
            expires_at,
        };
        let claims_json = serde_json::to_vec(&claims).expect("claims are plain data");
        let payload = URL_SAFE_NO_PAD.encode(claims_json);
        let signature = self
            .mac(TOKEN_LABEL, payload.as_bytes())
            .finalize()
            .into_bytes();
        let token = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(signature));
        (token, expires_at)
    }

    /// The claims of a token this server issued and that has not expired at `now`.
    pub fn verify_token(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        if token.trim().is_empty() {
            return Err(TokenError::Missing);
        }
        let (payload, signature) = token
            .split_once('.')
            .ok_or(TokenError::Malformed("it has no signature part"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed("its signature is not base64url"))?;
        // The signature covers the encoded claims, so nothing from an unverified
        // token is parsed.
        self.mac(TOKEN_LABEL, payload.as_bytes())
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed("its claims are unreadable"))?;
        if claims.expires_at <= unix_millis(now) {
            return Err(TokenError::Expired {
                expires_at: claims.expires_at,
            });
        }
        Ok(claims)
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key[..]).expect("HMAC takes any key length");
        mac.update(label);
        mac.update(data);
        mac
    }
}

// By hand so that the key never reaches a log.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

/// The person behind a request, known by the visitor cookie or newly minted.
/// Responses to a new visitor must carry [`Visitor::set_cookie`].
#[derive(Debug, Clone)]
pub struct Visitor {
    pub user_id: String,
    set_cookie: Option<HeaderValue>,
}

impl Visitor {
    /// A visitor already known by other means (a socket token): no cookie to set.
    pub fn known(user_id: String) -> Visitor {
        Visitor {
            user_id,
            set_cookie: None,
        }
    }

    /// True when the request had no valid cookie and this user id was just made.
    pub fn is_new(&self) -> bool {
        self.set_cookie.is_some()
    }

    /// The `Set-Cookie` header a new visitor needs, as response parts: put it in
    /// a handler's response tuple.
    pub fn set_cookie(&self) -> Option<[(HeaderName, HeaderValue); 1]> {
        self.set_cookie.clone().map(|value| [(SET_COOKIE, value)])
    }
}

impl<S> FromRequestParts<S> for Visitor
where
    Identity: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Visitor, Infallible> {
        Ok(Identity::from_ref(state).visitor(&parts.headers))
    }
}

/// The operator's token for the JSON API (`Authorization: Bearer <token>`),
/// which may edit, delete and restore any room. Kept as text in its own file so
/// an operator can read it with `cat`; cheap to clone.
#[derive(Clone)]
pub struct AdminToken {
    token: Arc<str>,
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            token: Arc::from(token.trim()),
        }
    }

    /// Reads the token from `path`, or creates the file (owner-only, 0600) with
    /// a new random token when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<AdminToken, KeyFileError> {
        load_or_create_secret(
            path,
            &|bytes| {
                let text = String::from_utf8_lossy(&bytes);
                if text.trim().len() < 16 {
                    return Err(KeyFileError::AdminTokenTooShort {
                        path: path.to_owned(),
                        len: text.trim().len(),
                    });
                }
                warn_if_readable_by_others(path, "the admin token file");
                Ok(AdminToken::new(&text))
            },
            &|| {
                let mut bytes = [0u8; 32];
                rand::rngs::SysRng
                    .try_fill_bytes(&mut bytes)
                    .expect("the operating system's random number generator failed");
                let token = URL_SAFE_NO_PAD.encode(bytes);
                (AdminToken::new(&token), format!("{token}\n").into_bytes())
            },
        )
    }

    /// Whether `candidate` is the admin token; the time taken does not depend
    /// on where the two first differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let expected = self.token.as_bytes();
        let candidate = candidate.as_bytes();
        let mut difference = u8::from(expected.len() != candidate.len());
        for (index, byte) in expected.iter().enumerate() {
            difference |= byte ^ candidate.get(index).copied().unwrap_or(!byte);
        }
        difference == 0
    }
}

// By hand so that the token never reaches a log.
impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken").finish_non_exhaustive()
    }
}

/// Reads a secret file with `parse`, or creates it (owner-only, 0600) holding
/// what `make` returns when it does not exist yet. When another process creates
/// it first, theirs is read: both then use the same secret.
fn load_or_create_secret<T>(
    path: &Path,
    parse: &dyn Fn(Vec<u8>) -> Result<T, KeyFileError>,
    make: &dyn Fn() -> (T, Vec<u8>),
) -> Result<T, KeyFileError> {
    match fs::read(path) {
        Ok(bytes) => parse(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (secret, bytes) = make();
            match write_new_key_file(path, &bytes) {
                Ok(()) => Ok(secret),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path, parse, make)
                }
                Err(source) => Err(KeyFileError::Create {
                    path: path.to_owned(),
                    source,
                }),
            }
        }
        Err(source) => Err(KeyFileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write_new_key_file(path: &Path, key: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(key)?;
    // The key must survive a crash right after start: cookies signed with it are
    // already out.
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "{what} is readable by other users; run chmod 600 on it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_refuse_tampering() {
        let identity = Identity::generate();
        let value = identity.cookie_value("abc");
        assert_eq!(identity.verify_cookie_value(&value).as_deref(), Some("abc"));
        assert_eq!(
            identity.verify_cookie_value(&value.replacen("abc", "abd", 1)),
            None
        );
        assert_eq!(Identity::generate().verify_cookie_value(&value), None);
        assert_eq!(identity.verify_cookie_value("abc"), None);
        assert_eq!(identity.verify_cookie_value(""), None);
    }

    #[test]
    fn a_cookie_signature_is_not_a_token_signature() {
        // Same key, same bytes signed, different label: must not verify.
        let identity = Identity::generate();
        let cookie = identity.cookie_value("payload");
        assert_eq!(
            identity.verify_token(&cookie, SystemTime::now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn csrf_tokens_belong_to_one_user_and_one_key() {
        let identity = Identity::generate();
        let token = identity.csrf_token("ada");
        assert!(identity.verify_csrf_token("ada", &token));
        assert!(!identity.verify_csrf_token("bo", &token));
        assert!(!Identity::generate().verify_csrf_token("ada", &token));
        assert!(!identity.verify_csrf_token("ada", ""));
        assert!(!identity.verify_csrf_token("ada", "not base64!"));
        // A cookie's signature for the same user is no form token.
        let cookie = identity.cookie_value("ada");
        let cookie_signature = cookie.rsplit_once('.').unwrap().1;
        assert!(!identity.verify_csrf_token("ada", cookie_signature));
    }

    #[test]
    fn secure_cookies_say_so() {
        let plain = Identity::generate().visitor(&HeaderMap::new());
        let cookie = plain.set_cookie().unwrap()[0]
            .1
            .to_str()
            .unwrap()
            .to_string();
        assert!(!cookie.contains("Secure"), "{cookie}");
        let secure = Identity::generate()
            .with_secure_cookie(true)
            .visitor(&HeaderMap::new());
        let cookie = secure.set_cookie().unwrap()[0]
            .1
            .to_str()
            .unwrap()
            .to_string();
        assert!(cookie.ends_with("; Secure"), "{cookie}");
    }

    #[test]
    fn the_admin_token_is_made_private_reloaded_and_compared_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let first = AdminToken::load_or_create(&path).unwrap();
        let second = AdminToken::load_or_create(&path).unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert!(first.matches(written.trim()) && second.matches(written.trim()));
        assert!(!first.matches(""));
        assert!(!first.matches(&written.trim()[1..]));
        assert!(!first.matches(&format!("{}x", written.trim())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::write(&path, b"short").unwrap();
        let error = AdminToken::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("at least 16"), "{error}");
    }

    #[test]
    fn the_key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = Identity::load_or_create(&path).unwrap();
        let second = Identity::load_or_create(&path).unwrap();
        assert_eq!(first.key, second.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::write(&path, b"short").unwrap();
        let error = Identity::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("holds 5 bytes instead of 32"), "{error}");
    }
}
