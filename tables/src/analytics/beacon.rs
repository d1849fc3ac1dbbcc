//! Beacon scoring for one (program identity, destination) key (docs/design.md, "Beacons").
//!
//! * Sessions: connection starts closer than `session_gap_seconds` (2 s) merge — parallel
//!   connections of one check-in — but never closer than a quarter of the key's own rough
//!   period (the 90th percentile of its start gaps), so a 2 s beacon keeps its beats.
//! * Periods from `min_median_interval_seconds` (1 s) up are scored: implants' fast modes check
//!   in every 1–5 s, and a timer that regular is no more benign for being fast. Below
//!   `fast_period_seconds` (10 s) a key must also be machine-regular (dispersion ≤ 0.25):
//!   interactive and build bursts are fast too, but their gaps scatter (docs/beacon-eval.md).
//! * Timing T = 0.5·T_disp + 0.25·T_skew + 0.25·T_cv over the intervals between sessions:
//!   `T_disp = clamp((0.6 − MAD/median)/0.5)` (robust to missed beats and retries),
//!   Bowley skew only when the IQR exceeds 5 % of the median (a relative gate, so short and long
//!   periods are treated alike), and a CV with the top and bottom 10 % trimmed.
//! * Size S: RITA's statistical score on bytes out and in, the better of the two.
//! * Presence H: RITA's histogram and duration scores, but over the hours in which the host had
//!   any traffic at all, so laptop sleep is not irregularity.
//! * raw = 0.6·T + 0.2·S + 0.2·H. Context multipliers are applied by the caller.

use super::rita;
use super::stats::{clamp01, mad, mean, median, quartiles, sorted, std_dev};

/// Tunables (config `[beacons]`), defaults from the design.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BeaconParams {
    /// Starts closer than this are one session (at most a quarter of the key's rough period).
    pub session_gap_seconds: f64,
    /// Fewer sessions than this: not scored.
    pub min_sessions: usize,
    /// Fewer than this (but at least `min_sessions`): confidence "low".
    pub normal_sessions: usize,
    /// Keys whose median interval is shorter are streaming, not beacons: the smallest scored
    /// period.
    pub min_median_interval_seconds: f64,
    /// Below this period a key must be machine-regular to be scored: bursts of interactive or
    /// build traffic are fast too, but their gaps scatter.
    pub fast_period_seconds: f64,
    /// The largest dispersion (MAD / median) a key faster than `fast_period_seconds` may have.
    pub fast_max_dispersion: f64,
    /// More well-known periodic services, `name-suffix:port,port` (`*` for any port), beside
    /// `tables/data/periodic-services.txt`.
    pub known_services: Vec<String>,
    /// Context multiplier for a beacon to a well-known periodic service.
    pub known_service_multiplier: f64,
}

impl Default for BeaconParams {
    fn default() -> BeaconParams {
        BeaconParams {
            session_gap_seconds: 2.0,
            min_sessions: 4,
            normal_sessions: 6,
            min_median_interval_seconds: 1.0,
            fast_period_seconds: 10.0,
            fast_max_dispersion: 0.25,
            known_services: Vec::new(),
            known_service_multiplier: 0.5,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BeaconScore {
    pub sessions: usize,
    pub period: f64,
    /// MAD / median of the intervals.
    pub dispersion: f64,
    /// Implied one-sided jitter fraction, 4r/(1+2r).
    pub jitter: f64,
    pub timing: f64,
    pub size: f64,
    pub presence: f64,
    pub raw: f64,
    pub low_confidence: bool,
    /// 95th percentile of the intervals (fallback silence threshold).
    pub p95_interval: f64,
}

/// One connection of a key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conn {
    pub start: f64,
    pub bytes_out: f64,
    pub bytes_in: f64,
}

/// One reading of a long-lived connection's cumulative counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub ts: f64,
    pub sent: f64,
    pub received: f64,
}

/// Check-ins inside one connection, from its counter readings (docs/design.md, "Beacons"):
/// a check-in begins at the reading where bytes sent grew after at least one interval in which
/// they did not; consecutive growing intervals are one check-in, and the bytes received in the
/// quiet interval right after it count as its answer. The first reading normally already holds
/// the connection's opening (the sampler first sees a connection after its handshake), so
/// growth right after it is a check-in; only when the first reading shows nothing sent yet is
/// the first burst the opening, the connection start the `connection` kind times. Received
/// bytes alone never make a check-in: a server's keepalives and pushes are not the program's.
/// The readings must show the quiet: a series in which every interval grew is continuous
/// traffic, however far apart its readings are.
pub fn in_connection_checkins(readings: &[Reading]) -> Vec<Conn> {
    #[derive(PartialEq)]
    enum State {
        Opening,
        Burst,
        Quiet,
    }
    let mut r: Vec<Reading> = readings
        .iter()
        .copied()
        .filter(|r| r.ts.is_finite() && r.sent.is_finite() && r.received.is_finite())
        .collect();
    r.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    r.dedup_by(|later, earlier| later.ts == earlier.ts);
    let mut out: Vec<Conn> = Vec::new();
    let mut state = match r.first() {
        Some(first) if first.sent <= 0.0 => State::Opening,
        _ => State::Quiet,
    };
    for w in r.windows(2) {
        let sent = w[1].sent - w[0].sent;
        // A counter that went backwards was reset (a resumed socket): no growth to count.
        let received = (w[1].received - w[0].received).max(0.0);
        state = match (state, sent > 0.0) {
            (State::Opening, true) => State::Opening,
            (State::Quiet, true) => {
                out.push(Conn {
                    start: w[1].ts,
                    bytes_out: sent,
                    bytes_in: received,
                });
                State::Burst
            }
            (State::Burst, true) => {
                if let Some(last) = out.last_mut() {
                    last.bytes_out += sent;
                    last.bytes_in += received;
                }
                State::Burst
            }
            (State::Burst, false) => {
                if let Some(last) = out.last_mut() {
                    last.bytes_in += received;
                }
                State::Quiet
            }
            (State::Opening | State::Quiet, false) => State::Quiet,
        };
    }
    out
}

/// Merges starts within `gap` seconds; bytes add up.
pub fn sessionize(conns: &[Conn], gap: f64) -> Vec<Conn> {
    let mut v: Vec<Conn> = conns
        .iter()
        .copied()
        .filter(|c| c.start.is_finite())
        .collect();
    v.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut out: Vec<Conn> = Vec::new();
    for c in v {
        match out.last_mut() {
            Some(last) if c.start - last.start <= gap => {
                last.bytes_out += c.bytes_out;
                last.bytes_in += c.bytes_in;
            }
            _ => out.push(c),
        }
    }
    out
}

/// The timing score and its parts for intervals `d` (zeros already dropped).
pub fn timing(d: &[f64]) -> Option<(f64, f64)> {
    let m = median(d)?;
    if m <= 0.0 || d.len() < 3 {
        return None;
    }
    let r = mad(d)? / m;
    let t_disp = clamp01((0.6 - r) / 0.5);
    let (q1, q2, q3) = quartiles(d)?;
    let skew = if q3 - q1 > 0.05 * m && q2 != q1 && q2 != q3 {
        (q1 + q3 - 2.0 * q2) / (q3 - q1)
    } else {
        0.0
    };
    let t_skew = clamp01(1.0 - skew.abs());
    let v = sorted(d);
    let cut = v.len() / 10;
    let trimmed = &v[cut..v.len() - cut];
    let cv = match (std_dev(trimmed), mean(trimmed)) {
        (Some(s), Some(mu)) if mu > 0.0 => s / mu,
        _ => 1.0,
    };
    let t_cv = clamp01(1.0 - cv / 0.6);
    Some((0.5 * t_disp + 0.25 * t_skew + 0.25 * t_cv, r))
}

/// Hour buckets the host was active in, and the key's sessions per active hour.
pub struct Presence<'a> {
    /// Sorted hour indices (epoch / 3600) with any host traffic.
    pub active_hours: &'a [i64],
}

impl Presence<'_> {
    /// 0.5·histogram + 0.5·duration, both RITA's, over active hours only.
    pub fn score(&self, sessions: &[Conn]) -> f64 {
        if self.active_hours.is_empty() || sessions.is_empty() {
            return 0.0;
        }
        let counts: Vec<f64> = self
            .active_hours
            .iter()
            .map(|h| {
                sessions
                    .iter()
                    .filter(|s| (s.start / 3600.0).floor() as i64 == *h)
                    .count() as f64
            })
            .collect();
        let hist = rita::histogram_score(&counts);
        // Coverage: active hours from the first to the last session over all active hours.
        let first = (sessions[0].start / 3600.0).floor() as i64;
        let last = (sessions[sessions.len() - 1].start / 3600.0).floor() as i64;
        let covered = self
            .active_hours
            .iter()
            .filter(|h| **h >= first && **h <= last)
            .count() as f64;
        let coverage = covered / self.active_hours.len() as f64;
        // Consistency: the longest run of consecutive active hours with a session, ideal 12.
        let (mut run, mut best) = (0usize, 0usize);
        for c in &counts {
            run = if *c > 0.0 { run + 1 } else { 0 };
            best = best.max(run);
        }
        let consistency = (best as f64 / 12.0).min(1.0);
        0.5 * hist + 0.5 * clamp01(coverage.max(consistency))
    }
}

/// The merge gap for one key: `configured`, but at most a quarter of the key's rough period
/// (the 90th percentile of the gaps between its connection starts: robust to check-ins that open several connections), so parallel connections of
/// one check-in merge while the beats of a fast beacon do not.
pub fn adaptive_gap(conns: &[Conn], configured: f64) -> f64 {
    let mut starts: Vec<f64> = conns
        .iter()
        .map(|c| c.start)
        .filter(|s| s.is_finite())
        .collect();
    starts.sort_by(f64::total_cmp);
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > 0.0)
        .collect();
    if gaps.len() < 3 {
        return configured;
    }
    match super::stats::percentile(&gaps, 90.0) {
        Some(p75) => configured.min(0.25 * p75),
        None => configured,
    }
}

/// The curated list of well-known periodic services (`tables/data/periodic-services.txt`).
const PERIODIC_SERVICES: &str = include_str!("../../data/periodic-services.txt");

/// One well-known periodic service: a name suffix and its ports (empty: any port).
#[derive(Debug, Clone, PartialEq)]
pub struct KnownService {
    pub suffix: String,
    pub ports: Vec<u16>,
}

fn parse_ports(s: &str) -> Option<Vec<u16>> {
    if s == "*" {
        return Some(Vec::new());
    }
    s.split(',').map(|p| p.trim().parse().ok()).collect()
}

/// The curated list plus the config's own entries (`name-suffix:port,port`). A config entry
/// that does not parse is returned as an error naming it.
pub fn known_services(extra: &[String]) -> Result<Vec<KnownService>, String> {
    let mut out: Vec<KnownService> = PERIODIC_SERVICES
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(KnownService {
                suffix: w.next()?.to_ascii_lowercase(),
                ports: parse_ports(w.next()?)?,
            })
        })
        .collect();
    for e in extra {
        let (name, ports) = e.split_once(':').unwrap_or((e.as_str(), "*"));
        let ports = parse_ports(ports).ok_or_else(|| {
            format!("[beacons] known_services entry {e:?}: ports must be numbers separated by commas, or *")
        })?;
        if name.trim().is_empty() {
            return Err(format!(
                "[beacons] known_services entry {e:?} names no service"
            ));
        }
        out.push(KnownService {
            suffix: name.trim().trim_end_matches('.').to_ascii_lowercase(),
            ports,
        });
    }
    Ok(out)
}

/// Whether a resolved name and port are well-known periodic infrastructure.
pub fn is_known_service(services: &[KnownService], name: &str, port: i64) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    services.iter().any(|s| {
        (name == s.suffix || name.ends_with(&format!(".{}", s.suffix)))
            && (s.ports.is_empty() || s.ports.iter().any(|p| i64::from(*p) == port))
    })
}

/// The context multiplier for a known periodic service: lower for signed code, never below
/// 0.7 for unsigned, ad-hoc or invalid programs.
pub fn known_service_multiplier(configured: f64, signer_class: &str) -> f64 {
    if matches!(signer_class, "unsigned" | "adhoc" | "invalid") {
        configured.max(0.7)
    } else {
        configured
    }
}

/// Scores one key. `None` when it has too few sessions or is too fast to be a beacon.
pub fn score(conns: &[Conn], presence: &Presence<'_>, p: &BeaconParams) -> Option<BeaconScore> {
    let sessions = sessionize(conns, adaptive_gap(conns, p.session_gap_seconds));
    if sessions.len() < p.min_sessions.max(4) {
        return None;
    }
    let d: Vec<f64> = sessions
        .windows(2)
        .map(|w| w[1].start - w[0].start)
        .filter(|x| *x > 0.0)
        .collect();
    let period = median(&d)?;
    if period < p.min_median_interval_seconds {
        return None;
    }
    let (timing, r) = timing(&d)?;
    if period < p.fast_period_seconds && r > p.fast_max_dispersion {
        return None;
    }
    let outs: Vec<f64> = sessions.iter().map(|s| s.bytes_out).collect();
    let ins: Vec<f64> = sessions.iter().map(|s| s.bytes_in).collect();
    let size = rita::statistical_score(&outs, 0.0).max(rita::statistical_score(&ins, 0.0));
    let presence = presence.score(&sessions);
    let raw = clamp01(0.6 * timing + 0.2 * size + 0.2 * presence);
    Some(BeaconScore {
        sessions: sessions.len(),
        period,
        dispersion: r,
        jitter: 4.0 * r / (1.0 + 2.0 * r),
        timing,
        size,
        presence,
        raw,
        low_confidence: sessions.len() < p.normal_sessions,
        p95_interval: super::stats::percentile(&d, 95.0).unwrap_or(period),
    })
}

/// The baseline rule a detection engineer would write first: coefficient of variation of
/// intervals below 0.3 with at least 6 sessions. Reported beside the design in the benchmark.
pub fn cv_rule(conns: &[Conn], gap: f64) -> bool {
    let s = sessionize(conns, gap);
    let d: Vec<f64> = s
        .windows(2)
        .map(|w| w[1].start - w[0].start)
        .filter(|x| *x > 0.0)
        .collect();
    match (std_dev(&d), mean(&d)) {
        (Some(sd), Some(m)) if s.len() >= 6 && m >= 10.0 => sd / m < 0.3,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(starts: &[f64]) -> Vec<Conn> {
        starts
            .iter()
            .map(|s| Conn {
                start: *s,
                bytes_out: 300.0,
                bytes_in: 1200.0,
            })
            .collect()
    }

    /// A deterministic pseudo-random sequence (splitmix64) for test series.
    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn readings(series: &[(f64, f64, f64)]) -> Vec<Reading> {
        series
            .iter()
            .map(|(ts, sent, received)| Reading {
                ts: *ts,
                sent: *sent,
                received: *received,
            })
            .collect()
    }

    #[test]
    fn checkins_inside_a_connection_begin_after_quiet() {
        // Read from before anything was sent, it opens with a burst (0→5: the connection
        // start, not a check-in), goes quiet, then sends at 60 (a two-interval burst) and at
        // 120; the answer at 125 belongs to 120's.
        let r = readings(&[
            (0.0, 0.0, 0.0),
            (5.0, 300.0, 900.0),
            (55.0, 300.0, 900.0),
            (60.0, 400.0, 950.0),
            (65.0, 450.0, 1000.0),
            (115.0, 450.0, 1010.0),
            (120.0, 560.0, 1010.0),
            (125.0, 560.0, 1400.0),
        ]);
        let c = in_connection_checkins(&r);
        assert_eq!(
            c,
            vec![
                Conn {
                    start: 60.0,
                    bytes_out: 150.0,
                    bytes_in: 110.0
                },
                Conn {
                    start: 120.0,
                    bytes_out: 110.0,
                    bytes_in: 390.0
                },
            ]
        );
        // First read after the opening (as the sampler does): growth at once is a check-in.
        let c = in_connection_checkins(&r[1..]);
        assert_eq!(c.iter().map(|c| c.start).collect::<Vec<_>>(), [60.0, 120.0]);
        let c = in_connection_checkins(&r[2..4]);
        assert_eq!(c.iter().map(|c| c.start).collect::<Vec<_>>(), [60.0]);
        // Received bytes alone (a server's keepalives) and a counter reset are no check-ins;
        // out-of-order and duplicate readings are sorted and folded.
        let r = readings(&[
            (60.0, 100.0, 50.0),
            (0.0, 100.0, 0.0),
            (30.0, 100.0, 20.0),
            (30.0, 100.0, 20.0),
            (90.0, 10.0, 50.0),
        ]);
        assert!(in_connection_checkins(&r).is_empty());
        // Every interval grew: continuous traffic is one burst, never a series of check-ins.
        let stream: Vec<(f64, f64, f64)> = (0..500)
            .map(|i| (i as f64 * 5.0, i as f64 * 1000.0, i as f64 * 50_000.0))
            .collect();
        assert!(in_connection_checkins(&readings(&stream)).is_empty());
        assert_eq!(in_connection_checkins(&readings(&stream[1..])).len(), 1);
        assert!(in_connection_checkins(&[]).is_empty());
        assert!(in_connection_checkins(&readings(&[(f64::NAN, 1.0, 1.0)])).is_empty());
    }

    #[test]
    fn a_beacon_inside_one_connection_scores_like_connection_starts() {
        // A 60 s beacon with 20 % one-sided jitter, read every 5 s as the live sampler does:
        // the quantised check-ins keep its period and score as regular; an SSH-like session
        // (keystroke bursts with scattered gaps) read the same way does not.
        let p = BeaconParams::default();
        let hours: Vec<i64> = (0..3).collect();
        let presence = Presence {
            active_hours: &hours,
        };
        let sample = |sends: &[f64]| -> Vec<Reading> {
            let mut out = vec![Reading {
                ts: 0.0,
                sent: 0.0,
                received: 0.0,
            }];
            let mut sent = 0.0;
            let mut i = 0;
            let mut t = 5.0;
            while t <= 3.0 * 3600.0 {
                while i < sends.len() && sends[i] <= t {
                    sent += 300.0;
                    i += 1;
                }
                out.push(Reading {
                    ts: t,
                    sent,
                    received: sent * 2.0,
                });
                t += 5.0;
            }
            out
        };
        let mut u = rng(11);
        let mut t = 2.0;
        let mut beats = Vec::new();
        while t < 3.0 * 3600.0 {
            beats.push(t);
            t += 60.0 * (1.0 - 0.2 * u());
        }
        let c = in_connection_checkins(&sample(&beats));
        assert!(c.len() >= beats.len() - 2, "{} of {}", c.len(), beats.len());
        let s = score(&c, &presence, &p).unwrap();
        assert!((s.period - 55.0).abs() <= 5.0, "{}", s.period);
        assert!(s.raw >= 0.7, "{s:?}");
        let mut keys = Vec::new();
        let mut t = 1.0;
        while t < 3.0 * 3600.0 {
            keys.push(t);
            t += if u() < 0.7 {
                0.3 + u()
            } else {
                -40.0 * (1.0 - u()).ln()
            };
        }
        let ssh = in_connection_checkins(&sample(&keys));
        assert!(ssh.len() > 20);
        assert!(
            score(&ssh, &presence, &p).is_none_or(|s| s.raw < 0.7),
            "interactive session scored as a beacon"
        );
    }

    #[test]
    fn exact_period_scores_one_on_timing() {
        let d = vec![300.0; 20];
        let (t, r) = timing(&d).unwrap();
        assert_eq!((t, r), (1.0, 0.0));
    }

    #[test]
    fn known_series_known_parts() {
        // Intervals 100,100,100,110,90,100,100,100,130,70: median 100, MAD 0, trimmed (drop 70 and
        // 130) CV of [90,100×6,110] = sqrt(200/8)/100 = 0.05.
        let d = [
            100.0, 100.0, 100.0, 110.0, 90.0, 100.0, 100.0, 100.0, 130.0, 70.0,
        ];
        let (t, r) = timing(&d).unwrap();
        assert_eq!(r, 0.0);
        // IQR = 0 (Q1 = Q3 = 100): skew gated to 0 → T_skew 1; T_cv = 1 − 0.05/0.6.
        let expected = 0.5 + 0.25 + 0.25 * (1.0 - 0.05 / 0.6);
        assert!((t - expected).abs() < 1e-12, "{t} vs {expected}");
    }

    #[test]
    fn jittered_beacon_outranks_poisson_of_the_same_rate() {
        // The ordering a constant scorer cannot pass: CS-style 30 % one-sided jitter vs Poisson
        // with the same mean interval, over many seeds.
        let active: Vec<i64> = (0..48).collect();
        let presence = Presence {
            active_hours: &active,
        };
        let p = BeaconParams::default();
        let mut wins = 0;
        for seed in 0..200 {
            let mut u = rng(seed);
            let (mut t1, mut t2) = (0.0, 0.0);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..30 {
                t1 += 300.0 * (1.0 - 0.3 * u());
                a.push(t1);
                t2 += -255.0 * (1.0 - u()).ln(); // same mean as 300·(1 − 0.15)
                b.push(t2);
            }
            let sa = score(&conns(&a), &presence, &p).unwrap();
            let sb = score(&conns(&b), &presence, &p).unwrap();
            if sa.timing > sb.timing {
                wins += 1;
            }
        }
        assert!(
            wins >= 195,
            "beacon outranked Poisson in only {wins}/200 seeds"
        );
    }

    #[test]
    fn gates_sessions_and_edge_cases() {
        let active: Vec<i64> = vec![0];
        let presence = Presence {
            active_hours: &active,
        };
        let p = BeaconParams::default();
        assert!(
            score(&conns(&[0.0, 60.0, 120.0]), &presence, &p).is_none(),
            "3 sessions"
        );
        let four = score(&conns(&[0.0, 60.0, 120.0, 180.0]), &presence, &p).unwrap();
        assert!(four.low_confidence);
        // Parallel connections of one check-in are one session.
        let mut burst = conns(&[0.0, 0.5, 1.0, 60.0, 60.2, 120.0, 180.0, 240.0, 300.0]);
        burst[1].bytes_out = 5.0;
        let s = score(&burst, &presence, &p).unwrap();
        assert_eq!((s.sessions, s.period), (6, 60.0));
        assert!(!s.low_confidence);
        // A 3 s beacon is scored on its merits; sub-second streams are not beacons.
        let fast = score(
            &conns(&(0..50).map(|i| i as f64 * 3.0).collect::<Vec<_>>()),
            &presence,
            &p,
        )
        .unwrap();
        assert_eq!((fast.sessions, fast.period), (50, 3.0));
        assert!(score(
            &conns(&(0..50).map(|i| i as f64 * 0.3).collect::<Vec<_>>()),
            &presence,
            &p
        )
        .is_none());
        // Identical timestamps, NaN, and huge gaps never panic or yield NaN.
        assert!(score(&conns(&[5.0; 10]), &presence, &p).is_none());
        let s = score(&conns(&[0.0, 1e9, 2e9, 3e9, f64::NAN, 4e9]), &presence, &p).unwrap();
        assert!(s.raw.is_finite());
    }

    #[test]
    fn fast_beacons_keep_their_beats_and_parallel_connections_still_merge() {
        let active: Vec<i64> = (0..2).collect();
        let presence = Presence {
            active_hours: &active,
        };
        let p = BeaconParams::default();
        // A 2 s session-mode beacon with 20 % jitter: every beat is a session.
        let mut u = rng(3);
        let mut t = 0.0;
        let beats: Vec<f64> = (0..600)
            .map(|_| {
                t += 2.0 * (1.0 - 0.2 * u());
                t
            })
            .collect();
        let s = score(&conns(&beats), &presence, &p).unwrap();
        assert_eq!(s.sessions, 600);
        assert!((s.period - 1.8).abs() < 0.1, "{}", s.period);
        assert!(s.timing > 0.7, "{}", s.timing);
        // A 300 s beacon opening three connections per check-in: still one session each.
        let mut starts = Vec::new();
        for i in 0..20 {
            let at = i as f64 * 300.0;
            starts.extend([at, at + 0.4, at + 1.1]);
        }
        let s = score(&conns(&starts), &presence, &p).unwrap();
        assert_eq!((s.sessions, s.period), (20, 300.0));
        assert_eq!(adaptive_gap(&conns(&starts), 2.0), 2.0);
    }

    #[test]
    fn well_known_periodic_services_by_name_and_port() {
        let s = known_services(&["beacon.corp.example:8443".into(), "mdm.corp.example".into()])
            .unwrap();
        assert!(is_known_service(&s, "2.pool.ntp.org", 123));
        assert!(is_known_service(&s, "Time.Apple.com.", 123));
        assert!(is_known_service(&s, "17-courier.push.apple.com", 5223));
        assert!(
            !is_known_service(&s, "2.pool.ntp.org", 443),
            "a pool name on another port"
        );
        assert!(!is_known_service(&s, "evilpool.ntp.org.example", 123));
        assert!(
            !is_known_service(&s, "notpool.ntp.org", 123),
            "a suffix is a whole label"
        );
        assert!(is_known_service(&s, "a.beacon.corp.example", 8443));
        assert!(is_known_service(&s, "mdm.corp.example", 1234));
        assert!(known_services(&["x.example:http".into()])
            .unwrap_err()
            .contains("x.example:http"));
        assert_eq!(known_service_multiplier(0.5, "apple"), 0.5);
        assert_eq!(known_service_multiplier(0.5, "unsigned"), 0.7);
    }

    #[test]
    fn invariant_to_time_shift_and_monotonic_in_jitter() {
        let active: Vec<i64> = (0..1000).collect();
        let presence = Presence {
            active_hours: &active,
        };
        let p = BeaconParams::default();
        let base: Vec<f64> = (0..40).map(|i| i as f64 * 600.0).collect();
        let a = score(&conns(&base), &presence, &p).unwrap();
        let shifted: Vec<f64> = base.iter().map(|t| t + 86_400.0 * 3.0).collect();
        let b = score(&conns(&shifted), &presence, &p).unwrap();
        assert_eq!((a.timing, a.period), (b.timing, b.period));
        let mut last = 2.0;
        for j in [0.0, 0.2, 0.4, 0.6, 0.8] {
            let mut u = rng(7);
            let mut t = 0.0;
            let series: Vec<f64> = (0..200)
                .map(|_| {
                    t += 600.0 * (1.0 - j * u());
                    t
                })
                .collect();
            let s = score(&conns(&series), &presence, &p).unwrap();
            assert!(
                s.timing <= last + 1e-9,
                "jitter {j}: {} after {last}",
                s.timing
            );
            last = s.timing;
        }
    }
}
