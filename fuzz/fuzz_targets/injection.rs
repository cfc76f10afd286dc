//! The injection scanner never panics, and a signal always names its rules.
#![no_main]

use std::sync::LazyLock;

use hangar_guard::InjectionScanner;
use libfuzzer_sys::fuzz_target;

static SCANNER: LazyLock<InjectionScanner> = LazyLock::new(InjectionScanner::default);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(signal) = SCANNER.scan(&text) {
        assert!(!signal.rules.is_empty());
        assert!(signal.score > 0);
    }
});
