//! Protocol versioning. A client states its version in the join payload; the
//! server answers an unsupported one with an error that names the versions it
//! speaks, so the person can tell which side to update.

use std::fmt;

/// The version this build speaks and sends in its join payload.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every version this build accepts from a peer, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// A peer spoke a protocol version this build does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedVersion {
    pub requested: u32,
}

impl fmt::Display for UnsupportedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spoken = SUPPORTED_VERSIONS
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let advice = if self.requested > PROTOCOL_VERSION {
            "the server is older than the client: update the server"
        } else {
            "the client is older than the server: update the client (reload the page)"
        };
        write!(
            f,
            "protocol version {} is not supported; this server speaks {spoken}; {advice}",
            self.requested
        )
    }
}

impl std::error::Error for UnsupportedVersion {}

/// Accepts `requested` when this build speaks it.
pub fn check_version(requested: u32) -> Result<(), UnsupportedVersion> {
    if SUPPORTED_VERSIONS.contains(&requested) {
        Ok(())
    } else {
        Err(UnsupportedVersion { requested })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_version_is_supported() {
        assert_eq!(check_version(PROTOCOL_VERSION), Ok(()));
    }

    #[test]
    fn unsupported_versions_say_what_is_spoken_and_what_to_update() {
        let newer = check_version(PROTOCOL_VERSION + 1).unwrap_err().to_string();
        assert!(newer.contains("this server speaks 1"), "{newer}");
        assert!(newer.contains("update the server"), "{newer}");
        let older = check_version(0).unwrap_err().to_string();
        assert!(older.contains("update the client"), "{older}");
    }
}
