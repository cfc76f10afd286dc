//! A canary is seen however the response is split into chunks, and always when it is there as
//! written. (Loose matching, for long random-looking canaries, finds more: the same as when
//! the response comes in one piece.)
#![no_main]

use hangar_guard::CanaryWatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: canary length; second: chunk size; the rest is the canary then the response.
    let [canary_len, chunk_len, rest @ ..] = data else {
        return;
    };
    let rest = String::from_utf8_lossy(rest);
    let mut split = usize::from(*canary_len % 24).min(rest.len());
    while !rest.is_char_boundary(split) {
        split -= 1;
    }
    let (canary, response) = rest.split_at(split);
    let mut watch = CanaryWatch::new(vec![canary.to_owned()]);
    let chunk_len = usize::from(*chunk_len % 16) + 1;
    let mut chunk_start = 0;
    let mut leaked = false;
    while chunk_start < response.len() {
        let mut chunk_end = (chunk_start + chunk_len).min(response.len());
        while !response.is_char_boundary(chunk_end) {
            chunk_end += 1;
        }
        leaked = watch.feed(&response[chunk_start..chunk_end]);
        chunk_start = chunk_end;
    }
    let whole = CanaryWatch::new(vec![canary.to_owned()]).feed(response);
    assert_eq!(
        leaked, whole,
        "canary {canary:?} in {response:?} by {chunk_len}: chunked and whole differ"
    );
    // As written, where no JSON escape begun before it can swallow its first characters.
    let clear = response.starts_with(canary) || response.contains(&format!(" {canary}"));
    if !canary.is_empty() && !canary.contains('\\') && clear {
        assert!(leaked, "canary {canary:?} in {response:?} missed");
    }
});
