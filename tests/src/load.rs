//! Pure parts of the room load benchmark (`src/bin/room-load.rs`): the latency
//! histogram, the send time carried inside a pose, the verdict on one load step
//! and the parsers for what Linux reports about a process. No I/O here, so all
//! of it is unit-tested.

use roomscale_protocol::pose::{AvatarPose, Joint, POSE_BYTES};

/// Send times travel modulo this many microseconds (500 s), which keeps the
/// millisecond part inside the head's 20-bit, +-524.287 m range.
pub const TIME_MODULUS_US: u64 = 500_000_000;

/// A pose whose head position carries `t_us` (microseconds on the sender's
/// clock): x = whole milliseconds modulo 500 s, y = the microseconds left over,
/// both in millimetres so that quantization loses nothing. Hands sit at the head.
pub fn pose_carrying_time(t_us: u64) -> AvatarPose {
    let t = t_us % TIME_MODULUS_US;
    let head = Joint {
        position: [(t / 1000) as f32 / 1000.0, (t % 1000) as f32 / 1000.0, 0.0],
        orientation: [0.0, 0.0, 0.0, 1.0],
    };
    AvatarPose {
        head,
        left: head,
        right: head,
        flags: Default::default(),
    }
}

/// The send time (modulo [`TIME_MODULUS_US`]) carried by an encoded pose made
/// from [`pose_carrying_time`], read straight from the bit stream: head x and y
/// are bits 20..40 and 40..60, offset-binary millimetres. About a nanosecond,
/// where a full `decode_pose` costs tens.
pub fn carried_time_us(pose: &[u8]) -> u64 {
    let word = u64::from_le_bytes(pose[..8].try_into().expect("a pose is 31 bytes"));
    let field = |shift: u32| ((word >> shift) & 0xF_FFFF) as i64 - (1 << 19);
    let ms = field(20).rem_euclid((TIME_MODULUS_US / 1000) as i64) as u64;
    let us = field(40).clamp(0, 999) as u64;
    ms * 1000 + us
}

/// Microseconds from a carried send time to `now_us`, across the modulus wrap.
pub fn latency_us(now_us: u64, carried_us: u64) -> u64 {
    (now_us % TIME_MODULUS_US + TIME_MODULUS_US - carried_us) % TIME_MODULUS_US
}

/// The send times of every pose in a batch payload's pose area but those of
/// `own_slot`: a room sends every member the same batch, and each skips its
/// own pose in it.
pub fn batch_times(poses: &[u8], own_slot: Option<u16>) -> impl Iterator<Item = u64> + '_ {
    poses
        .chunks_exact(POSE_BYTES)
        .filter(move |pose| Some(u16::from_le_bytes([pose[0], pose[1]])) != own_slot)
        .map(carried_time_us)
}

/// A latency histogram: fixed 20 µs buckets up to 200 ms, one overflow bucket,
/// the exact maximum. Percentiles are the upper edge of the bucket holding the
/// rank (never optimistic by more than nothing, pessimistic by < 20 µs).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u64,
    max_us: u64,
}

const BUCKET_US: u64 = 20;
const BUCKETS: usize = 10_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS + 1],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        let bucket = ((us / BUCKET_US) as usize).min(BUCKETS);
        self.counts[bucket] += 1;
        self.total += 1;
        self.sum_us += us;
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    pub fn mean_us(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1) by nearest rank, in microseconds; 0
    /// when empty. Overflowed values report the exact maximum.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                if bucket == BUCKETS {
                    return self.max_us;
                }
                return ((bucket as u64 + 1) * BUCKET_US).min(self.max_us);
            }
        }
        self.max_us
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.quantile_us(q) as f64 / 1000.0
    }

    /// The histogram as JSON, for a generator process to hand its figures to
    /// the controller: only the buckets that hold something, as `[index, count]`.
    pub fn to_json(&self) -> serde_json::Value {
        let buckets: Vec<[u64; 2]> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(bucket, count)| [bucket as u64, *count])
            .collect();
        serde_json::json!({
            "buckets": buckets,
            "sum_us": self.sum_us,
            "max_us": self.max_us,
        })
    }

    /// Reads what [`Histogram::to_json`] wrote; `None` if it is not that.
    pub fn from_json(value: &serde_json::Value) -> Option<Histogram> {
        let mut histogram = Histogram::default();
        for pair in value["buckets"].as_array()? {
            let bucket = usize::try_from(pair[0].as_u64()?).ok()?;
            let count = pair[1].as_u64()?;
            *histogram.counts.get_mut(bucket)? += count;
            histogram.total += count;
        }
        histogram.sum_us = value["sum_us"].as_u64()?;
        histogram.max_us = value["max_us"].as_u64()?;
        Some(histogram)
    }
}

/// Which cores a load run uses: the server's (one runtime worker each) and
/// one per generator process, none shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePlan {
    pub server: Vec<usize>,
    pub generators: Vec<usize>,
}

impl CorePlan {
    /// The server on `server_cores` cores from `first_server` up, and
    /// `generator_cores` generator processes on the cores from
    /// `first_generator` (default: just past the server's) up, on a machine
    /// with `available` cores.
    pub fn new(
        server_cores: usize,
        generator_cores: usize,
        first_server: usize,
        first_generator: Option<usize>,
        available: usize,
    ) -> Result<CorePlan, String> {
        if server_cores == 0 || generator_cores == 0 {
            return Err("the server and the generator need at least one core each".into());
        }
        let server: Vec<usize> = (first_server..first_server + server_cores).collect();
        let first_generator = first_generator.unwrap_or(first_server + server_cores);
        let generators: Vec<usize> = (first_generator..first_generator + generator_cores).collect();
        let needed = server.iter().chain(&generators).max().map_or(0, |c| c + 1);
        if let Some(shared) = generators.iter().find(|c| server.contains(c)) {
            return Err(format!(
                "core {shared} would hold both the server and a generator; the two must not \
                 compete for a core"
            ));
        }
        if needed > available {
            return Err(format!(
                "{server_cores} server core(s) and {generator_cores} generator core(s) need cores \
                 0..{} but this machine has {available}",
                needed - 1
            ));
        }
        Ok(CorePlan { server, generators })
    }

    /// The server's cores as `taskset -c` takes them.
    pub fn server_list(&self) -> String {
        cpu_list(&self.server)
    }
}

/// Cores as `taskset -c` takes them: `0`, `0,1,2`.
pub fn cpu_list(cores: &[usize]) -> String {
    cores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The number of cores a Linux CPU list names (`0-3,6,8-9` -> 7), as in
/// `/sys/devices/system/cpu/online`.
pub fn parse_cpu_count(list: &str) -> Option<usize> {
    let mut count = 0;
    for range in list.trim().split(',') {
        count += match range.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (low.parse::<usize>().ok()?, high.parse::<usize>().ok()?);
                high.checked_sub(low)? + 1
            }
            None => {
                range.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(count)
}

/// Rooms `0..rooms` dealt to `generators` processes in turn: which rooms each holds.
pub fn deal_rooms(rooms: usize, generators: usize) -> Vec<Vec<usize>> {
    let generators = generators.max(1);
    let mut dealt = vec![Vec::new(); generators];
    for room in 0..rooms {
        dealt[room % generators].push(room);
    }
    dealt
}

/// Pass limits for one load step.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Relay latency p99 must stay below this.
    pub relay_p99_ms: f64,
    /// Relay latency median may rise by at most this much across the window
    /// (first second to last): more means a queue is building.
    pub backlog_growth_ms: f64,
    /// Share of the expected poses (sent x other members) that must arrive.
    pub min_delivered: f64,
    /// The generator must keep its schedule: send lag p99 below this...
    pub generator_lag_p99_ms: f64,
    /// ...and its own CPU below this share of its core.
    pub generator_cpu: f64,
    /// Server CPU share from which the server counts as saturated.
    pub server_saturated_cpu: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            relay_p99_ms: 20.0,
            backlog_growth_ms: 5.0,
            min_delivered: 0.95,
            generator_lag_p99_ms: 5.0,
            generator_cpu: 0.90,
            server_saturated_cpu: 0.95,
        }
    }
}

/// What one step measured, as far as the verdict needs it.
#[derive(Debug, Clone, Default)]
pub struct StepFigures {
    pub relay_p99_ms: f64,
    /// Median relay latency in each one-second slice of the window.
    pub relay_p50_per_slice_ms: Vec<f64>,
    /// Poses received / (poses sent x (room size - 1)).
    pub delivered: f64,
    pub generator_lag_p99_ms: f64,
    /// Generator CPU time / wall time, 1.0 = its whole core.
    pub generator_cpu: f64,
    /// Clients whose socket closed or failed during the step.
    pub disconnected: u64,
    /// Server CPU time / wall time, 1.0 = its whole core.
    pub server_cpu: f64,
}

/// Why a step did not hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The load generator could not keep up: not a server limit.
    Generator(String),
    /// The server could not keep up.
    Server(String),
}

impl Failure {
    pub fn reason(&self) -> &str {
        match self {
            Failure::Generator(r) | Failure::Server(r) => r,
        }
    }
}

/// Judges a step. Server symptoms (latency, backlog, loss, disconnects) count
/// against the server unless the generator was saturated while the server still
/// had CPU to spare: then the generator's lateness explains them. A saturated
/// generator with no server symptoms still stops the ramp, as the next step
/// would not get its nominal load.
pub fn judge(f: &StepFigures, limits: &Limits) -> Result<(), Failure> {
    let server = server_symptom(f, limits);
    let generator = generator_symptom(f, limits);
    match (server, generator) {
        (None, None) => Ok(()),
        (None, Some(g)) => Err(Failure::Generator(g)),
        (Some(s), Some(g)) if f.server_cpu < limits.server_saturated_cpu => {
            Err(Failure::Generator(format!(
                "{g} (and {s}, with the server at {:.0}% CPU)",
                f.server_cpu * 100.0
            )))
        }
        (Some(s), Some(g)) => Err(Failure::Server(format!(
            "{s} at {:.0}% CPU (the generator was late too: {g})",
            f.server_cpu * 100.0
        ))),
        (Some(s), None) => Err(Failure::Server(s)),
    }
}

fn generator_symptom(f: &StepFigures, limits: &Limits) -> Option<String> {
    if f.generator_lag_p99_ms >= limits.generator_lag_p99_ms {
        return Some(format!(
            "generator send lag p99 {:.1} ms >= {:.1} ms",
            f.generator_lag_p99_ms, limits.generator_lag_p99_ms
        ));
    }
    if f.generator_cpu >= limits.generator_cpu {
        return Some(format!(
            "generator CPU {:.0}% >= {:.0}% of its core",
            f.generator_cpu * 100.0,
            limits.generator_cpu * 100.0
        ));
    }
    None
}

fn server_symptom(f: &StepFigures, limits: &Limits) -> Option<String> {
    if f.disconnected > 0 {
        return Some(format!("{} clients disconnected", f.disconnected));
    }
    if f.relay_p99_ms >= limits.relay_p99_ms {
        return Some(format!(
            "relay latency p99 {:.1} ms >= {:.1} ms",
            f.relay_p99_ms, limits.relay_p99_ms
        ));
    }
    if let (Some(first), Some(last)) = (
        f.relay_p50_per_slice_ms.first(),
        f.relay_p50_per_slice_ms.last(),
    ) && last - first > limits.backlog_growth_ms
    {
        return Some(format!(
            "backlog: relay latency median grew {first:.1} -> {last:.1} ms during the window"
        ));
    }
    if f.delivered < limits.min_delivered {
        return Some(format!(
            "only {:.1}% of expected poses delivered (< {:.0}%)",
            f.delivered * 100.0,
            limits.min_delivered * 100.0
        ));
    }
    None
}

/// utime + stime, in clock ticks, from the contents of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces or ')': the fields
    // that follow the last ')' are state (3), ..., utime (14), stime (15).
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   value kB` line of `/proc/PID/status`, in bytes (or the bare value
/// for lines without a unit).
pub fn parse_status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        Some(match parts.next() {
            Some("kB") => value * 1024,
            _ => value,
        })
    })
}

/// The soft "Max open files" limit from `/proc/self/limits`; `None` = unlimited.
pub fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The busy and total jiffies of one CPU (`cpuN` line) of `/proc/stat`.
pub fn parse_cpu_jiffies(proc_stat: &str, cpu: usize) -> Option<(u64, u64)> {
    let name = format!("cpu{cpu}");
    let line = proc_stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest
    // time is already inside user.
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// Status code and body of a complete HTTP/1.1 response without chunking.
pub fn parse_http_response(raw: &[u8]) -> Option<(u16, &[u8])> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status_line = std::str::from_utf8(&raw[..head_end]).ok()?.lines().next()?;
    let code = status_line.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, &raw[head_end + 4..]))
}

/// The address in the server's `listening on http://ADDR` log line.
pub fn parse_listening_line(line: &str) -> Option<std::net::SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    rest.split(|c: char| c.is_whitespace() || c == '"')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomscale_protocol::pose::{decode_pose, encode_batch, encode_pose};

    #[test]
    fn send_times_survive_the_pose_codec_to_the_microsecond() {
        for t in [
            0,
            1,
            999,
            1_000,
            33_333,
            123_456_789,
            TIME_MODULUS_US - 1,
            TIME_MODULUS_US + 42_017,
        ] {
            let bytes = encode_pose(7, &pose_carrying_time(t));
            assert_eq!(carried_time_us(&bytes), t % TIME_MODULUS_US, "t = {t}");
            // The fast reader agrees with the real decoder.
            let (slot, pose) = decode_pose(&bytes).unwrap();
            assert_eq!(slot, 7);
            let decoded = (pose.head.position[0] * 1000.0).round() as u64 * 1000
                + (pose.head.position[1] * 1000.0).round() as u64;
            assert_eq!(decoded, t % TIME_MODULUS_US);
        }
    }

    #[test]
    fn batches_yield_every_send_time() {
        let times = [5_000_000u64, 5_000_250, 5_033_333];
        let poses: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| encode_pose(i as u16 + 1, &pose_carrying_time(t)))
            .collect();
        let mut payload = Vec::new();
        encode_batch(&mut payload, 0, poses.iter());
        let batch = roomscale_protocol::pose::decode_batch(&payload).unwrap();
        assert_eq!(batch.len(), 3);
        let got: Vec<u64> = batch_times(&payload[8..], None).collect();
        assert_eq!(got, times);
        let others: Vec<u64> = batch_times(&payload[8..], Some(2)).collect();
        assert_eq!(others, [times[0], times[2]], "slot 2's own pose is skipped");
    }

    #[test]
    fn latency_crosses_the_modulus_wrap() {
        assert_eq!(latency_us(1_500, 1_000), 500);
        let sent = TIME_MODULUS_US - 300;
        assert_eq!(latency_us(TIME_MODULUS_US + 200, sent), 500);
        assert_eq!(latency_us(3 * TIME_MODULUS_US + 200, sent), 500);
    }

    #[test]
    fn histograms_cross_a_process_boundary_as_json_unchanged() {
        let mut h = Histogram::default();
        for us in [0, 15, 20, 999, 5_000, 250_000] {
            h.record(us);
        }
        let text = h.to_json().to_string();
        let back = Histogram::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.count(), h.count());
        assert_eq!(back.max_us(), 250_000);
        assert_eq!(back.mean_us(), h.mean_us());
        for q in [0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(back.quantile_us(q), h.quantile_us(q), "q {q}");
        }
        assert!(Histogram::from_json(&serde_json::json!({"buckets": [[99_999, 1]]})).is_none());
        assert!(Histogram::from_json(&serde_json::json!("nonsense")).is_none());
    }

    #[test]
    fn core_plans_keep_the_server_and_generators_apart() {
        let plan = CorePlan::new(1, 1, 0, None, 2).unwrap();
        assert_eq!((plan.server, plan.generators), (vec![0], vec![1]));
        let plan = CorePlan::new(2, 4, 0, None, 8).unwrap();
        assert_eq!(plan.server_list(), "0,1");
        assert_eq!(plan.generators, vec![2, 3, 4, 5]);
        // The environment's old single-core settings still place both.
        let plan = CorePlan::new(1, 1, 1, Some(0), 2).unwrap();
        assert_eq!((plan.server, plan.generators), (vec![1], vec![0]));

        let error = CorePlan::new(2, 1, 0, None, 2).unwrap_err();
        assert!(error.contains("this machine has 2"), "{error}");
        let error = CorePlan::new(1, 1, 0, Some(0), 4).unwrap_err();
        assert!(error.contains("both the server and a generator"), "{error}");
        assert!(CorePlan::new(0, 1, 0, None, 4).is_err());
    }

    #[test]
    fn cpu_lists_count_their_cores() {
        assert_eq!(parse_cpu_count("0-1\n"), Some(2));
        assert_eq!(parse_cpu_count("0"), Some(1));
        assert_eq!(parse_cpu_count("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_count("3-1"), None);
        assert_eq!(parse_cpu_count(""), None);
    }

    #[test]
    fn rooms_are_dealt_in_turn() {
        assert_eq!(deal_rooms(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(deal_rooms(1, 3), vec![vec![0], vec![], vec![]]);
        assert_eq!(deal_rooms(3, 1), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn histogram_quantiles_by_nearest_rank() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(0.99), 0);
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        assert_eq!(h.count(), 100);
        // 50th of 100 values is 50 ms; its bucket's upper edge is 50.02 ms.
        assert_eq!(h.quantile_us(0.5), 50_020);
        assert_eq!(h.quantile_us(0.99), 99_020);
        assert_eq!(h.quantile_us(1.0), 100_000, "capped at the true maximum");
        assert_eq!(h.max_us(), 100_000);
        assert!((h.mean_us() - 50_500.0).abs() < 1e-9);
        // Beyond the range, the exact maximum.
        h.record(900_000);
        assert_eq!(h.quantile_us(1.0), 900_000);
        let mut other = Histogram::default();
        other.record(7);
        h.merge(&other);
        assert_eq!(h.count(), 102);
        assert_eq!(h.quantile_us(0.0), 20, "the smallest bucket's edge");
    }

    fn healthy() -> StepFigures {
        StepFigures {
            relay_p99_ms: 4.0,
            relay_p50_per_slice_ms: vec![1.0, 1.2, 0.9, 1.1, 1.0],
            delivered: 0.99,
            generator_lag_p99_ms: 0.5,
            generator_cpu: 0.4,
            disconnected: 0,
            server_cpu: 0.5,
        }
    }

    #[test]
    fn verdicts_name_the_limit_and_blame_the_right_side() {
        let limits = Limits::default();
        assert_eq!(judge(&healthy(), &limits), Ok(()));

        let slow = StepFigures {
            relay_p99_ms: 25.0,
            ..healthy()
        };
        assert!(matches!(judge(&slow, &limits), Err(Failure::Server(r)) if r.contains("p99")));

        let growing = StepFigures {
            relay_p50_per_slice_ms: vec![2.0, 4.0, 6.0, 8.0, 10.0],
            ..healthy()
        };
        assert!(
            matches!(judge(&growing, &limits), Err(Failure::Server(r)) if r.contains("backlog"))
        );

        let lossy = StepFigures {
            delivered: 0.5,
            ..healthy()
        };
        assert!(matches!(judge(&lossy, &limits), Err(Failure::Server(_))));

        // A late generator is blamed for bad latency while the server had CPU
        // to spare, the server when it was saturated.
        let late = StepFigures {
            generator_lag_p99_ms: 12.0,
            relay_p99_ms: 40.0,
            ..healthy()
        };
        assert!(matches!(judge(&late, &limits), Err(Failure::Generator(_))));
        let saturated = StepFigures {
            server_cpu: 0.99,
            ..late
        };
        assert!(
            matches!(judge(&saturated, &limits), Err(Failure::Server(r)) if r.contains("p99") && r.contains("late too"))
        );
        let late_but_fine = StepFigures {
            generator_lag_p99_ms: 12.0,
            server_cpu: 0.99,
            ..healthy()
        };
        assert!(matches!(
            judge(&late_but_fine, &limits),
            Err(Failure::Generator(_))
        ));
        let busy = StepFigures {
            generator_cpu: 0.97,
            ..healthy()
        };
        assert!(matches!(judge(&busy, &limits), Err(Failure::Generator(_))));
    }

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (tokio (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    150 37 0 0 20 0 3 0 12345 1000000 250 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(187));

        let status =
            "Name:\troomscale-serv\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(parse_status_field(status, "VmRSS"), Some(10_485_760));
        assert_eq!(parse_status_field(status, "Threads"), Some(3));
        assert_eq!(parse_status_field(status, "VmSwap"), None);

        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));

        let proc_stat = "cpu  10 0 10 100 0 0 0 0 0 0\n\
                         cpu0 5 1 4 50 2 1 1 0 0 0\n\
                         cpu1 5 0 6 50 0 0 0 0 0 0\n";
        assert_eq!(parse_cpu_jiffies(proc_stat, 0), Some((12, 64)));
        assert_eq!(parse_cpu_jiffies(proc_stat, 1), Some((11, 61)));
        assert_eq!(parse_cpu_jiffies(proc_stat, 2), None);
    }

    #[test]
    fn http_responses_and_the_listening_line_parse() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n{\"id\":\"x\"}";
        assert_eq!(
            parse_http_response(raw),
            Some((201, &b"{\"id\":\"x\"}"[..]))
        );
        assert_eq!(parse_http_response(b"HTTP/1.1 200 OK\r\n"), None);

        let line = "2026-01-01T00:00:00Z  INFO roomscale_server: listening on http://127.0.0.1:40123 database=sqlite:///tmp/x";
        assert_eq!(
            parse_listening_line(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(parse_listening_line("INFO created a new secret key"), None);
    }
}
