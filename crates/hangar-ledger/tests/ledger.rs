#![allow(clippy::unwrap_used, clippy::panic)]
//! The ledger as its users see it: append, close, reopen, rotate, forget, and verify — including
//! after someone edited the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hangar_ledger::{
    Clock, Ledger, LedgerConfig, LedgerError, ProblemKind, VerifyReport, verify, verify_against,
};
use jiff::Timestamp;
use serde_json::{Value, json};

const PREFIX: &str = "audit";

fn config(dir: &Path) -> LedgerConfig {
    let mut config = LedgerConfig::new(dir, PREFIX);
    config.flush_every = Duration::from_millis(10);
    config
}

fn request(n: u64) -> Value {
    json!({"tenant": "acme", "key": "k1", "model": "llama-3", "n": n, "status": 200})
}

/// Opens a ledger, appends `count` records numbered from `from`, closes it.
fn write(config: LedgerConfig, from: u64, count: u64) {
    let ledger = Ledger::open(config).unwrap();
    let sender = ledger.sender();
    for n in from..from + count {
        assert!(sender.append(request(n)));
    }
    let stats = ledger.close().unwrap();
    assert_eq!(stats.written, count);
    assert_eq!(stats.dropped, 0);
}

/// The ledger's files, oldest first.
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with(&format!("{prefix}-2")) && name.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    files
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines
            .iter()
            .map(|line| format!("{line}\n"))
            .collect::<String>(),
    )
    .unwrap();
}

fn record_of(line: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()["record"].clone()
}

/// Like [`record_of`], for files that may hold a torn line.
fn try_record_of(line: &str) -> Option<Value> {
    Some(serde_json::from_str::<Value>(line).ok()?["record"].clone())
}

/// The callers' `n`s, in file order, skipping the ledger's own records.
fn numbers(dir: &Path) -> Vec<u64> {
    files(dir, PREFIX)
        .iter()
        .flat_map(|file| lines(file))
        .filter_map(|line| try_record_of(&line)?["n"].as_u64())
        .collect()
}

fn kinds(report: &VerifyReport) -> Vec<&ProblemKind> {
    report
        .problems
        .iter()
        .map(|problem| &problem.kind)
        .collect()
}

fn assert_intact(report: &VerifyReport) {
    assert!(
        report.is_intact(),
        "unexpected problems: {:#?}",
        report.problems
    );
}

#[test]
fn records_round_trip_as_one_verified_chain() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 100);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(report.files, 1);
    assert_eq!(report.records, 100);
    assert_eq!((report.first_seq, report.last_seq), (Some(0), Some(99)));
    assert_eq!(report.starts_at_seq, None);
    assert_eq!(numbers(dir.path()), (0..100).collect::<Vec<_>>());

    let first = serde_json::from_str::<Value>(&lines(&files(dir.path(), PREFIX)[0])[0]).unwrap();
    assert_eq!(first["seq"], 0);
    assert_eq!(first["prev"], hangar_ledger::GENESIS_PREV);
    assert_eq!(first["record"], request(0));
    assert!(first["time"].as_str().unwrap().parse::<Timestamp>().is_ok());
}

#[test]
fn close_writes_everything_that_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.flush_every = Duration::from_secs(60); // only close can write them
    let ledger = Ledger::open(config).unwrap();
    let senders: Vec<_> = (0..4).map(|_| ledger.sender()).collect();
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(t, sender)| {
            std::thread::spawn(move || {
                (0..5_000)
                    .filter(|n| sender.append(json!({"t": t, "n": n})))
                    .count()
            })
        })
        .collect();
    let accepted: usize = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .sum();
    let stats = ledger.close().unwrap();

    assert_eq!(accepted, 20_000, "the default queue holds them all");
    assert_eq!(stats.written, 20_000);
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(report.records, 20_000);
    assert_eq!(stats.last.unwrap().hash, report.last_hash.unwrap());
}

#[test]
fn an_edited_byte_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 10);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines[4] = lines[4].replace("\"acme\"", "\"acmf\"");
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(kinds(&report), [&ProblemKind::EditedRecord { seq: 4 }]);
    assert_eq!(report.problems[0].line, 5);
    assert!(report.problems[0].to_string().starts_with("audit-"));
    assert!(
        report.problems[0]
            .to_string()
            .contains(":5: record 4 was edited")
    );
}

#[test]
fn an_edit_that_means_the_same_json_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 3);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines[1] = lines[1].replace("\"tenant\":\"acme\"", "\"tenant\": \"acme\"");
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(kinds(&report), [&ProblemKind::EditedRecord { seq: 1 }]);
}

#[test]
fn a_deleted_line_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 10);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines.remove(6);
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(
        kinds(&report),
        [&ProblemKind::RemovedRecords {
            first_seq: 6,
            last_seq: 6
        }]
    );
    assert_eq!(report.problems[0].line, 7);
    assert_eq!(
        report.problems[0].kind.to_string(),
        "record 6 is missing: the chain skips it just before this line (removed from the file)"
    );
    let several = ProblemKind::RemovedRecords {
        first_seq: 6,
        last_seq: 9,
    };
    assert_eq!(
        several.to_string(),
        "records 6 to 9 are missing: the chain skips them just before this line (removed from the file)"
    );
}

#[test]
fn two_swapped_lines_are_found_as_reordered() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 10);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines.swap(3, 4);
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(
        kinds(&report),
        [&ProblemKind::Reordered {
            seq: 3,
            after_seq: 4
        }]
    );
}

#[test]
fn a_recomputed_hash_still_breaks_the_link() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 5);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    // A forger who edits record 2 and recomputes its hash.
    let mut line: Value = serde_json::from_str(&lines[2]).unwrap();
    line["record"]["status"] = json!(500);
    let record = serde_json::to_string(&line["record"]).unwrap();
    let preimage = format!(
        "{}\n2\n{}\n{}",
        line["prev"].as_str().unwrap(),
        line["time"].as_str().unwrap(),
        record
    );
    let hash = ring::digest::digest(&ring::digest::SHA256, preimage.as_bytes());
    let hash: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    lines[2] = format!(
        r#"{{"seq":2,"time":{},"prev":{},"hash":"{hash}","record":{record}}}"#,
        line["time"], line["prev"]
    );
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(kinds(&report), [&ProblemKind::BrokenLink { seq: 3 }]);
}

#[test]
fn garbage_lines_are_reported_as_malformed() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 4);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines[1] = "not json".into();
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(
        matches!(kinds(&report)[..], [ProblemKind::Malformed { .. }]),
        "{:?}",
        report.problems
    );
    assert_eq!(report.problems[0].line, 2);
}

fn rotating_config(dir: &Path) -> LedgerConfig {
    let mut config = config(dir);
    config.rotate_bytes = 2_000;
    config.batch = 4;
    config
}

#[test]
fn rotation_by_size_makes_files_that_verify_as_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 200);

    let files = files(dir.path(), PREFIX);
    assert!(files.len() >= 5, "{} files", files.len());
    for (file, next) in files.iter().zip(&files[1..]) {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size < 2_000 + 4 * 300, "{} is {size} bytes", file.display());
        let last = record_of(lines(file).last().unwrap());
        assert_eq!(last["kind"], "rotate");
        assert_eq!(last["next"], next.file_name().unwrap().to_str().unwrap());
    }
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(report.files, files.len());
    assert_eq!(numbers(dir.path()), (0..200).collect::<Vec<_>>());
    // Each file's name carries the seq of its first record.
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let first: Value = serde_json::from_str(&lines(file)[0]).unwrap();
        assert!(
            name.ends_with(&format!("-{:020}.jsonl", first["seq"].as_u64().unwrap())),
            "{name}"
        );
    }
}

#[test]
fn a_deleted_middle_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 100);
    let files = files(dir.path(), PREFIX);
    assert!(files.len() >= 3);
    std::fs::remove_file(&files[1]).unwrap();

    let report = verify(dir.path(), PREFIX).unwrap();
    let missing = files[1].file_name().unwrap().to_str().unwrap();
    match kinds(&report)[..] {
        [ProblemKind::MissingFile { name, last_seq, .. }] => {
            assert_eq!(name, missing);
            assert!(last_seq.is_some());
        }
        _ => panic!("{:#?}", report.problems),
    }
    assert_eq!(
        report.problems[0].file,
        files[2].file_name().unwrap().to_str().unwrap()
    );
}

#[test]
fn a_deleted_newest_file_is_found_through_the_rotation_record() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 100);
    let files = files(dir.path(), PREFIX);
    std::fs::remove_file(files.last().unwrap()).unwrap();

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(
        matches!(
            kinds(&report)[..],
            [ProblemKind::MissingFile { last_seq: None, .. }]
        ),
        "{:#?}",
        report.problems
    );
}

#[test]
fn a_cut_end_of_an_older_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 100);
    let files = files(dir.path(), PREFIX);
    let mut first = lines(&files[0]);
    first.truncate(first.len() - 2);
    write_lines(&files[0], &first);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(
        matches!(kinds(&report)[..], [ProblemKind::TruncatedFile { .. }]),
        "{:#?}",
        report.problems
    );
    assert_eq!(
        report.problems[0].file,
        files[0].file_name().unwrap().to_str().unwrap()
    );
}

#[test]
fn reopening_continues_the_chain_in_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 5);
    write(config(dir.path()), 5, 5);

    assert_eq!(files(dir.path(), PREFIX).len(), 1);
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(report.last_seq, Some(9));
    assert_eq!(numbers(dir.path()), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_torn_last_line_is_acknowledged_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 5);
    let torn_file = files(dir.path(), PREFIX)[0].clone();
    // A crash in the middle of a write.
    let mut content = std::fs::read(&torn_file).unwrap();
    let fragment = br#"{"seq":5,"time":"2025-01-01T00:00:00Z","pr"#;
    content.extend_from_slice(fragment);
    std::fs::write(&torn_file, &content).unwrap();

    // Before the ledger reopens, the torn line is only a note.
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("incomplete line")),
        "{:?}",
        report.notes
    );

    write(config(dir.path()), 5, 5);
    let files = files(dir.path(), PREFIX);
    assert_eq!(files.len(), 2, "a new file after the torn one");
    assert_eq!(
        std::fs::read(&torn_file).unwrap(),
        content,
        "the torn bytes are kept"
    );
    let resume = record_of(&lines(&files[1])[0]);
    assert_eq!(resume["kind"], "resume");
    assert_eq!(
        resume["torn"]["file"],
        torn_file.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(resume["torn"]["bytes"], fragment.len());

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.contains("acknowledged")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        report.last_seq,
        Some(10),
        "5 records, the resume record, 5 records"
    );
    assert_eq!(numbers(dir.path()), (0..10).collect::<Vec<_>>());

    // Changing the acknowledged bytes afterwards is caught.
    let mut changed = content.clone();
    *changed.last_mut().unwrap() = b'X';
    std::fs::write(&torn_file, &changed).unwrap();
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(
        kinds(&report),
        [&ProblemKind::TornLine {
            bytes: fragment.len() as u64
        }]
    );
}

#[test]
fn a_truncated_newest_end_needs_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(config(dir.path())).unwrap();
    let sender = ledger.sender();
    for n in 0..10 {
        sender.append(request(n));
    }
    let anchor = ledger.close().unwrap().last.unwrap();
    assert_eq!(anchor.seq, 9);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines.truncate(7);
    write_lines(file, &lines);

    // From the files alone the chain looks whole: that is the documented limit.
    assert_intact(&verify(dir.path(), PREFIX).unwrap());
    let report = verify_against(dir.path(), PREFIX, &anchor).unwrap();
    assert_eq!(
        kinds(&report),
        [&ProblemKind::BehindAnchor {
            anchor_seq: 9,
            last_seq: Some(6)
        }]
    );
}

#[test]
fn an_anchor_with_another_hash_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 3);
    let anchor = hangar_ledger::Anchor {
        seq: 1,
        hash: "ab".repeat(32),
    };
    let report = verify_against(dir.path(), PREFIX, &anchor).unwrap();
    assert_eq!(kinds(&report), [&ProblemKind::AnchorMismatch { seq: 1 }]);
}

/// A clock the test sets, and can stop: `now` waits while it is held.
#[derive(Clone)]
struct TestClock {
    state: Arc<(Mutex<(Timestamp, bool)>, Condvar)>,
}

impl TestClock {
    fn at(time: &str) -> Self {
        TestClock {
            state: Arc::new((Mutex::new((time.parse().unwrap(), false)), Condvar::new())),
        }
    }

    fn set(&self, time: &str) {
        self.state.0.lock().unwrap().0 = time.parse().unwrap();
    }

    fn hold(&self, held: bool) {
        self.state.0.lock().unwrap().1 = held;
        self.state.1.notify_all();
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let (lock, released) = &*self.state;
        let state = released
            .wait_while(lock.lock().unwrap(), |(_, held)| *held)
            .unwrap();
        state.0
    }
}

/// A clock a microsecond later at every reading.
struct TickingClock(std::sync::atomic::AtomicI64);

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        let tick = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Timestamp::from_microsecond(1_735_689_600_000_000 + tick).unwrap()
    }
}

#[test]
fn each_record_is_timed_when_it_is_chained_not_when_its_batch_began() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // One batch for all: a record that joins it late must not carry a time from before it came.
    config.flush_every = Duration::from_secs(60);
    let ledger = Ledger::open_with_clock(config, TickingClock(0.into())).unwrap();
    let sender = ledger.sender();
    for n in 0..10 {
        sender.append(request(n));
    }
    ledger.close().unwrap();
    let times: Vec<Timestamp> = files(dir.path(), PREFIX)
        .iter()
        .flat_map(|file| lines(file))
        .map(|line| {
            let line: Value = serde_json::from_str(&line).unwrap();
            line["time"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(times.len(), 10, "{times:?}");
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
    assert_intact(&verify(dir.path(), PREFIX).unwrap());
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// With two days' retention: 60 records on 2025-01-01, then `later` more four days on, which
/// rotate and so delete the old files. Returns the files there were before the jump.
fn write_across_retention(dir: &Path, later: u64) -> Vec<PathBuf> {
    let clock = TestClock::at("2025-01-01T00:00:00Z");
    let mut config = rotating_config(dir);
    config.retention = Some(Duration::from_secs(2 * 24 * 3600));
    let ledger = Ledger::open_with_clock(config, clock.clone()).unwrap();
    let sender = ledger.sender();
    for n in 0..60 {
        sender.append(request(n));
    }
    wait_until("the first records", || sender.written() == 60);
    let old_files = files(dir, PREFIX);
    assert!(old_files.len() >= 3);

    clock.set("2025-01-05T00:00:00Z");
    for n in 60..60 + later {
        sender.append(request(n));
    }
    ledger.close().unwrap();
    old_files
}

#[test]
fn retention_deletes_old_files_at_rotation_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let old_files = write_across_retention(dir.path(), 60);

    let present = files(dir.path(), PREFIX);
    let removed: Vec<_> = old_files
        .iter()
        .filter(|file| !present.contains(file))
        .collect();
    // All old files but the one that was current when the clock jumped.
    assert_eq!(removed.len(), old_files.len() - 1);
    let retention: Vec<Value> = present
        .iter()
        .flat_map(|file| lines(file))
        .map(|line| record_of(&line))
        .filter(|record| record["kind"] == "retention")
        .collect();
    assert_eq!(retention.len(), 1);
    let names: Vec<_> = removed
        .iter()
        .map(|file| file.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(retention[0]["removed"], json!(names));
    assert_eq!(retention[0]["before"], "2025-01-03T00:00:00.000000Z");

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert!(report.starts_at_seq.is_some());
    assert!(report.start_explained_by_retention);
}

#[test]
fn retention_applies_at_start_too() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2025-01-01T00:00:00Z");
    let ledger = Ledger::open_with_clock(rotating_config(dir.path()), clock.clone()).unwrap();
    let sender = ledger.sender();
    for n in 0..60 {
        sender.append(request(n));
    }
    ledger.close().unwrap();
    let mut config = rotating_config(dir.path());
    config.retention = Some(Duration::from_secs(24 * 3600));
    assert_a_month_on_only_the_newest_file_stays(config, clock);
}

/// Opens the ledger of `config` a month after `clock` (with a retention shorter than that),
/// which keeps only the newest file, and the chain verifies.
fn assert_a_month_on_only_the_newest_file_stays(config: LedgerConfig, clock: TestClock) {
    let dir = config.dir.clone();
    let before = files(&dir, PREFIX).len();
    assert!(before >= 3, "{before}");
    clock.set("2025-02-01T00:00:00Z");
    Ledger::open_with_clock(config, clock)
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(
        files(&dir, PREFIX).len(),
        1,
        "only the newest of {before} stays"
    );
    let report = verify(&dir, PREFIX).unwrap();
    assert_intact(&report);
    assert!(report.start_explained_by_retention);
}

#[test]
fn missing_oldest_files_without_a_retention_record_are_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 100);
    let files = files(dir.path(), PREFIX);
    std::fs::remove_file(&files[0]).unwrap();

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(report.starts_at_seq.is_some());
    assert!(!report.start_explained_by_retention);
    let first_seq = report.starts_at_seq.unwrap();
    assert_eq!(
        kinds(&report),
        [&ProblemKind::UnexplainedStart { first_seq }]
    );
    assert_eq!(report.problems[0].line, 1);
}

#[test]
fn files_deleted_inside_the_retention_period_are_not_explained_by_an_earlier_retention() {
    let dir = tempfile::tempdir().unwrap();
    write_across_retention(dir.path(), 100);
    assert_intact(&verify(dir.path(), PREFIX).unwrap());

    // Someone deletes the oldest file left, written after the retention's cut-off.
    let present = files(dir.path(), PREFIX);
    assert!(present.len() >= 3, "{present:?}");
    std::fs::remove_file(&present[0]).unwrap();
    // The start is unexplained, and the retention record that kept the file says it was kept:
    // the second still holds once later retention runs have removed the files after it.
    let report = verify(dir.path(), PREFIX).unwrap();
    let name = present[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        matches!(
            kinds(&report)[..],
            [ProblemKind::DeletedKeptFile { name: kept }, ProblemKind::UnexplainedStart { .. }] if *kept == name
        ),
        "{:#?}",
        report.problems
    );
}

#[test]
fn records_cut_from_the_file_retention_kept_are_found_even_when_it_is_renamed_to_match() {
    let dir = tempfile::tempdir().unwrap();
    write_across_retention(dir.path(), 100);
    let present = files(dir.path(), PREFIX);
    let oldest = &present[0];
    let kept: Vec<String> = lines(oldest);
    let record = |line: &str| serde_json::from_str::<Value>(line).unwrap();
    let first_seq = record(&kept[0])["seq"].as_u64().unwrap();
    // Its first three records go, and the name is changed to the new first one's.
    let rest = &kept[3..];
    let new_first = record(&rest[0])["seq"].as_u64().unwrap();
    assert_eq!(new_first, first_seq + 3);
    let name = oldest.file_name().unwrap().to_str().unwrap();
    let renamed = name.replace(&format!("{first_seq:020}"), &format!("{new_first:020}"));
    assert_ne!(renamed, name);
    std::fs::remove_file(oldest).unwrap();
    std::fs::write(dir.path().join(&renamed), rest.join("\n") + "\n").unwrap();

    // The start is unexplained, and the file retention kept is gone under its name.
    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(!report.start_explained_by_retention);
    assert!(
        matches!(
            kinds(&report)[..],
            [ProblemKind::UnexplainedStart { .. }, ProblemKind::DeletedKeptFile { name: kept }] if kept == name
        ),
        "{:#?}",
        report.problems
    );
}

#[test]
fn a_first_line_too_long_to_read_whole_does_not_stop_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2025-01-01T00:00:00Z");
    let mut config = rotating_config(dir.path());
    config.retention = Some(Duration::from_secs(24 * 3600));
    let ledger = Ledger::open_with_clock(config.clone(), clock.clone()).unwrap();
    let sender = ledger.sender();
    // Each file starts with a record of 2 MiB (a content log's long answer).
    for n in 0..6 {
        sender.append(json!({"n": n, "text": "a".repeat(2 << 20)}));
    }
    ledger.close().unwrap();
    assert_a_month_on_only_the_newest_file_stays(config, clock);
}

#[test]
fn renaming_files_older_does_not_make_retention_delete_them() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 100);
    let before = files(dir.path(), PREFIX);
    assert!(before.len() >= 4);
    // The time in a name is not covered by any hash: make the first files look years old.
    for file in &before[..4] {
        let name = file.file_name().unwrap().to_str().unwrap();
        let seq = name.rsplit('-').next().unwrap();
        std::fs::rename(
            file,
            dir.path().join(format!("{PREFIX}-20000101T000000-{seq}")),
        )
        .unwrap();
    }
    let mut config = rotating_config(dir.path());
    config.retention = Some(Duration::from_secs(24 * 3600));
    Ledger::open(config).unwrap().close().unwrap();

    assert_eq!(
        files(dir.path(), PREFIX).len(),
        before.len(),
        "every file stays"
    );
    let report = verify(dir.path(), PREFIX).unwrap();
    // Each rotation record names the file under its old name.
    let renamed = report
        .problems
        .iter()
        .filter(|problem| matches!(problem.kind, ProblemKind::RenamedFile { .. }))
        .count();
    assert_eq!(renamed, 3, "{:#?}", report.problems);
}

#[test]
fn a_ledger_file_that_is_a_symbolic_link_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 40);
    let newest = files(dir.path(), PREFIX).pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    std::os::unix::fs::symlink("/dev/null", &newest).unwrap();

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(
        kinds(&report).contains(&&ProblemKind::NotARegularFile),
        "{:#?}",
        report.problems
    );
    let opened = Ledger::open(rotating_config(dir.path()));
    assert!(
        matches!(&opened, Err(LedgerError::Io { .. })),
        "appending to a link could lose every record"
    );
}

#[test]
fn a_line_written_differently_with_the_same_values_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 5);
    let file = files(dir.path(), PREFIX).pop().unwrap();
    let original = lines(&file);
    for (edit, why) in [
        (original[2].replace("\"seq\":", "\"seq\" : "), "spaces"),
        (format!("{}\r", original[2]), "a CR line ending"),
        (original[2].replacen("T", "\\u0054", 1), "an escape"),
    ] {
        let mut edited = original.clone();
        edited[2] = edit;
        write_lines(&file, &edited);
        let report = verify(dir.path(), PREFIX).unwrap();
        assert!(
            matches!(kinds(&report)[..], [ProblemKind::Malformed { .. }]),
            "{why}: {:#?}",
            report.problems
        );
        assert_eq!(report.problems[0].line, 3, "{why}");
    }
}

#[test]
fn a_second_record_with_the_same_seq_and_other_content_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 5);
    let file = files(dir.path(), PREFIX).pop().unwrap();
    let mut edited = lines(&file);
    let prev = serde_json::from_str::<Value>(&edited[1]).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let (forged, _) = forged_line(2, &prev, r#"{"n":99}"#);
    edited.insert(3, forged);
    write_lines(&file, &edited);
    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(
        kinds(&report).contains(&&ProblemKind::Conflicting { seq: 2 }),
        "{:#?}",
        report.problems
    );
    // The genuine record copied instead is a duplicate.
    edited[3] = edited[2].clone();
    write_lines(&file, &edited);
    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(
        kinds(&report).contains(&&ProblemKind::Duplicate { seq: 2 }),
        "{:#?}",
        report.problems
    );
}

#[test]
fn a_full_queue_drops_counts_and_records_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2025-01-01T00:00:00Z");
    let mut config = config(dir.path());
    config.queue = 4;
    config.batch = 4;
    let ledger = Ledger::open_with_clock(config, clock.clone()).unwrap();
    let sender = ledger.sender();

    clock.hold(true); // the writer stops at its next look at the clock
    let accepted = (0..1_000).filter(|&n| sender.append(request(n))).count() as u64;
    clock.hold(false);
    let stats = ledger.close().unwrap();

    assert!(
        accepted <= 4 + 4 + 1,
        "accepted {accepted} with a queue of 4"
    );
    assert_eq!(stats.dropped, 1_000 - accepted);
    assert_eq!(sender.dropped(), 1_000 - accepted);
    assert_eq!(stats.written, accepted);
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(report.dropped, 1_000 - accepted);
    let gaps: Vec<Value> = lines(&files(dir.path(), PREFIX)[0])
        .iter()
        .map(|line| record_of(line))
        .filter(|record| record["kind"] == "gap")
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0]["dropped"], 1_000 - accepted);
}

#[test]
fn large_records_are_bounded_by_bytes_and_their_room_comes_back_once_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2025-01-01T00:00:00Z");
    let mut config = config(dir.path());
    config.queue_bytes = 10_000;
    let ledger = Ledger::open_with_clock(config, clock.clone()).unwrap();
    let sender = ledger.sender();
    let big = |n: u64| json!({"n": n, "text": "a".repeat(3_000)});

    clock.hold(true);
    let accepted: Vec<bool> = (0..10)
        .map(|n| sender.append_sized(big(n), 3_000))
        .collect();
    // Three fit in 10 000 bytes; the fourth would not. Unsized records are not held back.
    assert_eq!(accepted.iter().filter(|a| **a).count(), 3, "{accepted:?}");
    assert!(sender.append(request(100)));
    clock.hold(false);
    wait_until("the queue to drain", || sender.written() == 4);
    assert!(
        sender.append_sized(big(10), 3_000),
        "room again once written"
    );
    // A record larger than the budget alone still goes when nothing else waits.
    wait_until("the queue to drain", || sender.written() == 5);
    assert!(sender.append_sized(big(11), 20_000));
    let stats = ledger.close().unwrap();
    assert_eq!((stats.written, stats.dropped), (6, 7));
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(report.dropped, 7);
}

#[test]
fn appends_after_close_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(config(dir.path())).unwrap();
    let sender = ledger.sender();
    assert!(sender.append(request(0)));
    ledger.close().unwrap();
    assert!(!sender.append(request(1)));
    assert_eq!(sender.dropped(), 1);
    assert_eq!(sender.written(), 1);
}

#[test]
fn an_unserialisable_record_becomes_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(config(dir.path())).unwrap();
    let sender = ledger.sender();
    let bad: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1], 1)]); // JSON keys must be strings
    assert!(sender.append(bad));
    assert!(sender.append(request(1)));
    let stats = ledger.close().unwrap();

    assert_eq!((stats.written, stats.dropped), (1, 1));
    let records: Vec<Value> = lines(&files(dir.path(), PREFIX)[0])
        .iter()
        .map(|line| record_of(line))
        .collect();
    let gap = records
        .iter()
        .find(|record| record["kind"] == "gap")
        .unwrap();
    assert_eq!(gap["dropped"], 1);
    assert!(
        gap["reason"].as_str().unwrap().contains("not serialisable"),
        "{gap}"
    );
    assert_intact(&verify(dir.path(), PREFIX).unwrap());
}

#[test]
fn two_prefixes_in_one_directory_never_touch_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::at("2025-01-01T00:00:00Z");
    let audit = Ledger::open_with_clock(rotating_config(dir.path()), clock.clone()).unwrap();
    let mut content_config = rotating_config(dir.path());
    content_config.prefix = "audit-content".into();
    content_config.retention = Some(Duration::from_secs(3600));
    let content = Ledger::open_with_clock(content_config.clone(), clock.clone()).unwrap();
    for n in 0..50 {
        audit.sender().append(request(n));
        content
            .sender()
            .append(json!({"n": n, "prompt": "[redacted]"}));
    }
    audit.close().unwrap();
    content.close().unwrap();
    let audit_files = files(dir.path(), "audit");
    let content_files = files(dir.path(), "audit-content");
    assert!(audit_files.len() > 1 && content_files.len() > 1);

    // A day later the content log forgets; the audit log keeps everything.
    clock.set("2025-01-02T00:00:00Z");
    Ledger::open_with_clock(content_config, clock)
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(files(dir.path(), "audit"), audit_files);
    assert_eq!(files(dir.path(), "audit-content").len(), 1);

    let audit_report = verify(dir.path(), "audit").unwrap();
    assert_intact(&audit_report);
    assert_eq!(audit_report.files, audit_files.len());
    assert_eq!(audit_report.starts_at_seq, None);
    let content_report = verify(dir.path(), "audit-content").unwrap();
    assert_intact(&content_report);
    assert!(content_report.start_explained_by_retention);
}

#[test]
fn one_prefix_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ledger::open(config(dir.path())).unwrap();
    assert!(matches!(
        Ledger::open(config(dir.path())),
        Err(LedgerError::Locked { .. })
    ));
    first.close().unwrap();
    Ledger::open(config(dir.path())).unwrap().close().unwrap();
}

#[test]
fn invalid_configuration_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.batch = 0;
    let error = Ledger::open(config).unwrap_err();
    assert!(error.to_string().contains("batch"), "{error}");
}

#[test]
fn records_wait_at_most_about_flush_every() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(config(dir.path())).unwrap();
    let sender = ledger.sender();
    sender.append(request(0));
    wait_until("the record on disk", || sender.written() == 1);
    assert_eq!(numbers(dir.path()), [0]);
    assert_eq!(sender.last().unwrap().seq, 0);
    ledger.close().unwrap();
}

#[cfg(unix)]
#[test]
fn the_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("audit");
    write(config(&ledger_dir), 0, 1);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ledger_dir), 0o700);
    assert_eq!(mode(&files(&ledger_dir, PREFIX)[0]), 0o600);
}

#[test]
fn dropping_the_ledger_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = Ledger::open(config(dir.path())).unwrap();
        ledger.sender().append(request(0));
    }
    assert_eq!(numbers(dir.path()), [0]);
    assert_intact(&verify(dir.path(), PREFIX).unwrap());
}

#[test]
fn a_crash_between_the_rotation_record_and_the_next_file_is_resumed_in_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 30);
    // The newest file never got created: the previous file's rotation record names it.
    let newest = files(dir.path(), PREFIX).pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    let numbers_left = numbers(dir.path());

    write(rotating_config(dir.path()), 100, 3);
    assert!(newest.exists(), "the named file is created");
    let report = verify(dir.path(), PREFIX).unwrap();
    assert_intact(&report);
    assert_eq!(numbers(dir.path()).len(), numbers_left.len() + 3);
}

#[test]
fn a_crash_during_the_first_write_of_a_new_file_is_resumed_in_another() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 30);
    let newest = files(dir.path(), PREFIX).pop().unwrap();
    std::fs::write(&newest, br#"{"seq":12"#).unwrap();

    write(rotating_config(dir.path()), 100, 3);
    let after = files(dir.path(), PREFIX);
    assert_eq!(after.iter().filter(|file| **file == newest).count(), 1);
    let resumed = after.last().unwrap();
    assert_ne!(resumed, &newest);
    assert_eq!(record_of(&lines(resumed)[0])["kind"], "resume");
    assert_intact(&verify(dir.path(), PREFIX).unwrap());
}

#[test]
fn an_empty_newest_file_left_by_a_crash_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 30);
    let newest = files(dir.path(), PREFIX).pop().unwrap();
    std::fs::write(&newest, b"").unwrap();
    let count = files(dir.path(), PREFIX).len();

    write(rotating_config(dir.path()), 100, 1);
    assert_eq!(files(dir.path(), PREFIX).len(), count);
    assert_intact(&verify(dir.path(), PREFIX).unwrap());
}

#[test]
fn a_removed_record_far_from_the_end_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    write(config(dir.path()), 0, 6_000);
    let file = &files(dir.path(), PREFIX)[0];
    let mut lines = lines(file);
    lines.remove(10);
    write_lines(file, &lines);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert_eq!(
        kinds(&report),
        [&ProblemKind::RemovedRecords {
            first_seq: 10,
            last_seq: 10
        }]
    );
}

#[test]
fn a_renamed_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 40);
    let files = files(dir.path(), PREFIX);
    let second = files[1].to_str().unwrap().to_owned();
    let renamed = second.replace("-000000000000000000", "-000000000000000001");
    assert_ne!(renamed, second);
    std::fs::rename(&second, &renamed).unwrap();

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(!report.is_intact());
    assert!(
        report
            .problems
            .iter()
            .any(|problem| matches!(problem.kind, ProblemKind::MissingFile { .. })),
        "{:#?}",
        report.problems
    );
}

/// A line as the ledger would write it, for building hostile files by hand.
fn forged_line(seq: u64, prev: &str, record: &str) -> (String, String) {
    let time = "2025-01-01T00:00:00.000000Z";
    let preimage = format!("{prev}\n{seq}\n{time}\n{record}");
    let digest = ring::digest::digest(&ring::digest::SHA256, preimage.as_bytes());
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let line = format!(
        r#"{{"seq":{seq},"time":"{time}","prev":"{prev}","hash":"{hash}","record":{record}}}"#
    );
    (line, hash)
}

#[test]
fn extreme_values_in_the_files_do_not_break_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (first, hash) = forged_line(
        u64::MAX,
        &"1".repeat(64),
        r#"{"kind":"gap","dropped":18446744073709551615,"reason":"x"}"#,
    );
    let (second, _) = forged_line(
        u64::MAX,
        &hash,
        r#"{"kind":"gap","dropped":18446744073709551615,"reason":"x"}"#,
    );
    let (third, _) = forged_line(0, &"2".repeat(64), "{}");
    let name = format!("{PREFIX}-20250101T000000-{:020}.jsonl", u64::MAX);
    write_lines(&dir.path().join(name), &[first, second, third]);

    let report = verify(dir.path(), PREFIX).unwrap();
    assert!(!report.is_intact());
    assert_eq!(report.dropped, u64::MAX);
    // And the ledger opens after it without overflowing.
    write(config(dir.path()), 0, 1);
}

#[test]
fn damaged_files_never_make_verification_fail_or_panic() {
    let dir = tempfile::tempdir().unwrap();
    write(rotating_config(dir.path()), 0, 40);
    let files = files(dir.path(), PREFIX);
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|file| std::fs::read(file).unwrap())
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    for _ in 0..300 {
        let which = next(files.len());
        let original = &originals[which];
        let mut damaged = original.clone();
        let at = next(damaged.len());
        let truncated = match next(3) {
            0 => {
                damaged[at] = next(256) as u8;
                false
            }
            1 => {
                damaged.remove(at);
                false
            }
            _ => {
                damaged.truncate(at);
                true
            }
        };
        std::fs::write(&files[which], &damaged).unwrap();
        let report = verify(dir.path(), PREFIX).unwrap();
        // The files alone cannot show a cut end of the newest file, nor a change to its
        // final newline (which makes its last line look like a write in progress).
        let newest = which + 1 == files.len();
        let excused = newest && (truncated || at + 1 == original.len());
        if damaged != *original && !excused {
            assert!(
                !report.is_intact(),
                "undetected change at byte {at} of {}",
                files[which].display()
            );
        }
        std::fs::write(&files[which], original).unwrap();
    }
}
