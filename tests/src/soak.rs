//! Pure parts of the soak benchmark (`src/bin/soak.rs`): the table of how each
//! attack was answered, the ledger of acknowledged chats and its check against
//! what the server kept, the rule that says whether the server's memory came
//! back down, the spellings an attacker tries for a room topic, a forged socket
//! token's parts, the reading of server frames as typed events (and how a
//! reply is told in the table), and a small random number generator. No I/O
//! here, so all of it is unit-tested.

use std::collections::{BTreeMap, HashMap};

use roomscale_protocol::events::ErrorReply;
use roomscale_protocol::frame::{self, control};
use roomscale_protocol::server_event::{Reply, ServerEvent, ServerEventError};

/// How each attack was answered: attack -> answer -> count, both in the order
/// they sort, so two runs print comparable tables.
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    table: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Outcomes {
    pub fn record(&mut self, attack: &str, answer: impl Into<String>) {
        self.add(attack, answer, 1);
    }

    pub fn add(&mut self, attack: &str, answer: impl Into<String>, count: u64) {
        if count == 0 {
            return;
        }
        *self
            .table
            .entry(attack.to_string())
            .or_default()
            .entry(answer.into())
            .or_default() += count;
    }

    pub fn attacks(&self) -> usize {
        self.table.len()
    }

    /// How often `attack` was answered with `answer`.
    pub fn count(&self, attack: &str, answer: &str) -> u64 {
        self.table
            .get(attack)
            .and_then(|answers| answers.get(answer))
            .copied()
            .unwrap_or(0)
    }

    /// One line per attack: `attack  answer x N, answer x M`.
    pub fn render(&self) -> Vec<String> {
        let width = self.table.keys().map(|k| k.len()).max().unwrap_or(0);
        self.table
            .iter()
            .map(|(attack, answers)| {
                let answers: Vec<String> = answers
                    .iter()
                    .map(|(answer, count)| format!("{answer} x{count}"))
                    .collect();
                format!("{attack:<width$}  {}", answers.join(", "))
            })
            .collect()
    }
}

/// Chats the server acknowledged, per room: the id it gave and the text sent.
#[derive(Debug, Default, Clone)]
pub struct ChatLedger {
    rooms: BTreeMap<String, Vec<(u64, String)>>,
}

/// What the check of a ledger against stored history found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerCheck {
    pub checked: u64,
    /// Acknowledged ids that are not in the history at all.
    pub missing: u64,
    /// Acknowledged ids whose stored text differs from what was sent.
    pub altered: u64,
    /// The first few problems, for the report: "room R id N: what".
    pub examples: Vec<String>,
}

impl LedgerCheck {
    pub fn lost(&self) -> u64 {
        self.missing + self.altered
    }

    pub fn merge(&mut self, other: LedgerCheck) {
        self.checked += other.checked;
        self.missing += other.missing;
        self.altered += other.altered;
        for example in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(example);
            }
        }
    }
}

impl ChatLedger {
    pub fn acknowledged(&mut self, room_id: &str, id: u64, text: String) {
        self.rooms
            .entry(room_id.to_string())
            .or_default()
            .push((id, text));
    }

    pub fn len(&self) -> usize {
        self.rooms.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// Checks every chat acknowledged in `room_id` with an id of at least
    /// `from_id` against `stored` (chat id -> text as the server kept it).
    pub fn check(&self, room_id: &str, stored: &HashMap<u64, String>, from_id: u64) -> LedgerCheck {
        let mut check = LedgerCheck::default();
        for (id, text) in self.rooms.get(room_id).into_iter().flatten() {
            if *id < from_id {
                continue;
            }
            check.checked += 1;
            let problem = match stored.get(id) {
                None => {
                    check.missing += 1;
                    "acknowledged but not in the history"
                }
                Some(kept) if kept != text => {
                    check.altered += 1;
                    "stored with another text"
                }
                Some(_) => continue,
            };
            if check.examples.len() < 5 {
                check
                    .examples
                    .push(format!("room {room_id} id {id}: {problem}"));
            }
        }
        check
    }
}

/// The rule the end RSS is held to: memory taken during the attacks must come
/// back down, to at most half again the start plus 64 MiB.
pub fn rss_came_back(start: u64, end: u64) -> bool {
    end <= rss_allowed_end(start)
}

pub fn rss_allowed_end(start: u64) -> u64 {
    start + start / 2 + 64 * 1024 * 1024
}

/// Spellings of a room topic that name the same room id but are not the
/// canonical `room:<lowercase uuid>`: upper case, braced, urn.
pub fn non_canonical_topics(room_id: &str) -> [(&'static str, String); 3] {
    [
        ("upper-case", format!("room:{}", room_id.to_uppercase())),
        ("braced", format!("room:{{{room_id}}}")),
        ("urn", format!("room:urn:uuid:{room_id}")),
    ]
}

/// A random version-4 UUID in canonical form.
pub fn random_uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        ["8", "9", "a", "b"][(b >> 60) as usize & 3],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The claims JSON of a socket token, as the server signs it.
pub fn token_claims_json(user_id: &str, expires_at_ms: i64) -> String {
    serde_json::json!({ "user_id": user_id, "name": null, "expires_at": expires_at_ms }).to_string()
}

/// A token with its signature's last character changed: same claims, a
/// signature the server never made.
pub fn token_with_bad_signature(token: &str) -> String {
    let mut forged = token.to_string();
    let last = forged.pop().unwrap_or('A');
    forged.push(if last == 'A' { 'B' } else { 'A' });
    forged
}

/// The `name=value` of each `Set-Cookie` header in a raw HTTP response head,
/// joined for a `Cookie` header.
pub fn cookies_from_response(raw: &[u8]) -> Option<String> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let cookies: Vec<&str> = head
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap_or("").trim())
        })
        .filter(|c| !c.is_empty())
        .collect();
    (!cookies.is_empty()).then(|| cookies.join("; "))
}

/// A close frame's code and reason as the table shows it: the code and the
/// reason's first words.
pub fn describe_close(code: u16, reason: &str) -> String {
    let words: Vec<&str> = reason.split_whitespace().take(4).collect();
    if words.is_empty() {
        format!("closed {code}")
    } else {
        format!("closed {code} ({})", words.join(" "))
    }
}

/// A text frame from the server, typed. A reply keeps its ref even when its
/// payload does not read, so the push it answers still learns why; other
/// events keep their topic and wire name for the same reason.
#[derive(Debug)]
pub enum Incoming {
    Reply {
        msg_ref: String,
        reply: Result<Reply, ServerEventError>,
    },
    Other {
        topic: String,
        name: String,
        event: Result<ServerEvent, ServerEventError>,
    },
}

/// Reads a text frame from the server. `None` for text that is no frame at
/// all, or a reply without a ref: nothing can be told of either, so readers
/// skip them.
pub fn read_text(text: &str) -> Option<Incoming> {
    let frame = frame::decode_text(text).ok()?;
    Some(match ServerEvent::parse_text(&frame) {
        Ok(ServerEvent::Reply(reply)) => Incoming::Reply {
            msg_ref: reply.msg_ref.clone(),
            reply: Ok(reply),
        },
        Err(error) if frame.event == control::REPLY => Incoming::Reply {
            msg_ref: frame.msg_ref?,
            reply: Err(error),
        },
        event => Incoming::Other {
            topic: frame.topic,
            name: frame.event,
            event,
        },
    })
}

/// A reply as the table of answers shows it: `ok`, `error <code>`, or that it
/// did not read (with the first words of why).
pub fn describe_reply(reply: &Result<Reply, ServerEventError>) -> String {
    match reply {
        Ok(Reply { outcome: Ok(_), .. }) => "ok".into(),
        Ok(Reply {
            outcome: Err(refusal),
            ..
        }) => describe_refusal(refusal),
        Err(error) => {
            let error = error.to_string();
            let words: Vec<&str> = error.split_whitespace().take(5).collect();
            format!("unreadable reply ({})", words.join(" "))
        }
    }
}

/// `error <code>`.
pub fn describe_refusal(refusal: &ErrorReply) -> String {
    format!("error {}", refusal.code.as_str())
}

/// xorshift64*: plenty for spreading traffic, and no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up_per_attack_and_answer() {
        let mut outcomes = Outcomes::default();
        outcomes.record("chat flood", "error rate_limited");
        outcomes.record("chat flood", "error rate_limited");
        outcomes.record("chat flood", "ok");
        outcomes.add("token flood", "HTTP 429", 30);
        outcomes.add("token flood", "HTTP 200", 0);
        assert_eq!(outcomes.attacks(), 2);
        assert_eq!(outcomes.count("chat flood", "error rate_limited"), 2);
        assert_eq!(outcomes.count("token flood", "HTTP 200"), 0);
        let lines = outcomes.render();
        assert_eq!(
            lines,
            vec![
                "chat flood   error rate_limited x2, ok x1",
                "token flood  HTTP 429 x30",
            ]
        );
    }

    #[test]
    fn the_ledger_finds_missing_and_altered_chats() {
        let mut ledger = ChatLedger::default();
        ledger.acknowledged("r1", 1, "hello".into());
        ledger.acknowledged("r1", 2, "world".into());
        ledger.acknowledged("r1", 3, "again".into());
        ledger.acknowledged("r2", 1, "other".into());
        assert_eq!(ledger.len(), 4);
        let stored: HashMap<u64, String> =
            [(1, "hello".to_string()), (3, "AGAIN".to_string())].into();
        let check = ledger.check("r1", &stored, 0);
        assert_eq!(check.checked, 3);
        assert_eq!(check.missing, 1);
        assert_eq!(check.altered, 1);
        assert_eq!(check.lost(), 2);
        assert!(check.examples[0].contains("id 2"), "{:?}", check.examples);
        let mut total = LedgerCheck::default();
        total.merge(check);
        total.merge(ledger.check("r2", &[(1, "other".to_string())].into(), 0));
        assert_eq!((total.checked, total.lost()), (4, 2));
        // Only from an id on: what a partial read-back can vouch for.
        let newest = ledger.check("r1", &stored, 3);
        assert_eq!((newest.checked, newest.altered, newest.missing), (1, 1, 0));
        assert_eq!(ledger.rooms().collect::<Vec<_>>(), vec!["r1", "r2"]);
    }

    #[test]
    fn rss_must_come_back_within_half_again_plus_64_mib() {
        let mib = 1024 * 1024;
        assert!(rss_came_back(100 * mib, 100 * mib));
        assert!(rss_came_back(100 * mib, 214 * mib));
        assert!(!rss_came_back(100 * mib, 215 * mib));
        assert_eq!(rss_allowed_end(20 * mib), 94 * mib);
    }

    #[test]
    fn topic_spellings_are_not_canonical_but_name_the_same_id() {
        let mut rng = Rng::new(7);
        let id = random_uuid(&mut rng);
        assert!(roomscale_protocol::is_canonical_uuid(&id), "{id}");
        assert_eq!(id.as_bytes()[14], b'4');
        for (_, topic) in non_canonical_topics(&id) {
            assert!(roomscale_protocol::room_id_from_topic(&topic).is_none());
            assert!(topic.to_lowercase().contains(&id));
        }
    }

    #[test]
    fn forged_tokens_differ_from_the_original() {
        let token = "eyJ1c2VyX2lkIjoiYSJ9.sigA";
        let forged = token_with_bad_signature(token);
        assert_ne!(forged, token);
        assert_eq!(forged.len(), token.len());
        let claims: serde_json::Value = serde_json::from_str(&token_claims_json("u1", 5)).unwrap();
        assert_eq!(claims["user_id"], "u1");
        assert_eq!(claims["expires_at"], 5);
    }

    #[test]
    fn cookies_and_closes_read_as_the_report_needs() {
        let raw = b"HTTP/1.1 200 OK\r\nset-cookie: roomscale_user=abc.def; Path=/; HttpOnly\r\n\
                    Content-Type: application/json\r\n\r\n{}";
        assert_eq!(
            cookies_from_response(raw),
            Some("roomscale_user=abc.def".into())
        );
        assert_eq!(cookies_from_response(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(describe_close(1009, ""), "closed 1009");
        assert_eq!(
            describe_close(1008, "disconnected for flooding: far more messages"),
            "closed 1008 (disconnected for flooding: far)"
        );
    }

    #[test]
    fn the_generator_spreads_values_over_the_range() {
        let mut rng = Rng::new(0);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = rng.range(10, 20);
            assert!((10..20).contains(&v));
            seen[(v - 10) as usize] = true;
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(rng.range(5, 5), 5);
    }

    #[test]
    fn server_frames_read_as_typed_replies_and_events() {
        use roomscale_protocol::events::{ErrorCode, StoredReply};

        let Some(Incoming::Reply { msg_ref, reply }) =
            read_text(r#"["1","7","room:r","phx_reply",{"status":"ok","response":{"id":42}}]"#)
        else {
            panic!("a reply");
        };
        assert_eq!(msg_ref, "7");
        assert_eq!(describe_reply(&reply), "ok");
        assert_eq!(
            reply.unwrap().read::<StoredReply>(),
            Ok(Ok(StoredReply { id: 42 }))
        );

        let Some(Incoming::Reply { msg_ref, reply }) = read_text(
            r#"["1","8","room:r","phx_reply",{"status":"error","response":{"code":"rate_limited","reason":"slow down"}}]"#,
        ) else {
            panic!("a refusal");
        };
        assert_eq!(msg_ref, "8");
        assert_eq!(describe_reply(&reply), "error rate_limited");
        assert_eq!(
            reply.unwrap().outcome,
            Err(ErrorReply::new(ErrorCode::RateLimited, "slow down"))
        );

        // A reply that does not read still answers its push, and says so.
        let Some(Incoming::Reply { msg_ref, reply }) =
            read_text(r#"["1","9","room:r","phx_reply",{"response":{}}]"#)
        else {
            panic!("an unreadable reply keeps its ref");
        };
        assert_eq!(msg_ref, "9");
        assert!(
            describe_reply(&reply).starts_with("unreadable reply (the server's"),
            "{}",
            describe_reply(&reply)
        );

        let Some(Incoming::Other { topic, name, event }) = read_text(
            r#"[null,null,"room:r","event",{"id":5,"user_id":"u","name":"Ada","sent_at":1,"body":{"type":"chat","text":"hi"}}]"#,
        ) else {
            panic!("an event");
        };
        assert_eq!((topic.as_str(), name.as_str()), ("room:r", "event"));
        assert!(matches!(event, Ok(ServerEvent::Event(e)) if e.id == 5));

        let Some(Incoming::Other { name, event, .. }) =
            read_text(r#"["1","1","room:r","phx_close",{"why":"?"}]"#)
        else {
            panic!("a malformed close keeps its name");
        };
        assert_eq!(name, "phx_close");
        assert!(event.is_err());

        assert!(read_text("not a frame").is_none());
        assert!(
            read_text(r#"["1",null,"room:r","phx_reply",{"status":"ok","response":{}}]"#).is_none()
        );
    }
}
