//! Per-test history: a small fixed-size summary updated once per result.
//!
//! Models read this summary instead of the raw results, so scoring a test costs the same after
//! ten runs or ten thousand. It is stored as a compact versioned byte string ([`TestHistory::encode`]).
//!
//! Only results from the default branch feed the flakiness evidence: a failure on a PR branch is
//! most likely caused by the PR, and a PR must never be able to talk a test into quarantine.

use crate::codec::{Cursor, DecodeError, put_f32, put_i64, put_u64};
use crate::report::Outcome;

/// Number of recent default-branch outcomes kept in [`TestHistory::window`].
pub const WINDOW: u8 = 128;
/// Number of recent same-commit flake events whose time is kept.
pub const FLAKE_TIMES: usize = 8;
/// Number of distinct failure signatures remembered from flake events.
pub const FLAKE_SIGNATURES: usize = 4;

/// Number of distinct failure signatures remembered from default-branch failures.
pub const FAILURE_SIGNATURES: usize = 4;

/// Version 2 added the change and message evidence (`touched_window`, `novel_window`,
/// `failure_signatures`); version 1 still decodes, with that evidence empty.
const FORMAT_VERSION: u8 = 2;

/// One result as the history sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Final outcome in the run.
    pub outcome: Outcome,
    /// The test both passed and failed within the run.
    pub mixed: bool,
    /// The run is on the default branch.
    pub default_branch: bool,
    /// [`crate::hash::commit_hash`] of the commit under test.
    pub commit: u64,
    /// When the run happened, unix seconds.
    pub at: i64,
    /// Opaque id of the run (the store's run number).
    pub run: u64,
    /// Duration of the last attempt.
    pub duration_ms: Option<u32>,
    /// The failure's signatures, when it had a message or text.
    pub failure_signature: Option<FailureSignature>,
    /// The run failed as a whole (an outage): failures in it are not evidence of anything.
    pub outage: bool,
    /// The commit under test touched the test's code ([`crate::change::Change::touches`]);
    /// false when that is not known.
    pub touched: bool,
}

/// The summary of everything Omen has seen of one test.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestHistory {
    /// First time seen, unix seconds (any branch).
    pub first_seen: i64,
    /// Last time seen, unix seconds (any branch).
    pub last_seen: i64,
    /// Results seen on any branch, skips excluded.
    pub runs: u32,
    /// Failed results on any branch.
    pub failures: u32,
    /// Default-branch results counted as evidence (skips and outage failures excluded).
    pub db_runs: u32,
    /// Default-branch failures counted as evidence.
    pub db_failures: u32,
    /// Last [`WINDOW`] default-branch outcomes, newest in bit 0; a set bit is a failure.
    pub window: u128,
    /// Parallel to `window`: set when that result was on the same commit as the one before it
    /// (a re-run), so a failure episode that a re-run confirmed can be told from a flake.
    pub same_commit_window: u128,
    /// Parallel to `window`: set when the test both passed and failed within that run.
    pub mixed_window: u128,
    /// How many bits of `window` are filled.
    pub window_len: u8,
    /// Parallel to `window`: set when that result's commit touched the test's code, kept only for
    /// failures and for the result right after a failure (the rest says nothing and would cost
    /// bytes for every stable test).
    pub touched_window: u128,
    /// Parallel to `window`: set on a failure whose signature the test had not failed with
    /// before (see `failure_signatures`).
    pub novel_window: u128,
    /// Consecutive default-branch failures up to now.
    pub fail_streak: u32,
    /// Run id of the first failure of the current streak.
    pub streak_run: u64,
    /// Time of the first failure of the current streak.
    pub streak_at: i64,
    /// Default-branch passes since the last default-branch failure.
    pub clean_runs: u32,
    /// Time of the last default-branch failure (0 if none).
    pub last_failure_at: i64,
    /// Commit of the latest default-branch result.
    pub last_commit: u64,
    /// Outcomes seen on `last_commit`: bit 0 passed, bit 1 failed.
    pub last_commit_outcomes: u8,
    /// Times the same commit both passed and failed (retry in a run, or a re-run).
    pub flake_events: u32,
    /// Default-branch results since the last flake event (`u32::MAX` if there never was one).
    pub runs_since_flake: u32,
    /// Times of the latest flake events, newest first (0 = empty slot).
    pub flake_times: [i64; FLAKE_TIMES],
    /// Signature of the last default-branch failure (0 if unknown).
    pub last_failure_signature: u32,
    /// Failure signatures seen in flake events, newest first (0 = empty slot).
    pub flake_signatures: [u32; FLAKE_SIGNATURES],
    /// Signatures of the latest distinct default-branch failures, newest first (0 = empty slot).
    pub failure_signatures: [u32; FAILURE_SIGNATURES],
    /// Failures not counted because their run was an outage.
    pub outage_failures: u32,
    /// Passing durations counted in `duration_mean`.
    pub duration_count: u32,
    /// Mean passing duration, ms (Welford).
    pub duration_mean: f32,
    /// Sum of squared deviations of passing durations (Welford).
    pub duration_m2: f32,
    /// Last outcome on any branch.
    pub last_outcome: Option<Outcome>,
    /// Run id of the last result on any branch.
    pub last_run: u64,
}

impl TestHistory {
    /// Fold one result into the summary.
    pub fn observe(&mut self, obs: &Observation) {
        if self.first_seen == 0 || obs.at < self.first_seen {
            self.first_seen = obs.at;
        }
        self.last_seen = self.last_seen.max(obs.at);
        self.last_outcome = Some(obs.outcome);
        self.last_run = obs.run;
        if obs.outcome == Outcome::Skipped {
            return;
        }
        let failed = obs.outcome.is_failure();
        self.runs = self.runs.saturating_add(1);
        if failed {
            self.failures = self.failures.saturating_add(1);
        }
        if !obs.default_branch {
            return;
        }
        if obs.outage && failed && !obs.mixed {
            self.outage_failures = self.outage_failures.saturating_add(1);
            return;
        }
        self.db_runs = self.db_runs.saturating_add(1);
        let same_commit = self.db_runs > 1 && self.last_commit == obs.commit;
        if self.flake_events > 0 {
            self.runs_since_flake = self.runs_since_flake.saturating_add(1);
        }
        self.observe_commit(obs, failed);
        self.window = (self.window << 1) | u128::from(failed);
        self.same_commit_window = (self.same_commit_window << 1) | u128::from(same_commit);
        self.mixed_window = (self.mixed_window << 1) | u128::from(obs.mixed);
        let after_failure = self.window_len > 0 && (self.window >> 1) & 1 == 1;
        self.touched_window =
            (self.touched_window << 1) | u128::from(obs.touched && (failed || after_failure));
        let novel = failed && self.novel_signature(obs.failure_signature);
        self.novel_window = (self.novel_window << 1) | u128::from(novel);
        // Evidence bits stay where they can matter as the window slides (see `encode`).
        self.touched_window &= self.window | (self.window >> 1);
        self.novel_window &= self.window;
        self.window_len = self.window_len.saturating_add(1).min(WINDOW);
        if failed {
            self.db_failures = self.db_failures.saturating_add(1);
            if self.fail_streak == 0 {
                self.streak_run = obs.run;
                self.streak_at = obs.at;
            }
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.clean_runs = 0;
            self.last_failure_at = obs.at;
            self.last_failure_signature = obs.failure_signature.map_or(0, |s| s.current);
        } else {
            self.end_streak();
            self.clean_runs = self.clean_runs.saturating_add(1);
            if let Some(ms) = obs.duration_ms {
                self.observe_duration(ms);
            }
        }
    }

    fn observe_commit(&mut self, obs: &Observation, failed: bool) {
        let this = if obs.mixed {
            0b11
        } else if failed {
            0b10
        } else {
            0b01
        };
        let before = if self.last_commit == obs.commit && self.db_runs > 1 {
            self.last_commit_outcomes
        } else {
            0
        };
        let after = before | this;
        self.last_commit = obs.commit;
        self.last_commit_outcomes = after;
        // A retry inside the run, or the first time a re-run on this commit disagrees.
        if obs.mixed || (after == 0b11 && before != 0b11) {
            self.flake_events = self.flake_events.saturating_add(1);
            self.runs_since_flake = 0;
            self.flake_times.copy_within(0..FLAKE_TIMES - 1, 1);
            self.flake_times[0] = obs.at;
            // A passing re-run excuses the failure before it: remember that failure's message.
            let signature = obs
                .failure_signature
                .map(|s| s.current)
                .or(Some(self.last_failure_signature));
            if let Some(sig) = signature.filter(|s| *s != 0)
                && !self.flake_signatures.contains(&sig)
            {
                self.flake_signatures
                    .copy_within(0..FLAKE_SIGNATURES - 1, 1);
                self.flake_signatures[0] = sig;
            }
            // The failure that started a streak was a flake on this commit, not a breakage.
            if !failed {
                self.end_streak();
            }
        }
    }

    /// Whether a failure's signature is new to this test, remembering it either way. An unknown
    /// signature is never new: no message, no evidence. A slot holding the failure's legacy
    /// signature is taken over by its current one, so older evidence migrates as failures recur.
    fn novel_signature(&mut self, signature: Option<FailureSignature>) -> bool {
        let Some(sig) = signature.filter(|s| s.current != 0) else {
            return false;
        };
        let seen = self
            .failure_signatures
            .iter()
            .chain(&self.flake_signatures)
            .any(|&s| sig.matches(s));
        for slot in self.flake_signatures.iter_mut() {
            if *slot != sig.current && sig.matches(*slot) {
                *slot = sig.current;
            }
        }
        let sig = sig.current;
        if let Some(at) = self
            .failure_signatures
            .iter()
            .position(|&s| s == sig || s == signature.map_or(0, |f| f.legacy))
        {
            self.failure_signatures.copy_within(0..at, 1);
        } else {
            self.failure_signatures
                .copy_within(0..FAILURE_SIGNATURES - 1, 1);
        }
        self.failure_signatures[0] = sig;
        !seen
    }

    fn end_streak(&mut self) {
        self.fail_streak = 0;
        self.streak_run = 0;
        self.streak_at = 0;
    }

    fn observe_duration(&mut self, ms: u32) {
        self.duration_count = self.duration_count.saturating_add(1);
        let x = ms as f32;
        let delta = x - self.duration_mean;
        self.duration_mean += delta / self.duration_count as f32;
        self.duration_m2 += delta * (x - self.duration_mean);
    }

    /// Standard deviation of passing durations, ms.
    pub fn duration_stddev(&self) -> Option<f32> {
        (self.duration_count >= 2)
            .then(|| (self.duration_m2 / (self.duration_count - 1) as f32).sqrt())
    }

    /// The last `n` (≤ `window_len`) default-branch outcomes as booleans, oldest first.
    pub fn recent(&self, n: u8) -> impl Iterator<Item = bool> + '_ {
        let n = n.min(self.window_len);
        (0..n).rev().map(move |i| (self.window >> i) & 1 == 1)
    }

    /// Number of failures among the last `n` default-branch outcomes.
    pub fn recent_failures(&self, n: u8) -> u32 {
        let n = n.min(self.window_len);
        let mask = if n >= 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        };
        (self.window & mask).count_ones()
    }

    /// Number of pass↔fail transitions among the last `n` default-branch outcomes.
    pub fn flips(&self, n: u8) -> u32 {
        let n = n.min(self.window_len);
        if n < 2 {
            return 0;
        }
        let mask = (1u128 << (n - 1)) - 1;
        ((self.window ^ (self.window >> 1)) & mask).count_ones()
    }

    /// Encode in Omen's compact stored format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.push(FORMAT_VERSION);
        put_i64(&mut out, self.first_seen);
        put_i64(&mut out, self.last_seen - self.first_seen);
        put_u64(&mut out, self.runs.into());
        put_u64(&mut out, self.failures.into());
        put_u64(&mut out, self.db_runs.into());
        put_u64(&mut out, self.db_failures.into());
        put_u64(&mut out, self.window as u64);
        put_u64(&mut out, (self.window >> 64) as u64);
        put_u64(&mut out, self.same_commit_window as u64);
        put_u64(&mut out, (self.same_commit_window >> 64) as u64);
        put_u64(&mut out, self.mixed_window as u64);
        put_u64(&mut out, (self.mixed_window >> 64) as u64);
        out.push(self.window_len);
        put_u64(&mut out, self.fail_streak.into());
        if self.fail_streak > 0 {
            put_u64(&mut out, self.streak_run);
            put_i64(&mut out, self.streak_at - self.first_seen);
        }
        put_u64(&mut out, self.clean_runs.into());
        put_i64(&mut out, self.last_failure_at);
        put_u64(&mut out, self.last_failure_signature.into());
        put_u64(&mut out, self.last_commit);
        // The outcomes take two bits; the other bits say which version-2 evidence follows.
        let failure_sigs = self
            .failure_signatures
            .iter()
            .take_while(|&&s| s != 0)
            .count();
        let flags = u8::from(self.touched_window != 0)
            | u8::from(self.novel_window != 0) << 1
            | u8::from(failure_sigs > 0) << 2;
        out.push(self.last_commit_outcomes | flags << 2);
        put_u64(&mut out, self.flake_events.into());
        if self.flake_events > 0 {
            put_u64(&mut out, self.runs_since_flake.into());
        }
        let times = self.flake_times.iter().take_while(|&&t| t != 0).count();
        out.push(times as u8);
        for t in &self.flake_times[..times] {
            put_i64(&mut out, *t - self.first_seen);
        }
        let sigs = self
            .flake_signatures
            .iter()
            .take_while(|&&s| s != 0)
            .count();
        out.push(sigs as u8);
        for s in &self.flake_signatures[..sigs] {
            put_u64(&mut out, u64::from(*s));
        }
        put_u64(&mut out, self.outage_failures.into());
        put_u64(&mut out, self.duration_count.into());
        if self.duration_count > 0 {
            put_f32(&mut out, self.duration_mean);
            put_f32(&mut out, self.duration_m2);
        }
        out.push(match self.last_outcome {
            None => 0,
            Some(Outcome::Passed) => 1,
            Some(Outcome::Skipped) => 2,
            Some(Outcome::Failed) => 3,
            Some(Outcome::Error) => 4,
        });
        put_u64(&mut out, self.last_run);
        // Version 2: the evidence, each part only when it is there. The windows are written as
        // one bit per place that can hold evidence (failures, and results right after one), so
        // a test with three failures pays a byte, not twenty.
        if self.touched_window != 0 {
            put_u128(
                &mut out,
                pack_bits(self.touched_window, self.evidence_places()),
            );
        }
        if self.novel_window != 0 {
            put_u128(&mut out, pack_bits(self.novel_window, self.window));
        }
        if failure_sigs > 0 {
            out.push(failure_sigs as u8);
            for s in &self.failure_signatures[..failure_sigs] {
                put_u64(&mut out, u64::from(*s));
            }
        }
        out
    }

    /// Decode what [`TestHistory::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<TestHistory, DecodeError> {
        let mut c = Cursor::new(bytes);
        let version = c.u8()?;
        if version != FORMAT_VERSION && version != 1 {
            return Err(DecodeError::Version(version));
        }
        let mut h = TestHistory {
            first_seen: c.i64()?,
            ..TestHistory::default()
        };
        h.last_seen = h.first_seen + c.i64()?;
        h.runs = c.u32()?;
        h.failures = c.u32()?;
        h.db_runs = c.u32()?;
        h.db_failures = c.u32()?;
        h.window = u128::from(c.u64()?) | (u128::from(c.u64()?) << 64);
        h.same_commit_window = u128::from(c.u64()?) | (u128::from(c.u64()?) << 64);
        h.mixed_window = u128::from(c.u64()?) | (u128::from(c.u64()?) << 64);
        h.window_len = c.u8()?.min(WINDOW);
        h.fail_streak = c.u32()?;
        if h.fail_streak > 0 {
            h.streak_run = c.u64()?;
            h.streak_at = h.first_seen + c.i64()?;
        }
        h.clean_runs = c.u32()?;
        h.last_failure_at = c.i64()?;
        h.last_failure_signature = c.u32()?;
        h.last_commit = c.u64()?;
        let outcomes = c.u8()?;
        h.last_commit_outcomes = outcomes & 0b11;
        let flags = if version >= 2 { outcomes >> 2 } else { 0 };
        h.flake_events = c.u32()?;
        if h.flake_events > 0 {
            h.runs_since_flake = c.u32()?;
        }
        let times = usize::from(c.u8()?).min(FLAKE_TIMES);
        for slot in h.flake_times.iter_mut().take(times) {
            *slot = h.first_seen + c.i64()?;
        }
        let sigs = usize::from(c.u8()?).min(FLAKE_SIGNATURES);
        for slot in h.flake_signatures.iter_mut().take(sigs) {
            *slot = c.u32()?;
        }
        h.outage_failures = c.u32()?;
        h.duration_count = c.u32()?;
        if h.duration_count > 0 {
            h.duration_mean = c.f32()?;
            h.duration_m2 = c.f32()?;
        }
        h.last_outcome = match c.u8()? {
            1 => Some(Outcome::Passed),
            2 => Some(Outcome::Skipped),
            3 => Some(Outcome::Failed),
            4 => Some(Outcome::Error),
            _ => None,
        };
        h.last_run = c.u64()?;
        if flags & 1 != 0 {
            h.touched_window = unpack_bits(get_u128(&mut c)?, h.evidence_places());
        }
        if flags & 2 != 0 {
            h.novel_window = unpack_bits(get_u128(&mut c)?, h.window);
        }
        if flags & 4 != 0 {
            let sigs = usize::from(c.u8()?).min(FAILURE_SIGNATURES);
            for slot in h.failure_signatures.iter_mut().take(sigs) {
                *slot = c.u32()?;
            }
        }
        Ok(h)
    }
}

impl TestHistory {
    /// Where change evidence can be: failures, and the result right after each.
    fn evidence_places(&self) -> u128 {
        self.window | (self.window >> 1)
    }
}

/// The bits of `bits` at the set places of `places`, packed low to high.
fn pack_bits(bits: u128, places: u128) -> u128 {
    let (mut out, mut k, mut rest) = (0u128, 0u32, places);
    while rest != 0 {
        let p = rest.trailing_zeros();
        out |= ((bits >> p) & 1) << k;
        k += 1;
        rest &= rest - 1;
    }
    out
}

/// The inverse of [`pack_bits`].
fn unpack_bits(packed: u128, places: u128) -> u128 {
    let (mut out, mut k, mut rest) = (0u128, 0u32, places);
    while rest != 0 {
        let p = rest.trailing_zeros();
        out |= ((packed >> k) & 1) << p;
        k += 1;
        rest &= rest - 1;
    }
    out
}

fn put_u128(out: &mut Vec<u8>, v: u128) {
    put_u64(out, v as u64);
    put_u64(out, (v >> 64) as u64);
}

fn get_u128(c: &mut Cursor<'_>) -> Result<u128, DecodeError> {
    Ok(u128::from(c.u64()?) | (u128::from(c.u64()?) << 64))
}

/// A failure as a test's history remembers it: its [`crate::failure::Signature`] folded to 32
/// bits (`current`), and the recipe histories held before it (`legacy`: [`failure_signature`]
/// of the headline). Evidence an older Omen stored matches through `legacy`, and each slot that
/// holds it is taken over by `current` when the failure recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureSignature {
    /// [`crate::failure::Signature::short`].
    pub current: u32,
    /// [`failure_signature`] of the failure's headline.
    pub legacy: u32,
}

impl FailureSignature {
    /// The signatures of `f`; `None` without a message or text.
    pub fn of(f: &crate::Failure) -> Option<FailureSignature> {
        FailureSignature::with(f, &crate::failure::Signature::of(&f.as_text()))
    }

    /// The signatures of `f`, whose [`crate::failure::Signature`] the caller already has.
    pub fn with(
        f: &crate::Failure,
        signature: &crate::failure::Signature,
    ) -> Option<FailureSignature> {
        Some(FailureSignature {
            current: signature.short(),
            legacy: failure_signature(f.headline()?),
        })
    }

    /// `stored` (a history slot, 0 when empty) is this failure's, by either recipe.
    pub fn matches(self, stored: u32) -> bool {
        stored != 0 && (stored == self.current || stored == self.legacy)
    }
}

impl From<u32> for FailureSignature {
    /// One value for both recipes (tests and simulations that make up signatures).
    fn from(s: u32) -> FailureSignature {
        FailureSignature {
            current: s,
            legacy: s,
        }
    }
}

/// A 32-bit signature of a failure message that ignores what changes between occurrences of the
/// same failure: digits, hex addresses, temporary paths and whitespace. Never 0. Histories held
/// only this before [`FailureSignature`]; it is kept so their evidence still matches.
pub fn failure_signature(message: &str) -> u32 {
    let mut normalized = String::with_capacity(message.len().min(256));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in message.chars().take(256) {
        if ch.is_ascii_hexdigit() {
            run.push(ch.to_ascii_lowercase());
            continue;
        }
        flush(&mut run, &mut normalized);
        if ch.is_whitespace() {
            if !normalized.is_empty() && !normalized.ends_with(' ') {
                normalized.push(' ');
            }
        } else {
            normalized.extend(ch.to_lowercase());
        }
    }
    flush(&mut run, &mut normalized);
    let h = crate::hash::fnv1a64(normalized.trim().as_bytes());
    let folded = (h ^ (h >> 32)) as u32;
    folded.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(outcome: Outcome, commit: u64, at: i64) -> Observation {
        Observation {
            outcome,
            mixed: false,
            default_branch: true,
            commit,
            at,
            run: at as u64,
            duration_ms: Some(100),
            failure_signature: outcome.is_failure().then_some(7.into()),
            outage: false,
            touched: false,
        }
    }

    #[test]
    fn change_and_message_evidence_is_kept_only_where_it_says_something() {
        let mut h = TestHistory::default();
        let mut at = 0;
        let mut step = |h: &mut TestHistory, outcome, touched, sig| {
            at += 1;
            let mut o = obs(outcome, at as u64, at);
            o.touched = touched;
            o.failure_signature = sig;
            h.observe(&o);
        };
        step(&mut h, Outcome::Passed, true, None); // touched, but nothing failed: not kept
        step(&mut h, Outcome::Failed, true, Some(5.into())); // new message, touched
        step(&mut h, Outcome::Passed, true, None); // the fix touched it too
        step(&mut h, Outcome::Passed, true, None); // not after a failure: not kept
        step(&mut h, Outcome::Failed, false, Some(5.into())); // a message seen before
        step(&mut h, Outcome::Failed, false, None); // no message: never new
        assert_eq!(h.touched_window, 0b01_1000, "{:b}", h.touched_window);
        assert_eq!(h.novel_window, 0b01_0000, "{:b}", h.novel_window);
        assert_eq!(h.failure_signatures[..2], [5, 0]);
        let stable = {
            let mut s = TestHistory::default();
            for i in 0..50 {
                let mut o = obs(Outcome::Passed, i, i as i64);
                o.touched = true;
                s.observe(&o);
            }
            s
        };
        assert_eq!(stable.touched_window, 0);
        let mut v1 = stable.encode();
        v1[0] = 1;
        assert_eq!(
            TestHistory::decode(&v1),
            Ok(stable.clone()),
            "without evidence, version 2 is version 1's bytes: it costs a stable test nothing"
        );
        let without = TestHistory {
            touched_window: 0,
            novel_window: 0,
            failure_signatures: [0; FAILURE_SIGNATURES],
            ..h.clone()
        };
        assert!(
            h.encode().len() <= without.encode().len() + 2 + 2 + 2,
            "two packed windows and one signature: {} vs {} bytes",
            h.encode().len(),
            without.encode().len()
        );
        assert_eq!(TestHistory::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn version_1_histories_still_decode_with_no_new_evidence() {
        let mut h = TestHistory::default();
        for i in 0..20 {
            let mut o = obs(
                if i % 5 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                },
                i,
                i as i64 + 1,
            );
            o.failure_signature = None;
            h.observe(&o);
        }
        let mut v1 = h.encode();
        // Version 1's bytes are version 2's without evidence.
        v1[0] = 1;
        assert_eq!(TestHistory::decode(&v1), Ok(h));
    }

    #[test]
    fn window_counts_flips_and_streaks() {
        let mut h = TestHistory::default();
        for (i, o) in [
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Failed,
        ]
        .into_iter()
        .enumerate()
        {
            h.observe(&obs(o, i as u64 + 1, 1000 + i as i64));
        }
        assert_eq!(
            h.recent(5).collect::<Vec<_>>(),
            [false, true, false, true, true]
        );
        assert_eq!(h.recent_failures(5), 3);
        assert_eq!(h.flips(5), 3);
        assert_eq!(h.fail_streak, 2);
        assert_eq!(h.streak_at, 1003);
        assert_eq!(h.flake_events, 0);
    }

    #[test]
    fn rerun_on_the_same_commit_is_a_flake_event_and_breaks_the_streak() {
        let mut h = TestHistory::default();
        h.observe(&obs(Outcome::Passed, 1, 10));
        h.observe(&obs(Outcome::Failed, 2, 20));
        h.observe(&obs(Outcome::Passed, 2, 30));
        assert_eq!(h.flake_events, 1);
        assert_eq!(h.flake_times[0], 30);
        assert_eq!(
            h.flake_signatures[0], 7,
            "the passing re-run excuses the failure before it"
        );
        assert_eq!(h.fail_streak, 0);
        // A third result on the same commit does not count the same disagreement again.
        h.observe(&obs(Outcome::Failed, 2, 40));
        assert_eq!(h.flake_events, 1);
    }

    #[test]
    fn pr_branch_and_outage_results_are_not_evidence() {
        let mut h = TestHistory::default();
        let mut pr = obs(Outcome::Failed, 1, 10);
        pr.default_branch = false;
        h.observe(&pr);
        let mut outage = obs(Outcome::Failed, 2, 20);
        outage.outage = true;
        h.observe(&outage);
        assert_eq!((h.runs, h.failures), (2, 2));
        assert_eq!((h.db_runs, h.db_failures, h.outage_failures), (0, 0, 1));
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut h = TestHistory::default();
        for i in 0..200i64 {
            let mut o = obs(
                if i % 7 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                },
                (i / 2) as u64,
                1_700_000_000 + i * 60,
            );
            o.mixed = i % 13 == 0;
            o.duration_ms = Some(100 + (i % 5) as u32);
            o.touched = i % 3 == 0;
            o.failure_signature = o
                .outcome
                .is_failure()
                .then_some((1 + (i % 11) as u32).into());
            h.observe(&o);
        }
        let bytes = h.encode();
        // A worst case: every window busy. A typical stable test encodes in about 45 bytes.
        assert!(bytes.len() < 160, "state is {} bytes", bytes.len());
        assert_eq!(TestHistory::decode(&bytes), Ok(h));
        assert_eq!(TestHistory::decode(&[9]), Err(DecodeError::Version(9)));
        assert!(TestHistory::decode(&bytes[..bytes.len() - 2]).is_err());
    }

    #[test]
    fn signatures_ignore_numbers_and_spacing() {
        assert_eq!(
            failure_signature("timeout after 3012 ms  at 0x7f"),
            failure_signature("Timeout after 29 ms at 0x1a")
        );
        assert_ne!(
            failure_signature("timeout"),
            failure_signature("assertion failed")
        );
    }
}
