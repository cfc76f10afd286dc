//! The gateway's reading of what clients and model servers send: request bodies (parse,
//! policy, prompt texts, redaction in place, the canary) and streamed answers (event splitting
//! and reading). Nothing here may panic, whatever the bytes.
#![no_main]

use std::sync::LazyLock;

use hangar_gateway::request::{self, Endpoint, ParameterPolicy};
use hangar_gateway::stream::{SseSplitter, read_event};
use hangar_guard::Redactor;
use libfuzzer_sys::fuzz_target;

static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::default);

const POLICY: ParameterPolicy = ParameterPolicy {
    max_tokens: 1024,
    max_n: 2,
    allow_logprobs: false,
    allow_logit_bias: false,
    allow_tools: true,
    max_messages: 64,
};

fuzz_target!(|data: &[u8]| {
    let redactor = &*REDACTOR;
    for endpoint in [Endpoint::Chat, Endpoint::Completion, Endpoint::Embedding] {
        let Ok(mut body) = request::parse(data) else {
            continue;
        };
        if let Ok(facts) = request::inspect(endpoint, &body, &POLICY) {
            assert!(facts.max_tokens <= POLICY.max_tokens);
            assert!(facts.n <= POLICY.max_n);
            let _ = facts.reservation();
        }
        let _ = request::prompt_texts(endpoint, &body);
        request::edit_prompt_texts(endpoint, &mut body, |text| {
            let redaction = redactor.redact(text);
            (!redaction.found.is_empty()).then(|| redaction.text.into_owned())
        });
        request::add_canary(&mut body, "hgc-0123456789abcdef");
    }
    // The same bytes as a model server's stream, cut at an arbitrary point.
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut splitter = SseSplitter::default();
    splitter.push(&data[..cut]);
    splitter.push(&data[cut..]);
    while let Some(event) = splitter.next_event() {
        let _ = read_event(&event);
    }
    if let Some(rest) = splitter.rest() {
        let _ = read_event(&rest);
    }
});
