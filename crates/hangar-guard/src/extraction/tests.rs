use super::*;

const MINUTE: u64 = 60_000;

fn thresholds(min_requests: u64) -> ExtractionThresholds {
    ExtractionThresholds {
        window: Duration::from_secs(600),
        min_requests,
        distinct_ratio: 0.9,
        output_input_ratio: 10.0,
    }
}

/// Records `count` requests one second apart from `start_ms` and returns the alerts raised.
fn burst(
    monitor: &mut ExtractionMonitor,
    key: &str,
    start_ms: u64,
    count: u64,
    prompt: impl Fn(u64) -> String,
    tokens: (u64, u64),
) -> Vec<ExtractionAlert> {
    (0..count)
        .filter_map(|i| monitor.record(key, start_ms + i * 1000, &prompt(i), tokens.0, tokens.1))
        .collect()
}

#[test]
fn distinct_prompts_at_volume_alert_once_per_window() {
    let mut monitor = ExtractionMonitor::new(thresholds(100));
    let alerts = burst(
        &mut monitor,
        "k1",
        0,
        300,
        |i| format!("translate sentence {i}"),
        (50, 60),
    );
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.key_id, "k1");
    assert_eq!(alert.signals.requests_in_window, 100);
    assert_eq!(
        alert.reasons,
        vec![ExtractionReason::DistinctPrompts {
            observed: 1.0,
            threshold: 0.9
        }]
    );
    assert!(
        alert.to_string().contains("distinct prompts 1.00 ≥ 0.90"),
        "{alert}"
    );
    // A full window after the first alert (at 99 s), the same pattern alerts again.
    let later = burst(
        &mut monitor,
        "k1",
        12 * MINUTE,
        10,
        |i| format!("other {i}"),
        (50, 60),
    );
    assert_eq!(later.len(), 1);
}

#[test]
fn repeated_prompts_do_not_look_like_a_sweep() {
    let mut monitor = ExtractionMonitor::new(thresholds(100));
    // Ten distinct prompts asked over and over, with whitespace and case variations.
    let alerts = burst(
        &mut monitor,
        "k1",
        0,
        300,
        |i| {
            let base = format!("What is the status of order {}?", i % 10);
            if i % 2 == 0 {
                base.to_uppercase()
            } else {
                format!("  {}\n", base.replace(' ', "   "))
            }
        },
        (50, 60),
    );
    assert!(alerts.is_empty());
    let signals = monitor.signals("k1").unwrap();
    assert_eq!(signals.requests_in_window, 300);
    assert!(
        (signals.distinct_prompt_ratio - 10.0 / 300.0).abs() < 1e-9,
        "{signals:?}"
    );
}

#[test]
fn long_outputs_for_short_prompts_alert() {
    let mut monitor = ExtractionMonitor::new(thresholds(50));
    let alerts = burst(
        &mut monitor,
        "k1",
        0,
        60,
        |_| "write an essay".into(),
        (10, 2000),
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].reasons,
        vec![ExtractionReason::OutputInputRatio {
            observed: 200.0,
            threshold: 10.0
        }]
    );
}

#[test]
fn both_signals_are_reported_together() {
    let mut monitor = ExtractionMonitor::new(thresholds(20));
    let alerts = burst(&mut monitor, "k1", 0, 20, |i| format!("q{i}"), (5, 500));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].reasons.len(), 2);
}

#[test]
fn low_volume_never_alerts() {
    let mut monitor = ExtractionMonitor::new(thresholds(100));
    // 99 requests in each window: distinct and output-heavy, but never enough of them.
    let alerts = burst(&mut monitor, "k1", 0, 99, |i| format!("q{i}"), (1, 1000));
    assert!(alerts.is_empty());
    let later = burst(
        &mut monitor,
        "k1",
        20 * MINUTE,
        99,
        |i| format!("r{i}"),
        (1, 1000),
    );
    assert!(later.is_empty());
}

#[test]
fn old_requests_leave_the_window() {
    let mut monitor = ExtractionMonitor::new(thresholds(1000));
    burst(&mut monitor, "k1", 0, 100, |i| format!("q{i}"), (10, 10));
    assert_eq!(monitor.signals("k1").unwrap().requests_in_window, 100);
    monitor.record("k1", 30 * MINUTE, "late", 10, 30);
    let signals = monitor.signals("k1").unwrap();
    assert_eq!(signals.requests_in_window, 1);
    assert_eq!(signals.output_input_ratio, 3.0);
}

#[test]
fn memory_per_key_is_bounded() {
    let mut monitor = ExtractionMonitor::with_limits(thresholds(10), 16, 64);
    burst(&mut monitor, "k1", 0, 500, |i| format!("q{i}"), (1, 1));
    let key = &monitor.keys["k1"];
    assert_eq!(key.entries.len(), 64);
    assert_eq!(key.prompts.len(), 64);
    assert_eq!(key.prompt_tokens, 64);
}

#[test]
fn capacity_is_raised_to_min_requests_so_alerts_stay_possible() {
    let mut monitor = ExtractionMonitor::with_limits(thresholds(200), 16, 64);
    let alerts = burst(&mut monitor, "k1", 0, 200, |i| format!("q{i}"), (1, 1));
    assert_eq!(alerts.len(), 1);
}

#[test]
fn the_least_recently_seen_key_is_evicted() {
    let mut monitor = ExtractionMonitor::with_limits(thresholds(10), 3, 64);
    monitor.record("a", 1, "p", 1, 1);
    monitor.record("b", 2, "p", 1, 1);
    monitor.record("c", 3, "p", 1, 1);
    monitor.record("a", 4, "p", 1, 1);
    monitor.record("d", 5, "p", 1, 1);
    assert_eq!(monitor.tracked_keys(), 3);
    assert!(monitor.signals("b").is_none());
    assert!(monitor.signals("a").is_some());
    assert!(monitor.signals("d").is_some());
    // What was evicted is handed out once, so its metrics can go too.
    assert_eq!(monitor.forget_idle(6), ["b"]);
    assert!(monitor.forget_idle(7).is_empty());
    // Or taken as they go, without waiting for a scrape.
    monitor.record("e", 8, "p", 1, 1);
    assert_eq!(monitor.take_evicted(), ["c"]);
    assert!(monitor.take_evicted().is_empty());
    assert!(monitor.forget_idle(9).is_empty());
}

#[test]
fn a_full_monitor_evicts_its_least_recently_seen_eighth_at_once() {
    let mut monitor = ExtractionMonitor::with_limits(thresholds(10), 16, 64);
    for i in 0..16 {
        monitor.record(&format!("k{i}"), 100 - i, "p", 1, 1);
    }
    monitor.record("new", 200, "p", 1, 1);
    // k15 and k14 were seen least recently; the next new keys need no eviction.
    let mut evicted = monitor.take_evicted();
    evicted.sort();
    assert_eq!(evicted, ["k14", "k15"]);
    monitor.record("newer", 201, "p", 1, 1);
    assert!(monitor.take_evicted().is_empty());
    assert_eq!(monitor.tracked_keys(), 16);

    // Keys seen at the same time as the newest to go do not spare an older one.
    let mut monitor = ExtractionMonitor::with_limits(thresholds(10), 16, 64);
    monitor.record("oldest", 1, "p", 1, 1);
    for i in 0..15 {
        monitor.record(&format!("k{i}"), 5 + u64::from(i >= 8) * 10, "p", 1, 1);
    }
    monitor.record("new", 200, "p", 1, 1);
    let evicted = monitor.take_evicted();
    assert_eq!(evicted.len(), 2, "{evicted:?}");
    assert!(evicted.contains(&"oldest".to_owned()), "{evicted:?}");
}

#[test]
fn keys_idle_for_a_whole_window_are_forgotten() {
    let mut monitor = ExtractionMonitor::new(thresholds(10));
    monitor.record("quiet", 0, "p", 1, 1);
    monitor.record("busy", 9 * MINUTE, "p", 1, 1);
    assert!(
        monitor.forget_idle(10 * MINUTE).is_empty(),
        "a window is 10 minutes"
    );
    assert_eq!(monitor.forget_idle(10 * MINUTE + 1), ["quiet"]);
    assert!(monitor.signals("quiet").is_none());
    assert!(monitor.signals("busy").is_some());
}

#[test]
fn keys_are_tracked_apart() {
    let mut monitor = ExtractionMonitor::new(thresholds(50));
    burst(&mut monitor, "busy", 0, 60, |i| format!("q{i}"), (10, 10));
    monitor.record("quiet", 0, "hello", 10, 10);
    assert_eq!(monitor.signals("busy").unwrap().requests_in_window, 60);
    assert_eq!(monitor.signals("quiet").unwrap().requests_in_window, 1);
    assert!(monitor.signals("unknown").is_none());
}

#[test]
fn time_going_backwards_and_huge_numbers_do_not_panic() {
    let mut monitor = ExtractionMonitor::new(ExtractionThresholds {
        window: Duration::MAX,
        ..thresholds(1)
    });
    monitor.record("k", u64::MAX, "a", u64::MAX, u64::MAX);
    monitor.record("k", 0, "b", u64::MAX, 0);
    monitor.record("k", 5, "", 0, u64::MAX);
    let signals = monitor.signals("k").unwrap();
    assert_eq!(signals.requests_in_window, 3);
}

#[test]
fn prompt_normalisation() {
    assert_eq!(prompt_hash("Hello   World"), prompt_hash("  hello world\n"));
    assert_eq!(prompt_hash("ÉCOLE"), prompt_hash("école"));
    assert_ne!(prompt_hash("hello world"), prompt_hash("helloworld"));
    assert_ne!(prompt_hash("a"), prompt_hash("b"));
}

#[test]
fn thresholds_serialise_with_the_window_in_seconds() {
    let json = serde_json::to_value(ExtractionThresholds::default()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "window": 600,
            "minRequests": 500,
            "distinctRatio": 0.95,
            "outputInputRatio": 20.0
        })
    );
    let back: ExtractionThresholds = serde_json::from_value(json).unwrap();
    assert_eq!(back, ExtractionThresholds::default());
}

#[test]
fn the_prompt_hash_is_fnv_1a_so_every_replica_computes_the_same() {
    // Replicas sharing a window in Redis compare these across processes and versions.
    assert_eq!(prompt_hash("  Hello   WORLD "), 0x779a_65e7_023c_d2e7);
}

#[test]
fn signals_of_counts_tell_prompts_apart_among_the_remembered_ones() {
    let signals = ExtractionSignals::of_counts(10, 5, 1024, 100, 2000);
    assert_eq!(signals.requests_in_window, 10);
    assert_eq!(signals.distinct_prompt_ratio, 0.5);
    assert_eq!(signals.output_input_ratio, 20.0);
    // More requests than remembered: the distinct share is of the remembered ones.
    let signals = ExtractionSignals::of_counts(5000, 1024, 1024, 0, 7);
    assert_eq!(signals.distinct_prompt_ratio, 1.0);
    assert_eq!(signals.output_input_ratio, 7.0);
    assert_eq!(
        ExtractionSignals::of_counts(0, 0, 1024, 0, 0).distinct_prompt_ratio,
        0.0
    );
}

#[test]
fn a_window_remembers_enough_requests_to_alert() {
    assert_eq!(thresholds(10).remembered(), DEFAULT_ENTRIES_PER_KEY);
    assert_eq!(thresholds(5000).remembered(), 5000);
    assert_eq!(thresholds(u64::MAX).remembered(), MAX_ENTRIES_PER_KEY);
    let monitor = ExtractionMonitor::new(thresholds(5000));
    assert_eq!(monitor.entries_per_key, thresholds(5000).remembered());
}
