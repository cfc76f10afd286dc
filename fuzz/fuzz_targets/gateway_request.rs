//! The gateway's reading of what clients and model servers send: request bodies (parse,
//! policy, prompt texts, redaction in place, the canary), whole answers and streamed ones
//! (event splitting and reading), and the public model name written into them. Nothing here may
//! panic, whatever the bytes, and a renamed answer must say what it said before.
#![no_main]

use std::sync::LazyLock;

use hangar_gateway::json::{self, Json};
use hangar_gateway::request::{self, Endpoint, ParameterPolicy};
use hangar_gateway::stream::{EventFacts, SseSplitter, answer_facts, read_event};
use hangar_guard::Redactor;
use libfuzzer_sys::fuzz_target;

static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::default);

static POLICY: LazyLock<ParameterPolicy> = LazyLock::new(|| ParameterPolicy {
    max_tokens: 1024,
    max_n: 2,
    allow_logprobs: false,
    allow_logit_bias: false,
    allow_tools: true,
    allow_chat_template: false,
    max_messages: 64,
    extra_parameters: ["top_a".to_owned()].into(),
});

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
        renamed_event_says_the_same(&event);
    }
    if let Some(rest) = splitter.rest() {
        renamed_event_says_the_same(&rest);
    }
    // The same bytes as a whole answer.
    if let Ok(answer) = Json::parse(data)
        && let Some(span) = answer.str_span(data, "model")
        && let Some(renamed) = json::replace_str(data, span, PUBLIC_NAME)
    {
        let again = Json::parse(&renamed).expect("a renamed answer is still JSON");
        assert_eq!(again.get("model").and_then(Json::as_str), Some(PUBLIC_NAME));
        assert_eq!(answer_facts(&again), answer_facts(&answer));
    }
});

/// A name with characters JSON must escape (for whole answers).
const PUBLIC_NAME: &str = "team/\"chat\"\n";

fn renamed_event_says_the_same(event: &[u8]) {
    let facts = read_event(event);
    let Some(renamed) = facts
        .model
        .clone()
        .and_then(|span| json::replace_str(event, span, "chat-small"))
    else {
        return;
    };
    let again = read_event(&renamed);
    let span = again.model.clone().expect("the renamed event lost its model");
    assert_eq!(&renamed[span], b"\"chat-small\"");
    let without_span = |facts: EventFacts| EventFacts {
        model: None,
        ..facts
    };
    assert_eq!(without_span(again), without_span(facts));
}
