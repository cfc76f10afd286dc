//! Model-extraction signals per API key (OWASP LLM10, unbounded consumption / model theft):
//! many requests, mostly distinct prompts (sweeping the input space), and long completions for
//! short prompts (harvesting outputs for distillation).
//!
//! Pure: the caller passes the time in. Memory is bounded: a ring of recent requests per key
//! (a 64-bit hash of the normalised prompt, never the prompt) and a bounded number of keys.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a key's traffic looks like extraction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtractionThresholds {
    /// The sliding window the signals are measured over, in whole seconds when serialised.
    #[serde(with = "whole_seconds")]
    pub window: Duration,
    /// Fewer requests than this in the window never alert.
    pub min_requests: u64,
    /// Share of distinct prompts in the window at or above which the key looks like it sweeps
    /// the input space.
    pub distinct_ratio: f64,
    /// Completion tokens per prompt token at or above which the key looks like it harvests
    /// outputs.
    pub output_input_ratio: f64,
}

impl Default for ExtractionThresholds {
    /// 10 minutes, 500 requests, 95 % distinct prompts, 20 completion tokens per prompt token.
    fn default() -> Self {
        ExtractionThresholds {
            window: Duration::from_secs(600),
            min_requests: 500,
            distinct_ratio: 0.95,
            output_input_ratio: 20.0,
        }
    }
}

/// What a key's traffic looks like over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExtractionSignals {
    /// Requests in the window (at most the per-key capacity of the monitor).
    pub requests_in_window: u64,
    /// Distinct normalised prompts divided by requests (1.0 = every prompt different).
    pub distinct_prompt_ratio: f64,
    /// Completion tokens divided by prompt tokens.
    pub output_input_ratio: f64,
}

/// A threshold a key crossed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "signal", rename_all = "snake_case")]
pub enum ExtractionReason {
    /// The share of distinct prompts reached its threshold.
    DistinctPrompts {
        /// The share of distinct prompts in the window.
        observed: f64,
        /// [`ExtractionThresholds::distinct_ratio`].
        threshold: f64,
    },
    /// Completion tokens per prompt token reached its threshold.
    OutputInputRatio {
        /// Completion tokens per prompt token in the window.
        observed: f64,
        /// [`ExtractionThresholds::output_input_ratio`].
        threshold: f64,
    },
}

/// A key whose traffic crossed the thresholds; raised at most once per window per key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractionAlert {
    /// The key, as passed to [`ExtractionMonitor::record`].
    pub key_id: String,
    pub signals: ExtractionSignals,
    /// The thresholds crossed (one or both), besides the request volume.
    pub reasons: Vec<ExtractionReason>,
    /// The minimum request count that was reached.
    pub min_requests: u64,
}

impl fmt::Display for ExtractionAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {} looks like model extraction: {} requests in the window (≥ {})",
            self.key_id, self.signals.requests_in_window, self.min_requests
        )?;
        for reason in &self.reasons {
            match reason {
                ExtractionReason::DistinctPrompts {
                    observed,
                    threshold,
                } => write!(f, ", distinct prompts {observed:.2} ≥ {threshold:.2}")?,
                ExtractionReason::OutputInputRatio {
                    observed,
                    threshold,
                } => write!(
                    f,
                    ", completion/prompt tokens {observed:.1} ≥ {threshold:.1}"
                )?,
            }
        }
        Ok(())
    }
}

/// Keys tracked at once by default; past it, the least recently seen eighth is evicted.
pub const DEFAULT_MAX_KEYS: usize = 4096;
/// Requests remembered per key by default (raised to `min_requests` when that is larger, up
/// to [`MAX_ENTRIES_PER_KEY`]).
pub const DEFAULT_ENTRIES_PER_KEY: usize = 1024;
/// The most requests remembered per key, whatever the configuration.
pub const MAX_ENTRIES_PER_KEY: usize = 65_536;

/// Tracks the extraction signals of every key. Not shared: the gateway wraps it in a mutex
/// (or shards it by key).
#[derive(Debug, Clone)]
pub struct ExtractionMonitor {
    thresholds: ExtractionThresholds,
    max_keys: usize,
    entries_per_key: usize,
    keys: HashMap<String, KeyWindow>,
    /// Keys evicted to make room, until [`ExtractionMonitor::forget_idle`] hands them out.
    evicted: Vec<String>,
}

impl ExtractionMonitor {
    /// A monitor with the default limits.
    pub fn new(thresholds: ExtractionThresholds) -> ExtractionMonitor {
        ExtractionMonitor::with_limits(thresholds, DEFAULT_MAX_KEYS, DEFAULT_ENTRIES_PER_KEY)
    }

    /// A monitor tracking at most `max_keys` keys (at least 1) and remembering at most
    /// `entries_per_key` requests per key (at least `min_requests`, so alerts stay possible, and
    /// at most [`MAX_ENTRIES_PER_KEY`]).
    pub fn with_limits(
        thresholds: ExtractionThresholds,
        max_keys: usize,
        entries_per_key: usize,
    ) -> ExtractionMonitor {
        let min_requests = usize::try_from(thresholds.min_requests).unwrap_or(usize::MAX);
        ExtractionMonitor {
            thresholds,
            max_keys: max_keys.max(1),
            entries_per_key: entries_per_key
                .max(min_requests)
                .clamp(1, MAX_ENTRIES_PER_KEY),
            keys: HashMap::new(),
            evicted: Vec::new(),
        }
    }

    /// Forgets the keys with no request within the window at `now_ms` (their window is empty)
    /// and returns them with the keys evicted since the last call: whatever was shown about
    /// them (metrics) is out of date.
    pub fn forget_idle(&mut self, now_ms: u64) -> Vec<String> {
        let window_ms = u64::try_from(self.thresholds.window.as_millis()).unwrap_or(u64::MAX);
        let mut forgotten = std::mem::take(&mut self.evicted);
        self.keys.retain(|id, key| {
            let idle = now_ms.saturating_sub(key.last_seen_ms) > window_ms;
            if idle {
                forgotten.push(id.clone());
            }
            !idle
        });
        forgotten
    }

    /// The keys evicted to make room since the last call (or the last
    /// [`ExtractionMonitor::forget_idle`]).
    pub fn take_evicted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.evicted)
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &ExtractionThresholds {
        &self.thresholds
    }

    /// How many keys are tracked.
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    /// Records a finished request of `key_id` at `now_ms` (milliseconds on any monotonic
    /// clock) and returns an alert if the key just crossed the thresholds.
    pub fn record(
        &mut self,
        key_id: &str,
        now_ms: u64,
        prompt: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
    ) -> Option<ExtractionAlert> {
        if !self.keys.contains_key(key_id) {
            self.make_room();
            self.keys.insert(key_id.to_owned(), KeyWindow::default());
        }
        let window_ms = u64::try_from(self.thresholds.window.as_millis()).unwrap_or(u64::MAX);
        let key = self.keys.get_mut(key_id)?;
        key.expire(now_ms, window_ms);
        key.push(
            Entry {
                at_ms: now_ms,
                prompt_hash: prompt_hash(prompt),
                prompt_tokens,
                completion_tokens,
            },
            self.entries_per_key,
        );
        key.last_seen_ms = now_ms;
        let reasons = self.thresholds.crossed(&key.signals());
        let quiet = key
            .last_alert_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < window_ms);
        if reasons.is_empty() || quiet {
            return None;
        }
        key.last_alert_ms = Some(now_ms);
        Some(ExtractionAlert {
            key_id: key_id.to_owned(),
            signals: key.signals(),
            reasons,
            min_requests: self.thresholds.min_requests,
        })
    }

    /// The signals of `key_id` as of its last recorded request.
    pub fn signals(&self, key_id: &str) -> Option<ExtractionSignals> {
        self.keys.get(key_id).map(KeyWindow::signals)
    }

    /// Evicts the least recently seen eighth of the keys (at least one) when the monitor is
    /// full: one pass over the keys for many new ones. Evicting one at a time scanned every key
    /// for each new caller, under the gateway's lock, once callers outnumbered the room.
    fn make_room(&mut self) {
        if self.keys.len() < self.max_keys {
            return;
        }
        let mut seen: Vec<u64> = self.keys.values().map(|key| key.last_seen_ms).collect();
        let evict = (self.max_keys / 8).clamp(1, seen.len());
        let (older, &mut newest_evicted, _) = seen.select_nth_unstable(evict - 1);
        // Every key seen before `newest_evicted` goes, and as many seen then as make `evict`.
        let mut ties = evict - older.iter().filter(|&&at| at < newest_evicted).count();
        let evicted = &mut self.evicted;
        self.keys.retain(|id, key| {
            let old = key.last_seen_ms < newest_evicted
                || (key.last_seen_ms == newest_evicted && ties > 0);
            if old {
                if key.last_seen_ms == newest_evicted {
                    ties -= 1;
                }
                evicted.push(id.clone());
            }
            !old
        });
    }
}

impl ExtractionThresholds {
    /// The thresholds `signals` crossed, or none if the volume is below `min_requests`.
    pub fn crossed(&self, signals: &ExtractionSignals) -> Vec<ExtractionReason> {
        let mut reasons = Vec::new();
        if signals.requests_in_window < self.min_requests {
            return reasons;
        }
        if signals.distinct_prompt_ratio >= self.distinct_ratio {
            reasons.push(ExtractionReason::DistinctPrompts {
                observed: signals.distinct_prompt_ratio,
                threshold: self.distinct_ratio,
            });
        }
        if signals.output_input_ratio >= self.output_input_ratio {
            reasons.push(ExtractionReason::OutputInputRatio {
                observed: signals.output_input_ratio,
                threshold: self.output_input_ratio,
            });
        }
        reasons
    }

    /// The requests a window remembers per key: [`DEFAULT_ENTRIES_PER_KEY`], or `min_requests`
    /// when that is larger (so alerts stay possible), at most [`MAX_ENTRIES_PER_KEY`].
    pub fn remembered(&self) -> usize {
        let min_requests = usize::try_from(self.min_requests).unwrap_or(usize::MAX);
        DEFAULT_ENTRIES_PER_KEY
            .max(min_requests)
            .min(MAX_ENTRIES_PER_KEY)
    }
}

impl ExtractionSignals {
    /// The signals of `requests` requests carrying `distinct` different prompts (of the
    /// `remembered` most recent ones, when there were more) and these token counts.
    pub fn of_counts(
        requests: u64,
        distinct: u64,
        remembered: u64,
        prompt_tokens: u64,
        completion_tokens: u64,
    ) -> ExtractionSignals {
        let told_apart = requests.min(remembered);
        ExtractionSignals {
            requests_in_window: requests,
            distinct_prompt_ratio: if told_apart == 0 {
                0.0
            } else {
                distinct.min(told_apart) as f64 / told_apart as f64
            },
            output_input_ratio: completion_tokens as f64 / prompt_tokens.max(1) as f64,
        }
    }
}

/// One key's recent requests and running totals over them.
#[derive(Debug, Clone, Default)]
struct KeyWindow {
    entries: VecDeque<Entry>,
    /// How many entries carry each prompt hash.
    prompts: HashMap<u64, u32>,
    prompt_tokens: u64,
    completion_tokens: u64,
    last_seen_ms: u64,
    last_alert_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at_ms: u64,
    prompt_hash: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl KeyWindow {
    /// Forgets requests older than the window.
    fn expire(&mut self, now_ms: u64, window_ms: u64) {
        while self
            .entries
            .front()
            .is_some_and(|entry| now_ms.saturating_sub(entry.at_ms) >= window_ms)
        {
            self.pop_oldest();
        }
    }

    fn push(&mut self, entry: Entry, capacity: usize) {
        while self.entries.len() >= capacity {
            self.pop_oldest();
        }
        *self.prompts.entry(entry.prompt_hash).or_insert(0) += 1;
        self.prompt_tokens = self.prompt_tokens.saturating_add(entry.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(entry.completion_tokens);
        self.entries.push_back(entry);
    }

    fn pop_oldest(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        if let Some(count) = self.prompts.get_mut(&entry.prompt_hash) {
            *count -= 1;
            if *count == 0 {
                self.prompts.remove(&entry.prompt_hash);
            }
        }
        self.prompt_tokens = self.prompt_tokens.saturating_sub(entry.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_sub(entry.completion_tokens);
    }

    fn signals(&self) -> ExtractionSignals {
        let requests = self.entries.len() as u64;
        ExtractionSignals::of_counts(
            requests,
            self.prompts.len() as u64,
            requests,
            self.prompt_tokens,
            self.completion_tokens,
        )
    }
}

/// FNV-1a over the prompt lowercased, trimmed and with whitespace runs collapsed, so trivial
/// variations of one prompt count as the same prompt. Stable across processes and builds, so
/// replicas sharing their windows in Redis tell prompts apart alike.
pub fn prompt_hash(prompt: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut write = |c: char| {
        let mut buffer = [0; 4];
        for byte in c.encode_utf8(&mut buffer).bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    };
    let mut pending_space = false;
    let mut started = false;
    for c in prompt.chars() {
        if c.is_whitespace() {
            pending_space = started;
            continue;
        }
        if pending_space {
            write(' ');
            pending_space = false;
        }
        started = true;
        if c.is_ascii() {
            write(c.to_ascii_lowercase());
        } else {
            c.to_lowercase().for_each(&mut write);
        }
    }
    hash
}

/// (De)serialises a `Duration` as whole seconds.
mod whole_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests;
