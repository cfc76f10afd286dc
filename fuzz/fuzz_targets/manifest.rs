//! `hangar audit` reading a manifest (hostile input is normal input): parsing, discovery, every
//! check and every renderer. Nothing here may panic.
#![no_main]

use hangar_audit::render::{Format, TerminalStyle, render};
use hangar_audit::{AuditOptions, Date, audit};
use hangar_core::{Policy, snapshot_from_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The same text as a Kustomize kustomization, whose patches a directory walk skips.
    let _ = hangar_core::kustomize::patch_paths(text);
    let snapshot = snapshot_from_text("fuzz.yaml", text);
    let policy = Policy::default();
    let Ok(today) = Date::parse("2026-11-30") else {
        return;
    };
    let options = AuditOptions {
        policy: &policy,
        waivers: &[],
        today,
        source: "fuzz.yaml".into(),
    };
    let report = audit(&snapshot, &options);
    for format in [
        Format::Table,
        Format::Json,
        Format::Sarif,
        Format::Markdown,
        Format::Html,
    ] {
        let _ = render(&report, format, TerminalStyle::Plain);
    }
});
