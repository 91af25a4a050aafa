//! Process-wide counters, rendered for Prometheus at `/metrics`.
//!
//! Counting is a relaxed atomic add, cheap enough for the per-frame paths of the
//! socket and room code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::http::StatusCode;

/// A count that only grows.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level that goes up and down (open connections, active rooms).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bucket edges of [`LatencyHistogram`], in microseconds: 50 µs steps
/// to 0.25 ms, then 0.25 ms steps to 10 ms (so a 5 ms target is resolved,
/// never stood in for by a wide bucket's edge), then a coarse tail.
pub const LATENCY_BUCKETS_US: [u64; 50] = latency_buckets();

const fn latency_buckets() -> [u64; 50] {
    let mut edges = [0u64; 50];
    let mut i = 0;
    while i < 4 {
        edges[i] = 50 * (i as u64 + 1);
        i += 1;
    }
    while i < 44 {
        edges[i] = 250 * (i as u64 - 3);
        i += 1;
    }
    let tail = [12_500, 15_000, 20_000, 30_000, 50_000, 100_000];
    while i < 50 {
        edges[i] = tail[i - 44];
        i += 1;
    }
    edges
}

/// A Prometheus histogram of durations with fixed buckets.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, elapsed: std::time::Duration) {
        let us = elapsed.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_US.partition_point(|&edge| edge < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (index, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS_US
                .get(index)
                .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(out, "roomscale_{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "roomscale_{name}_sum {sum}");
        let _ = writeln!(out, "roomscale_{name}_count {cumulative}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Rooms with a running actor.
    pub rooms_active: Gauge,
    /// WebSocket frames received and sent, and their payload bytes.
    pub frames_in: Counter,
    pub frames_out: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Poses forwarded to other members, and poses dropped because a newer one
    /// replaced them before a slow client could take them.
    pub poses_relayed: Counter,
    pub poses_dropped: Counter,
    /// Object poses forwarded to members, and object poses ignored because
    /// their sender did not hold (or throw) the object.
    pub object_poses_relayed: Counter,
    pub object_poses_ignored: Counter,
    /// Voice peer connections in the SFU.
    pub voice_peers: Gauge,
    /// Audio frames sent to listeners (one per down-track), and datagrams
    /// the voice socket could not send (its buffer was full).
    pub voice_frames_forwarded: Counter,
    pub voice_datagrams_dropped: Counter,
    /// From reading a voice datagram off the socket to its last forwarded
    /// copy being sent (time it waited in the socket before is not in it).
    pub voice_forward_latency: LatencyHistogram,
    /// Errors by kind (e.g. an [`roomscale_protocol::events::ErrorCode`] name).
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// HTTP responses by status class: index 0 is 1xx, 4 is 5xx.
    http_responses: [Counter; 5],
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts one error of this kind. Kinds are a small fixed set of names,
    /// `snake_case`, used as a Prometheus label value.
    pub fn error(&self, kind: &'static str) {
        let mut errors = self
            .errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *errors.entry(kind).or_default() += 1;
    }

    pub fn errors(&self, kind: &str) -> u64 {
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        errors.get(kind).copied().unwrap_or(0)
    }

    pub fn http_response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.http_responses[class].inc();
    }

    /// All metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauges = [
            (
                "connections",
                "Open WebSocket connections.",
                &self.connections,
            ),
            (
                "rooms_active",
                "Rooms with a running room actor.",
                &self.rooms_active,
            ),
            (
                "voice_peers",
                "Voice peer connections in the SFU.",
                &self.voice_peers,
            ),
        ];
        for (name, help, gauge) in gauges {
            metric_header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "roomscale_{name} {}", gauge.get());
        }
        let counters = [
            (
                "frames_in_total",
                "WebSocket frames received.",
                &self.frames_in,
            ),
            (
                "frames_out_total",
                "WebSocket frames sent.",
                &self.frames_out,
            ),
            (
                "bytes_in_total",
                "WebSocket payload bytes received.",
                &self.bytes_in,
            ),
            (
                "bytes_out_total",
                "WebSocket payload bytes sent.",
                &self.bytes_out,
            ),
            (
                "poses_relayed_total",
                "Avatar poses forwarded to room members.",
                &self.poses_relayed,
            ),
            (
                "poses_dropped_total",
                "Avatar poses dropped because a newer pose replaced them.",
                &self.poses_dropped,
            ),
            (
                "object_poses_relayed_total",
                "Object poses forwarded to room members.",
                &self.object_poses_relayed,
            ),
            (
                "object_poses_ignored_total",
                "Object poses ignored because their sender did not hold or throw the object.",
                &self.object_poses_ignored,
            ),
            (
                "voice_frames_forwarded_total",
                "Audio frames forwarded to listeners (one per down-track).",
                &self.voice_frames_forwarded,
            ),
            (
                "voice_datagrams_dropped_total",
                "Voice datagrams not sent because the socket buffer was full.",
                &self.voice_datagrams_dropped,
            ),
        ];
        for (name, help, counter) in counters {
            metric_header(&mut out, name, help, "counter");
            let _ = writeln!(out, "roomscale_{name} {}", counter.get());
        }

        metric_header(
            &mut out,
            "voice_forward_latency_seconds",
            "From reading a voice datagram off the socket to its last forwarded copy being sent.",
            "histogram",
        );
        self.voice_forward_latency
            .render(&mut out, "voice_forward_latency_seconds");

        metric_header(&mut out, "errors_total", "Errors by kind.", "counter");
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (kind, count) in errors.iter() {
            let _ = writeln!(
                out,
                "roomscale_errors_total{{kind=\"{}\"}} {count}",
                label(kind)
            );
        }
        drop(errors);

        metric_header(
            &mut out,
            "http_responses_total",
            "HTTP responses by status class.",
            "counter",
        );
        for (i, counter) in self.http_responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "roomscale_http_responses_total{{status=\"{}xx\"}} {}",
                i + 1,
                counter.get()
            );
        }
        out
    }
}

fn metric_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP roomscale_{name} {help}");
    let _ = writeln!(out, "# TYPE roomscale_{name} {kind}");
}

/// A label value escaped as the exposition format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let metrics = Metrics::new();
        metrics.connections.inc();
        metrics.connections.inc();
        metrics.connections.dec();
        metrics.frames_in.add(3);
        metrics.error("invalid_payload");
        metrics.error("invalid_payload");
        metrics.http_response(StatusCode::NOT_FOUND);
        let text = metrics.render();
        for line in [
            "# TYPE roomscale_connections gauge",
            "roomscale_connections 1",
            "# TYPE roomscale_frames_in_total counter",
            "roomscale_frames_in_total 3",
            "roomscale_errors_total{kind=\"invalid_payload\"} 2",
            "roomscale_http_responses_total{status=\"4xx\"} 1",
            "roomscale_http_responses_total{status=\"2xx\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(metrics.errors("invalid_payload"), 2);
    }

    #[test]
    fn voice_latency_buckets_resolve_quarter_milliseconds_around_5_ms() {
        assert!(LATENCY_BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
        for edge in [4_500, 4_750, 5_000, 5_250, 10_000] {
            assert!(LATENCY_BUCKETS_US.contains(&edge), "{edge} µs is an edge");
        }
        let histogram = LatencyHistogram::default();
        histogram.record(std::time::Duration::from_micros(4_800));
        histogram.record(std::time::Duration::from_micros(5_000));
        histogram.record(std::time::Duration::from_micros(5_001));
        histogram.record(std::time::Duration::from_secs(1));
        let mut text = String::new();
        histogram.render(&mut text, "voice_forward_latency_seconds");
        for line in [
            "roomscale_voice_forward_latency_seconds_bucket{le=\"0.00475\"} 0",
            "roomscale_voice_forward_latency_seconds_bucket{le=\"0.005\"} 2",
            "roomscale_voice_forward_latency_seconds_bucket{le=\"0.00525\"} 3",
            "roomscale_voice_forward_latency_seconds_bucket{le=\"+Inf\"} 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
