//! Text people see: display names normalised so that two people cannot look
//! alike by accident or on purpose, chat text without invisible controls, and
//! the short per-user tag shown beside every name.
//!
//! A name is NFC-normalised and trimmed, and may not hold control characters,
//! line or paragraph separators, or format characters (bidi overrides,
//! zero-width spaces, invisible tags), which can reorder or hide what a reader
//! sees. The zero-width joiner stays allowed: emoji sequences need it. Chat
//! text follows the same rules but may hold line breaks and tabs.
//!
//! Names are not unique, so every client shows [`user_tag`] beside a name: four
//! characters derived from the server-minted user id, which a visitor cannot
//! choose.

use unicode_normalization::UnicodeNormalization as _;

use crate::limits::{MAX_CHAT_CHARS, MAX_NAME_CHARS};

/// The zero-width joiner: a format character, but emoji sequences need it.
const ZERO_WIDTH_JOINER: char = '\u{200D}';

/// True for Unicode's format characters (general category Cf) and the line
/// and paragraph separators: invisible characters that change how the text
/// around them is shown.
pub fn is_invisible_control(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    ) && c != ZERO_WIDTH_JOINER
}

/// A display name as it is stored and shown: NFC, trimmed, 1 to
/// [`MAX_NAME_CHARS`] characters, no control or format characters.
pub fn normalize_name(raw: &str) -> Result<String, String> {
    let name: String = raw.nfc().collect();
    let name = name.trim();
    if name.is_empty() {
        return Err("name must not be blank".into());
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "name is {chars} characters; at most {MAX_NAME_CHARS} are allowed"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| c.is_control() || is_invisible_control(c))
    {
        return Err(format!(
            "name must not contain control or invisible formatting characters (found U+{:04X})",
            u32::from(bad)
        ));
    }
    Ok(name.to_string())
}

/// Checks chat text: 1 to [`MAX_CHAT_CHARS`] characters, not blank, no
/// control or format characters but line breaks and tabs.
pub fn validate_chat_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("text must not be blank".into());
    }
    let chars = text.chars().count();
    if chars > MAX_CHAT_CHARS {
        return Err(format!(
            "text is {chars} characters; at most {MAX_CHAT_CHARS} are allowed"
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|&c| (c.is_control() && !matches!(c, '\n' | '\t')) || is_invisible_control(c))
    {
        return Err(format!(
            "text must not contain control or invisible formatting characters (found U+{:04X})",
            u32::from(bad)
        ));
    }
    Ok(())
}

/// Crockford's base32 alphabet: no I, L, O or U, so a tag reads aloud cleanly.
const TAG_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The four-character tag shown beside a user's name: 20 bits of the FNV-1a
/// hash of the user id, in Crockford base32. The browser client computes the
/// same (`protocol/vectors/names.json` holds cases both check).
pub fn user_tag(user_id: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in user_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (0..4)
        .map(|i| char::from(TAG_ALPHABET[((hash >> (15 - 5 * i)) & 31) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        // "é" as e + combining acute becomes the one precomposed character.
        assert_eq!(normalize_name("  Ame\u{301}lie ").unwrap(), "Am\u{e9}lie");
        assert_eq!(normalize_name("Ada").unwrap(), "Ada");
        assert_eq!(
            normalize_name("\u{1F469}\u{200D}\u{1F4BB} Grace").unwrap(),
            "\u{1F469}\u{200D}\u{1F4BB} Grace",
            "emoji sequences keep their joiner"
        );
        for bad in [
            "Ada\u{202E}evil",
            "A\u{200B}da",
            "Ada\u{2066}",
            "\u{FEFF}Ada",
            "Ada\nLovelace",
            "Ada\u{7}",
            "Ada\u{E0041}",
            "Ada\u{2028}Lovelace",
        ] {
            let error = normalize_name(bad).unwrap_err();
            assert!(
                error.contains("invisible") || error.contains("control"),
                "{bad:?}: {error}"
            );
        }
        assert!(normalize_name(" \u{3000} ").is_err(), "blank");
        assert!(normalize_name(&"a".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(
            normalize_name(&"\u{e9}".repeat(MAX_NAME_CHARS)).is_ok(),
            "counted in characters"
        );
        assert!(normalize_name(&"a".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn chat_keeps_line_breaks_but_not_hidden_controls() {
        assert!(validate_chat_text("hello\nthere\tfriend").is_ok());
        assert!(validate_chat_text("rm -rf \u{202E}gnp.exe").is_err());
        assert!(validate_chat_text("bell\u{7}").is_err());
        assert!(validate_chat_text("   ").is_err());
    }

    #[test]
    fn tags_are_short_stable_and_differ() {
        let a = user_tag("q8Jx3mZ0cT5aKp2Lr9vW1g");
        assert_eq!(a.len(), 4);
        assert_eq!(a, user_tag("q8Jx3mZ0cT5aKp2Lr9vW1g"));
        assert_ne!(a, user_tag("q8Jx3mZ0cT5aKp2Lr9vW1h"));
        assert!(a.bytes().all(|b| TAG_ALPHABET.contains(&b)));
    }
}

/// The cases `protocol/vectors/names.json` holds for the browser client's
/// copy of these rules; `ROOMSCALE_BLESS=1` rewrites the file.
#[cfg(test)]
mod vectors {
    use super::*;

    #[test]
    fn committed_vectors_are_current() {
        let user_ids = [
            "q8Jx3mZ0cT5aKp2Lr9vW1g",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "_-_-_-_-_-_-_-_-_-_-_w",
            "bob",
            "",
        ];
        let names = [
            "  Ame\u{301}lie ",
            "Ada",
            "Ada\u{202E}evil",
            "A\u{200B}da",
            "\u{1F469}\u{200D}\u{1F4BB} Grace",
            "Ada\nLovelace",
            "   ",
        ];
        let tags: Vec<serde_json::Value> = user_ids
            .iter()
            .map(|id| serde_json::json!({"user_id": id, "tag": user_tag(id)}))
            .collect();
        let normalised: Vec<serde_json::Value> = names
            .iter()
            .map(|name| match normalize_name(name) {
                Ok(name_out) => serde_json::json!({"input": name, "name": name_out}),
                Err(_) => serde_json::json!({"input": name, "error": true}),
            })
            .collect();
        let generated = serde_json::to_string_pretty(&serde_json::json!({
            "tags": tags,
            "names": normalised,
        }))
        .unwrap()
            + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/names.json");
        if std::env::var_os("ROOMSCALE_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "protocol/vectors/names.json is stale: run `cargo xtask codegen` and commit it"
        );
    }
}
