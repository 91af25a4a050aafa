//! The janitor: one task that, every hour, purges rooms deleted more than
//! [`DELETED_ROOMS_KEPT`] ago (with their events) and trims chat history by the
//! retention flags (`--history-days`, `--history-max-events`; 0 keeps all).
//! It stops when the server shuts down.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ErrorChain;
use crate::storage::{DELETED_ROOMS_KEPT, Result};
use crate::time::unix_millis;
use crate::{Config, Store};

/// How often the janitor sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub rooms: u64,
    pub events: u64,
}

/// Purges what is due at `now`: rooms deleted before `now - 7 days`, and history
/// beyond the configured age and count.
pub async fn sweep(store: &Store, config: &Config, now: SystemTime) -> Result<Swept> {
    let rooms = store
        .purge_deleted_rooms(unix_millis(now - DELETED_ROOMS_KEPT))
        .await?;
    let older_than_ms = (config.history_days > 0).then(|| {
        unix_millis(now - Duration::from_secs(u64::from(config.history_days) * 24 * 60 * 60))
    });
    let keep_per_room =
        (config.history_max_events > 0).then_some(u64::from(config.history_max_events));
    let events = store.purge_history(older_than_ms, keep_per_room).await?;
    Ok(Swept { rooms, events })
}

/// Starts the janitor: a sweep now, then one every [`SWEEP_INTERVAL`], until
/// `shutdown` becomes true.
pub fn spawn(
    store: Store,
    config: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait_for(|stopping| *stopping) => break,
            }
            match sweep(&store, &config, SystemTime::now()).await {
                Ok(Swept {
                    rooms: 0,
                    events: 0,
                }) => {}
                Ok(swept) => tracing::info!(
                    rooms = swept.rooms,
                    events = swept.events,
                    "purged deleted rooms and old history"
                ),
                Err(error) => tracing::warn!(
                    error = %ErrorChain(&error),
                    "the hourly purge of deleted rooms and old history failed; it is tried again in an hour"
                ),
            }
        }
    })
}
