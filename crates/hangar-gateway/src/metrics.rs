//! Prometheus metrics in the text exposition format. A small registry of its own: a few label
//! families behind one short lock each, which is all a request touches, and a renderer.
//! Label values come only from the configuration (tenant, model, version) or from the gateway's
//! own vocabulary (codes, guards), never from raw client input, so cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Label values of one series, in the family's label order.
type Labels = Vec<String>;

/// A counter family.
#[derive(Debug)]
pub struct Counters {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Labels, u64>>,
}

impl Counters {
    pub(crate) const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Counters {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `by` to the series with these label values.
    pub fn add(&self, values: &[&str], by: u64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        add_to(&mut series, values, by);
    }

    /// [`Counters::add`], but once the family holds `max_series` series a new one is counted
    /// under `overflow` instead: for labels taken from callers' credentials (a token's subject),
    /// which the configuration does not bound.
    pub fn add_bounded(&self, values: &[&str], by: u64, max_series: usize, overflow: &[&str]) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let full = series.len() >= max_series && !series.contains_key(&values as &dyn LabelKey);
        add_to(&mut series, if full { overflow } else { values }, by);
    }

    /// Sets the series with these label values to `count`: for counts kept elsewhere (the audit
    /// log's), which only grow.
    pub fn set(&self, values: &[&str], count: u64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        match series.get_mut(&values as &dyn LabelKey) {
            // Two scrapes at once may read the count in one order and set it in the other.
            Some(value) => *value = (*value).max(count),
            None => add_to(&mut series, values, count),
        }
    }

    /// The current value of one series (for tests and the overload check).
    pub fn get(&self, values: &[&str]) -> u64 {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.get(&values as &dyn LabelKey).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (values, count) in series.iter() {
            let _ = writeln!(
                out,
                "{}{} {count}",
                self.name,
                label_text(self.labels, values, None)
            );
        }
    }
}

fn add_to(series: &mut BTreeMap<Labels, u64>, values: &[&str], by: u64) {
    match series.get_mut(&values as &dyn LabelKey) {
        // A model server's absurd usage report must not wrap a counter (or, in a debug build,
        // panic while the request is being recorded).
        Some(count) => *count = count.saturating_add(by),
        None => {
            series.insert(values.iter().map(|v| (*v).to_owned()).collect(), by);
        }
    }
}

/// A gauge family (values set, not added).
#[derive(Debug)]
pub struct Gauges {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Labels, f64>>,
}

impl Gauges {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Gauges {
            name,
            help,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets the series with these label values.
    pub fn set(&self, values: &[&str], value: f64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        match series.get_mut(&values as &dyn LabelKey) {
            Some(current) => *current = value,
            None => {
                series.insert(values.iter().map(|v| (*v).to_owned()).collect(), value);
            }
        }
    }

    /// Removes the series with these label values, if there is one.
    pub fn remove(&self, values: &[&str]) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.remove(&values as &dyn LabelKey);
    }

    /// Sets these series and removes every other one: for a family that describes the
    /// configuration in force, where a series the previous one had would be stale.
    pub fn set_exactly(&self, series: impl IntoIterator<Item = (Labels, f64)>) {
        let mut current = self.series.lock().unwrap_or_else(|p| p.into_inner());
        current.clear();
        current.extend(series);
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (values, value) in series.iter() {
            let _ = writeln!(
                out,
                "{}{} {value}",
                self.name,
                label_text(self.labels, values, None)
            );
        }
    }
}

/// A histogram family with fixed buckets (upper bounds in seconds).
#[derive(Debug)]
pub struct Histograms {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Labels, Histogram>>,
}

#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histograms {
    const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Histograms {
            name,
            help,
            labels,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, values: &[&str], took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self.bounds.partition_point(|&bound| bound < seconds);
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = match series.get_mut(&values as &dyn LabelKey) {
            Some(histogram) => histogram,
            None => series
                .entry(values.iter().map(|v| (*v).to_owned()).collect())
                .or_insert_with(|| Histogram {
                    counts: vec![0; self.bounds.len()],
                    sum: 0.0,
                    count: 0,
                }),
        };
        if let Some(count) = histogram.counts.get_mut(bucket) {
            *count += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (values, histogram) in series.iter() {
            let mut cumulative = 0;
            for (bound, count) in self.bounds.iter().zip(&histogram.counts) {
                cumulative += count;
                let le = format!("{bound}");
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    label_text(self.labels, values, Some(&le))
                );
            }
            let labels = label_text(self.labels, values, None);
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                label_text(self.labels, values, Some("+Inf")),
                histogram.count
            );
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, histogram.sum);
            let _ = writeln!(out, "{}_count{labels} {}", self.name, histogram.count);
        }
    }
}

/// Lets a `&[&str]` look up a `Vec<String>` key without allocating.
trait LabelKey {
    fn count(&self) -> usize;
    fn value(&self, i: usize) -> &str;
}

impl LabelKey for Labels {
    fn count(&self) -> usize {
        self.len()
    }
    fn value(&self, i: usize) -> &str {
        self.get(i).map_or("", String::as_str)
    }
}

impl LabelKey for &[&str] {
    fn count(&self) -> usize {
        self.len()
    }
    fn value(&self, i: usize) -> &str {
        self.get(i).copied().unwrap_or("")
    }
}

impl<'a> std::borrow::Borrow<dyn LabelKey + 'a> for Labels {
    fn borrow(&self) -> &(dyn LabelKey + 'a) {
        self
    }
}

impl PartialEq for dyn LabelKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for dyn LabelKey + '_ {}

impl PartialOrd for dyn LabelKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn LabelKey + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (0..self.count().min(other.count()))
            .map(|i| self.value(i).cmp(other.value(i)))
            .find(|order| order.is_ne())
            .unwrap_or_else(|| self.count().cmp(&other.count()))
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn label_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

// Up to half an hour: long generations and reasoning models run for minutes.
const LATENCY: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0,
];
// Up to a second: a wait on the shared limits' Redis counts as the gateway's own.
const OVERHEAD: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    /// Requests answered, by tenant, model, version and HTTP status.
    pub requests: Counters,
    /// Requests that did not succeed, by tenant, model, version and error code.
    pub errors: Counters,
    /// Whole request time, to the last byte of the answer handed to the connection (a short
    /// answer may still wait in its buffers for a client slow to read).
    pub latency: Histograms,
    /// From sending to the model server to the first generated token, or to the response headers
    /// when not streaming (for vLLM, TGI and SGLang, the whole generation): told apart by the
    /// `stream` label.
    pub first_token: Histograms,
    /// Tokens in (prompt) and out (completion).
    pub tokens: Counters,
    /// Limit decisions that refused a request, by tenant and limit.
    pub limited: Counters,
    /// Guard decisions, by tenant, guard and action.
    pub guard: Counters,
    /// Extraction alerts, by tenant and key id.
    pub extraction_alerts: Counters,
    /// Latest extraction signals per key (`signal` = requests, distinct_prompt_ratio,
    /// output_input_ratio).
    pub extraction: Gauges,
    /// The gateway's own time: total minus the time spent waiting on the model server.
    pub overhead: Histograms,
    /// Failures to reach or read the model server, by model, version and kind.
    pub upstream_errors: Counters,
    /// Configuration reloads, by result.
    pub reloads: Counters,
    /// Requests whose rate limits were decided without the shared store, by what was done.
    pub shared_limits_fallbacks: Counters,
    /// Connections closed at once because their client had `maxConnectionsPerClient` open.
    pub client_connections_refused: Counters,
    /// Requests in flight now.
    pub in_flight: AtomicU64,
    /// Audit records written, dropped and summarised, read from the audit log at render time.
    pub audit: Counters,
    /// The sequence number of the newest audit record written: kept by Prometheus, out of the
    /// reach of whoever can write the log's volume, it shows a chain cut short.
    pub audit_seq: Gauges,
    /// Content records written and dropped (past its 64 MiB waiting), when content is logged.
    pub content: Counters,
    /// 1 while a log's writes fail, by log (`audit`, `content`).
    pub audit_failing: Gauges,
    /// Records waiting for a log's writer, by log.
    pub audit_queued: Gauges,
    /// When the certificates the gateway shows expire, by certificate.
    pub certificate_expiry: Gauges,
    /// When the API keys not revoked expire, by tenant and key id.
    pub api_key_expiry: Gauges,
}

impl Default for Metrics {
    fn default() -> Self {
        const TMV: &[&str] = &["tenant", "model", "version"];
        Metrics {
            requests: Counters::new(
                "hangar_gateway_requests_total",
                "Requests answered, by tenant, model, version and HTTP status.",
                &["tenant", "model", "version", "status"],
            ),
            errors: Counters::new(
                "hangar_gateway_errors_total",
                "Requests that did not succeed, by tenant, model, version and error code.",
                &["tenant", "model", "version", "code"],
            ),
            latency: Histograms::new(
                "hangar_gateway_request_duration_seconds",
                "Whole request time, to the last byte of the answer handed to the connection.",
                TMV,
                LATENCY,
            ),
            first_token: Histograms::new(
                "hangar_gateway_time_to_first_token_seconds",
                "From sending to the model server to the first generated token (text, reasoning or a piece of a tool call; the response headers when not streaming, stream=\"false\").",
                &["tenant", "model", "version", "stream"],
                LATENCY,
            ),
            tokens: Counters::new(
                "hangar_gateway_tokens_total",
                "Tokens by direction (prompt, completion), from the model server's usage or counted.",
                &["tenant", "model", "version", "direction"],
            ),
            limited: Counters::new(
                "hangar_gateway_rate_limited_total",
                "Requests refused by a limit, by tenant and limit.",
                &["tenant", "limit"],
            ),
            guard: Counters::new(
                "hangar_gateway_guard_decisions_total",
                "Guard decisions, by tenant, guard and action.",
                &["tenant", "guard", "action"],
            ),
            extraction_alerts: Counters::new(
                "hangar_gateway_extraction_alerts_total",
                "Model-extraction alerts, by tenant and key id.",
                &["tenant", "key_id"],
            ),
            extraction: Gauges::new(
                "hangar_gateway_extraction_signal",
                "Latest per-key extraction signal over the window.",
                &["tenant", "key_id", "signal"],
            ),
            overhead: Histograms::new(
                "hangar_gateway_overhead_seconds",
                "The gateway's own time per request: total minus time waiting on the model server and on the client.",
                &["model"],
                OVERHEAD,
            ),
            upstream_errors: Counters::new(
                "hangar_gateway_upstream_errors_total",
                "Failures reaching or reading the model server, by model, version and kind.",
                &["model", "version", "kind"],
            ),
            reloads: Counters::new(
                "hangar_gateway_config_reloads_total",
                "Configuration reloads, by result (applied, rejected, failed).",
                &["result"],
            ),
            shared_limits_fallbacks: Counters::new(
                "hangar_gateway_shared_limits_fallbacks_total",
                "Requests whose shared limits (rates, places in flight) were decided without the \
                 shared store (unreachable, \
                 failing or too slow), by what was done instead (local, refuse).",
                &["action"],
            ),
            client_connections_refused: Counters::new(
                "hangar_gateway_client_connections_refused_total",
                "Connections closed at once because their client address had \
                 limits.maxConnectionsPerClient open.",
                &[],
            ),
            in_flight: AtomicU64::new(0),
            audit: Counters::new(
                "hangar_gateway_audit_records_total",
                "Audit records written and dropped (queue full) since start, and refusals \
                 summarised (counted in a per-second `refusals` record, past the budget).",
                &["state"],
            ),
            audit_seq: Gauges::new(
                "hangar_gateway_audit_last_seq",
                "Sequence number of the newest record in the audit log's chain.",
                &[],
            ),
            content: Counters::new(
                "hangar_gateway_content_records_total",
                "Content-log records written, and dropped (the records waiting for the disk past \
                 64 MiB), since start.",
                &["state"],
            ),
            audit_failing: Gauges::new(
                "hangar_gateway_audit_write_failing",
                "1 while a log's writes fail (full disk, directory gone or read-only): records \
                 wait in memory, and are lost if the process ends.",
                &["log"],
            ),
            audit_queued: Gauges::new(
                "hangar_gateway_audit_queued_records",
                "Records waiting for a log's writer.",
                &["log"],
            ),
            certificate_expiry: Gauges::new(
                "hangar_gateway_certificate_expiry_timestamp_seconds",
                "When a certificate the gateway shows expires (served: the API listener's; \
                 model_client: the one shown to model servers), as of the configuration in force.",
                &["certificate"],
            ),
            api_key_expiry: Gauges::new(
                "hangar_gateway_api_key_expiry_timestamp_seconds",
                "When an API key of the configuration in force stops working (keys that expire \
                 and are not revoked), by tenant and key id.",
                &["tenant", "key_id"],
            ),
        }
    }
}

/// The audit counts' help, for their gauge and their counter alike.
impl Metrics {
    /// Sets the expiry gauges (certificates, API keys) from `runtime`.
    pub fn show_expiries(&self, runtime: &crate::runtime::Runtime) {
        // A certificate or key the new configuration no longer has leaves the page.
        self.certificate_expiry.set_exactly(
            runtime
                .certificate_expiry
                .iter()
                .map(|(name, not_after)| (vec![(*name).to_owned()], *not_after as f64)),
        );
        let keys = runtime.config.auth.api_keys.iter();
        self.api_key_expiry
            .set_exactly(keys.filter(|key| !key.revoked).filter_map(|key| {
                let at = key.expiry()?;
                Some((
                    vec![key.tenant.clone(), key.id.clone()],
                    at.as_second() as f64,
                ))
            }));
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.requests.render(&mut out);
        self.errors.render(&mut out);
        self.latency.render(&mut out);
        self.first_token.render(&mut out);
        self.tokens.render(&mut out);
        self.limited.render(&mut out);
        self.guard.render(&mut out);
        self.extraction_alerts.render(&mut out);
        self.extraction.render(&mut out);
        self.overhead.render(&mut out);
        self.upstream_errors.render(&mut out);
        self.reloads.render(&mut out);
        self.shared_limits_fallbacks.render(&mut out);
        self.client_connections_refused.render(&mut out);
        self.audit.render(&mut out);
        self.audit_seq.render(&mut out);
        self.content.render(&mut out);
        self.audit_failing.render(&mut out);
        self.audit_queued.render(&mut out);
        self.certificate_expiry.render(&mut out);
        self.api_key_expiry.render(&mut out);
        header(
            &mut out,
            "hangar_gateway_in_flight",
            "Requests in flight now.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "hangar_gateway_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_counts_are_counters_and_the_newest_seq_a_gauge_without_labels() {
        let metrics = Metrics::default();
        metrics.audit.set(&["written"], 7);
        metrics.audit.set(&["written"], 9);
        metrics.audit_seq.set(&[], 12.0);
        let page = metrics.render();
        assert!(
            page.contains("hangar_gateway_audit_records_total{state=\"written\"} 9\n"),
            "{page}"
        );
        assert!(
            page.contains(
                "# TYPE hangar_gateway_audit_last_seq gauge\nhangar_gateway_audit_last_seq 12\n"
            ),
            "{page}"
        );
    }

    #[test]
    fn a_gauge_family_set_exactly_keeps_only_the_new_series() {
        let metrics = Metrics::default();
        let expiry = &metrics.certificate_expiry;
        expiry.set_exactly([
            (vec!["served".to_owned()], 1.0),
            (vec!["model_client".to_owned()], 2.0),
        ]);
        expiry.set_exactly([(vec!["served".to_owned()], 3.0)]);
        let text = metrics.render();
        assert!(text.contains(
            "hangar_gateway_certificate_expiry_timestamp_seconds{certificate=\"served\"} 3"
        ));
        assert!(!text.contains("certificate=\"model_client\""), "{text}");
    }

    #[test]
    fn a_bounded_counter_family_counts_new_series_past_its_bound_as_one() {
        let metrics = Metrics::default();
        let alerts = &metrics.extraction_alerts;
        let other = ["t", "(others)"];
        alerts.add_bounded(&["t", "a"], 1, 2, &other);
        alerts.add_bounded(&["t", "b"], 1, 2, &other);
        alerts.add_bounded(&["t", "c"], 1, 2, &other);
        alerts.add_bounded(&["t", "d"], 1, 2, &other);
        // A series already there keeps counting.
        alerts.add_bounded(&["t", "a"], 1, 2, &other);
        assert_eq!(alerts.get(&["t", "a"]), 2);
        assert_eq!(alerts.get(&["t", "c"]), 0);
        assert_eq!(alerts.get(&other), 2);
    }

    #[test]
    fn a_counter_saturates_instead_of_wrapping() {
        let metrics = Metrics::default();
        let labels = ["t", "m", "v", "completion"];
        metrics.tokens.add(&labels, u64::MAX);
        metrics.tokens.add(&labels, 10);
        assert_eq!(metrics.tokens.get(&labels), u64::MAX);
    }

    #[test]
    fn counters_and_histograms_render_in_the_exposition_format() {
        let metrics = Metrics::default();
        metrics.requests.add(&["payments", "llama", "v1", "200"], 1);
        metrics.requests.add(&["payments", "llama", "v1", "200"], 2);
        metrics
            .overhead
            .observe(&["llama"], Duration::from_micros(300));
        let text = metrics.render();
        assert!(text.contains(
            "hangar_gateway_requests_total{tenant=\"payments\",model=\"llama\",version=\"v1\",status=\"200\"} 3"
        ));
        assert!(
            text.contains(
                "hangar_gateway_overhead_seconds_bucket{model=\"llama\",le=\"0.00025\"} 0"
            )
        );
        assert!(
            text.contains(
                "hangar_gateway_overhead_seconds_bucket{model=\"llama\",le=\"0.0005\"} 1"
            )
        );
        assert!(text.contains("hangar_gateway_overhead_seconds_count{model=\"llama\"} 1"));
        assert!(text.contains("# TYPE hangar_gateway_overhead_seconds histogram"));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.reloads.add(&["a\"b\\c\nd"], 1);
        assert!(metrics.render().contains(r#"result="a\"b\\c\nd""#));
    }

    #[test]
    fn get_reads_back_a_series() {
        let metrics = Metrics::default();
        metrics.limited.add(&["t", "requests_per_minute"], 4);
        assert_eq!(metrics.limited.get(&["t", "requests_per_minute"]), 4);
        assert_eq!(metrics.limited.get(&["t", "other"]), 0);
    }
}
