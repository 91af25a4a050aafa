//! Which speakers each listener hears, and on which of its slots.
//!
//! A listener's peer connection carries at most `limit` outgoing audio tracks
//! ("slots"). When more people than that talk in one room, each listener gets
//! those who spoke most recently, nearest first, then the nearest of the rest.
//! Assignments are sticky: a speaker keeps its slot while it stays chosen, so a
//! track only changes voice when the choice really changes.
//!
//! Whether someone speaks follows the level of their frames: a loud frame
//! starts speech, and speech ends after a hangover without one (or at once
//! when they are muted).
//!
//! Plain logic with time as an input; the SFU feeds it.

use std::time::{Duration, Instant};

use super::MemberId;

/// Someone who spoke within this long still counts as an active speaker.
pub const RECENT_SPEECH: Duration = Duration::from_secs(2);
/// Speaking ends after this long without a loud frame.
pub const SPEECH_HANGOVER: Duration = Duration::from_millis(600);

/// One speaker's speaking state.
#[derive(Debug, Default, Clone)]
pub struct Speech {
    last_spoke: Option<Instant>,
    speaking: bool,
}

impl Speech {
    /// A loud frame arrived at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_spoke = Some(now);
    }

    /// Speech ends at once (a mute); returns whether it was reported as
    /// speaking, so its end must be reported too.
    pub fn silence(&mut self) -> bool {
        self.last_spoke = None;
        std::mem::take(&mut self.speaking)
    }

    /// The speaking state at `now`, when it changed since the last call.
    pub fn update(&mut self, now: Instant) -> Option<bool> {
        let speaking = self
            .last_spoke
            .is_some_and(|t| now.saturating_duration_since(t) < SPEECH_HANGOVER);
        (speaking != self.speaking).then(|| {
            self.speaking = speaking;
            speaking
        })
    }

    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    pub fn last_spoke(&self) -> Option<Instant> {
        self.last_spoke
    }
}

/// A speaker as one listener sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub speaker: MemberId,
    pub last_spoke: Option<Instant>,
    /// Metres from the listener's head, when both positions are known.
    pub distance: Option<f32>,
}

/// Up to `limit` speakers for one listener, best first.
pub fn choose(limit: usize, candidates: &[Candidate], now: Instant) -> Vec<MemberId> {
    let mut ranked: Vec<&Candidate> = candidates.iter().collect();
    let recent = |c: &Candidate| {
        c.last_spoke
            .is_some_and(|t| now.saturating_duration_since(t) <= RECENT_SPEECH)
    };
    ranked.sort_by(|a, b| {
        recent(b)
            .cmp(&recent(a))
            .then_with(|| {
                let far = f32::INFINITY;
                a.distance
                    .unwrap_or(far)
                    .total_cmp(&b.distance.unwrap_or(far))
            })
            .then_with(|| a.speaker.cmp(&b.speaker))
    });
    ranked.iter().take(limit).map(|c| c.speaker).collect()
}

/// Puts `chosen` speakers on `slots`, keeping those already placed, reusing
/// free slots, and opening new ones up to `limit`. Returns whether anything
/// changed.
pub fn assign(slots: &mut Vec<Option<MemberId>>, chosen: &[MemberId], limit: usize) -> bool {
    let mut changed = false;
    for slot in slots.iter_mut() {
        if slot.is_some_and(|speaker| !chosen.contains(&speaker)) {
            *slot = None;
            changed = true;
        }
    }
    for &speaker in chosen {
        if slots.contains(&Some(speaker)) {
            continue;
        }
        if let Some(free) = slots.iter_mut().find(|slot| slot.is_none()) {
            *free = Some(speaker);
        } else if slots.len() < limit {
            slots.push(Some(speaker));
        } else {
            continue;
        }
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(speaker: MemberId, spoke_ago: Option<u64>, distance: Option<f32>) -> Candidate {
        let now = Instant::now() + Duration::from_secs(60);
        Candidate {
            speaker,
            last_spoke: spoke_ago.map(|ms| now - Duration::from_millis(ms)),
            distance,
        }
    }

    fn now() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn recent_speakers_come_first_then_the_nearest() {
        let candidates = [
            candidate(1, None, Some(1.0)),
            candidate(2, Some(100), Some(20.0)),
            candidate(3, Some(10_000), Some(2.0)),
            candidate(4, Some(500), Some(5.0)),
            candidate(5, None, None),
        ];
        assert_eq!(choose(3, &candidates, now()), vec![4, 2, 1]);
        assert_eq!(choose(10, &candidates, now()), vec![4, 2, 1, 3, 5]);
    }

    #[test]
    fn speakers_keep_their_slots_and_new_ones_fill_gaps() {
        let mut slots = vec![];
        assert!(assign(&mut slots, &[7, 8], 3));
        assert_eq!(slots, vec![Some(7), Some(8)]);
        // 8 stays where it was; 7's slot is reused by 9.
        assert!(assign(&mut slots, &[9, 8], 3));
        assert_eq!(slots, vec![Some(9), Some(8)]);
        assert!(!assign(&mut slots, &[8, 9], 3));
        // Beyond the limit nothing more is opened.
        assert!(assign(&mut slots, &[8, 9, 10, 11], 3));
        assert_eq!(slots, vec![Some(9), Some(8), Some(10)]);
        // A speaker who goes away frees its slot.
        assert!(assign(&mut slots, &[10], 3));
        assert_eq!(slots, vec![None, None, Some(10)]);
    }

    #[test]
    fn speech_starts_with_a_loud_frame_and_ends_after_the_hangover_or_a_mute() {
        let start = now();
        let mut speech = Speech::default();
        assert_eq!(speech.update(start), None, "silence stays silence");
        speech.heard(start);
        assert_eq!(speech.update(start), Some(true));
        assert_eq!(speech.update(start + SPEECH_HANGOVER / 2), None);
        assert_eq!(speech.update(start + SPEECH_HANGOVER), Some(false));
        speech.heard(start + SPEECH_HANGOVER * 2);
        assert_eq!(speech.update(start + SPEECH_HANGOVER * 2), Some(true));
        assert!(speech.silence(), "a mute ends reported speech");
        assert!(!speech.is_speaking());
        assert_eq!(speech.last_spoke(), None);
        assert_eq!(speech.update(start + SPEECH_HANGOVER * 2), None);
    }
}
