//! Which speakers each listener hears, and on which of its slots.
//!
//! A listener's peer connection carries at most `limit` outgoing audio tracks
//! ("slots"). When more people than that talk in one room, each listener gets
//! those who spoke most recently, nearest first, then the nearest of the rest.
//! Assignments are sticky: a speaker keeps its slot while it stays chosen, so a
//! track only changes voice when the choice really changes.
//!
//! Plain logic with time as an input; the SFU feeds it.

use std::time::{Duration, Instant};

use crate::room::MemberId;

/// Someone who spoke within this long still counts as an active speaker.
pub const RECENT_SPEECH: Duration = Duration::from_secs(2);

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
}
