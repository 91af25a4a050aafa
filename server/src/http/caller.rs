//! Who is calling the JSON API, and what they may do to a room.
//!
//! A caller is the operator (`Authorization: Bearer <admin token>`), a client
//! holding a socket token (`Authorization: Bearer <socket token>`, what the
//! native app has), or a browser with its visitor cookie (a new visitor when
//! there is none). Only a room's owner, or the operator, may change it.

use std::time::SystemTime;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};

use crate::error::Error;
use crate::identity::{AdminToken, Identity, Visitor};
use crate::storage::Room;

/// The person or program behind an API request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator, holding the admin token.
    Admin,
    /// A visitor, known by a socket token or the cookie (or new).
    User(Visitor),
}

impl Caller {
    /// The caller's user id; `None` for the operator, who owns no rooms.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Caller::Admin => None,
            Caller::User(visitor) => Some(&visitor.user_id),
        }
    }

    /// The cookie a new visitor must be sent.
    pub fn set_cookie(&self) -> Option<[(HeaderName, HeaderValue); 1]> {
        match self {
            Caller::Admin => None,
            Caller::User(visitor) => visitor.set_cookie(),
        }
    }

    /// `Ok` when the caller may edit, delete or restore `room`.
    pub fn may_manage(&self, room: &Room) -> Result<(), Error> {
        match self {
            Caller::Admin => Ok(()),
            Caller::User(visitor) if room.is_owned_by(&visitor.user_id) => Ok(()),
            Caller::User(_) => Err(not_the_owner(room)),
        }
    }
}

/// Why someone who is not the owner may not change a room.
pub fn not_the_owner(room: &Room) -> Error {
    Error::Forbidden(if room.owner_id.is_some() {
        "only the room's owner may change, delete or restore it; ask them, or make a room \
         of your own"
            .to_string()
    } else {
        "this room was made before rooms had owners: only the server's operator may change, \
         delete or restore it"
            .to_string()
    })
}

/// A caller is told apart with the signing key and the admin token alone.
impl<S> FromRequestParts<S> for Caller
where
    Identity: FromRef<S>,
    Option<AdminToken>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, Error> {
        let identity = Identity::from_ref(state);
        let Some(authorization) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Caller::User(identity.visitor(&parts.headers)));
        };
        let bearer = authorization
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Error::Unauthorized(
                    "the Authorization header must be `Bearer <token>`, with a socket token \
                     from POST /api/session or the operator's admin token"
                        .to_string(),
                )
            })?;
        if Option::<AdminToken>::from_ref(state).is_some_and(|admin| admin.matches(bearer)) {
            return Ok(Caller::Admin);
        }
        match identity.verify_token(bearer, SystemTime::now()) {
            Ok(claims) => Ok(Caller::User(Visitor::known(claims.user_id))),
            Err(error) => Err(Error::Unauthorized(format!(
                "the bearer token is neither the admin token nor a valid socket token: {error}"
            ))),
        }
    }
}
