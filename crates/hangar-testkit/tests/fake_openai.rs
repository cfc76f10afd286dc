//! The fake OpenAI-compatible server over real loopback HTTP: answers, streams, embeddings and
//! every fault, as a client sees them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use hangar_testkit::fake_openai::{DEFAULT_DRIFTED_REPLY, FakeOpenAi, FakeOpenAiServer, Faults};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

struct Reply {
    status: u16,
    content_type: String,
    headers: http::HeaderMap,
    /// The bytes received, all of them or up to where the body broke.
    body: Vec<u8>,
    /// Why the body broke, if it did.
    broken: Option<String>,
    /// When each body frame arrived, from the request's start.
    frame_times: Vec<Duration>,
}

impl Reply {
    fn json(&self) -> Value {
        assert!(self.broken.is_none(), "{:?}", self.broken);
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    /// The `data:` payloads of an SSE body.
    fn events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }
}

async fn send(server: &FakeOpenAiServer, method: &str, path: &str, body: Option<Value>) -> Reply {
    send_with(server, method, path, body, &[]).await
}

async fn send_with(
    server: &FakeOpenAiServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", server.url()))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = request.body(Full::new(Bytes::from(bytes))).unwrap();
    let started = Instant::now();
    let response = client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut frame_times = Vec::new();
    let broken = loop {
        match body.frame().await {
            None => break None,
            Some(Err(err)) => break Some(err.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    frame_times.push(started.elapsed());
                    bytes.extend_from_slice(&data);
                }
            }
        }
    };
    Reply {
        status,
        content_type,
        headers,
        body: bytes,
        broken,
        frame_times,
    }
}

fn chat(prompt: &str) -> Value {
    json!({"model": "fake-model", "messages": [{"role": "user", "content": prompt}], "temperature": 0})
}

#[tokio::test]
async fn models_are_listed() {
    let server = FakeOpenAi::builder()
        .model("llama")
        .model("embedder")
        .start()
        .await
        .unwrap();
    let reply = send(&server, "GET", "/v1/models", None).await;
    assert_eq!(reply.status, 200);
    let ids: Vec<_> = reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["llama", "embedder"]);
    assert_eq!(send(&server, "POST", "/v1/models", None).await.status, 405);
    assert_eq!(send(&server, "GET", "/v2/nothing", None).await.status, 404);
}

#[tokio::test]
async fn chat_answers_scripted_replies_and_echoes_the_rest() {
    let server = FakeOpenAi::builder()
        .reply_to("What is 2+2?", "4")
        .start()
        .await
        .unwrap();
    let reply = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(chat("What is 2+2?")),
    )
    .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["choices"][0]["message"]["content"], "4");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 1);
    let echo = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(chat("hello there")),
    )
    .await;
    assert_eq!(
        echo.json()["choices"][0]["message"]["content"],
        "hello there"
    );
}

#[tokio::test]
async fn a_model_specific_reply_wins_and_unknown_models_are_404() {
    let server = FakeOpenAi::builder()
        .model("a")
        .model("b")
        .reply_to("hi", "hello")
        .reply_for("b", "hi", "hey")
        .start()
        .await
        .unwrap();
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let a = send(&server, "POST", "/v1/chat/completions", Some(ask("a"))).await;
    let b = send(&server, "POST", "/v1/chat/completions", Some(ask("b"))).await;
    assert_eq!(a.json()["choices"][0]["message"]["content"], "hello");
    assert_eq!(b.json()["choices"][0]["message"]["content"], "hey");
    let missing = send(&server, "POST", "/v1/chat/completions", Some(ask("c"))).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["error"]["message"],
        "The model `c` does not exist."
    );
}

#[tokio::test]
async fn bad_requests_get_openai_error_bodies() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    let no_messages = send(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(json!({"model": "fake-model"})),
    )
    .await;
    assert_eq!(no_messages.status, 400);
    assert_eq!(no_messages.json()["error"]["type"], "BadRequestError");
    let not_json = send(&server, "POST", "/v1/completions", None).await;
    assert_eq!(not_json.status, 400);
}

#[tokio::test]
async fn completions_stop_at_max_tokens() {
    let server = FakeOpenAi::builder()
        .reply_to("Once upon", "a time there was a model")
        .start()
        .await
        .unwrap();
    let body = json!({"model": "fake-model", "prompt": "Once upon", "max_tokens": 3});
    let reply = send(&server, "POST", "/v1/completions", Some(body))
        .await
        .json();
    assert_eq!(reply["object"], "text_completion");
    assert_eq!(reply["choices"][0]["text"], "a time there");
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    assert_eq!(reply["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn chat_streams_chunks_then_usage_then_done() {
    let server = FakeOpenAi::builder()
        .reply_to("Count", "one two three")
        .start()
        .await
        .unwrap();
    let mut body = chat("Count");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let reply = send(&server, "POST", "/v1/chat/completions", Some(body)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/event-stream"));
    let events = reply.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
}

#[tokio::test]
async fn completion_streams_without_usage_unless_asked() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    let body = json!({"model": "fake-model", "prompt": "echo me", "stream": true});
    let events = send(&server, "POST", "/v1/completions", Some(body))
        .await
        .events();
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "echo me");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn embeddings_are_deterministic_and_drift_on_demand() {
    let server = FakeOpenAi::builder()
        .embedding_dimensions(32)
        .start()
        .await
        .unwrap();
    let ask = json!({"model": "fake-model", "input": ["my parcel never arrived", "refund please"]});
    let embed = |reply: Reply| -> Vec<Vec<f64>> {
        reply.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let first = embed(send(&server, "POST", "/v1/embeddings", Some(ask.clone())).await);
    let again = embed(send(&server, "POST", "/v1/embeddings", Some(ask.clone())).await);
    assert_eq!(first, again);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].len(), 32);
    let norm: f64 = first[0].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4);
    server.update_faults(|f| f.drift = true);
    let drifted = embed(send(&server, "POST", "/v1/embeddings", Some(ask)).await);
    let cosine: f64 = first[0].iter().zip(&drifted[0]).map(|(a, b)| a * b).sum();
    assert!(cosine < 0.6, "{cosine}");
    let sized = json!({"model": "fake-model", "input": "x", "dimensions": 8});
    assert_eq!(
        embed(send(&server, "POST", "/v1/embeddings", Some(sized)).await)[0].len(),
        8
    );
}

#[tokio::test]
async fn drift_changes_replies_at_run_time() {
    let server = FakeOpenAi::builder()
        .reply_to("What is 2+2?", "4")
        .drifted_reply_to("What is 2+2?", "5")
        .start()
        .await
        .unwrap();
    let ask = || {
        send(
            &server,
            "POST",
            "/v1/chat/completions",
            Some(chat("What is 2+2?")),
        )
    };
    assert_eq!(ask().await.json()["choices"][0]["message"]["content"], "4");
    server.set_faults(Faults {
        drift: true,
        ..Faults::default()
    });
    assert_eq!(ask().await.json()["choices"][0]["message"]["content"], "5");
    let other = send(&server, "POST", "/v1/chat/completions", Some(chat("hello"))).await;
    assert_eq!(
        other.json()["choices"][0]["message"]["content"],
        DEFAULT_DRIFTED_REPLY
    );
    server.clear_faults();
    assert_eq!(ask().await.json()["choices"][0]["message"]["content"], "4");
}

#[tokio::test]
async fn a_status_fault_answers_an_openai_error() {
    let server = FakeOpenAi::builder()
        .faults(Faults {
            status: Some(503),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let reply = send(&server, "POST", "/v1/chat/completions", Some(chat("hi"))).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["type"], "InternalServerError");
    assert_eq!(reply.json()["error"]["code"], 503);
}

#[tokio::test]
async fn a_status_fault_can_say_retry_after_and_lift_after_some_requests() {
    let server = FakeOpenAi::builder()
        .faults(Faults {
            status: Some(429),
            status_count: Some(2),
            retry_after: Some("7".into()),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    for _ in 0..2 {
        let reply = send(&server, "POST", "/v1/chat/completions", Some(chat("hi"))).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.headers["retry-after"], "7");
        assert_eq!(reply.json()["error"]["type"], "RateLimitError");
    }
    let recovered = send(&server, "POST", "/v1/chat/completions", Some(chat("hi"))).await;
    assert_eq!(recovered.status, 200);
    assert!(recovered.headers.get("retry-after").is_none());
    assert_eq!(server.faults().status, None);
}

#[tokio::test]
async fn n_gives_as_many_choices_interleaved_in_streams() {
    let server = FakeOpenAi::builder()
        .reply_to("Count", "one two")
        .start()
        .await
        .unwrap();
    let mut ask = chat("Count");
    ask["n"] = json!(2);
    let whole = send(&server, "POST", "/v1/chat/completions", Some(ask.clone())).await;
    let choices = whole.json()["choices"].as_array().unwrap().clone();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[1]["message"]["content"], "one two");
    ask["stream"] = json!(true);
    let events = send(&server, "POST", "/v1/chat/completions", Some(ask.clone()))
        .await
        .events();
    let indices: Vec<u64> = events[..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Role, two words and the finish, each for choice 0 then choice 1.
    assert_eq!(indices, [0, 1, 0, 1, 0, 1, 0, 1]);
    ask["n"] = json!(9);
    let too_many = send(&server, "POST", "/v1/chat/completions", Some(ask)).await;
    assert_eq!(too_many.status, 400);
}

#[tokio::test]
async fn embedding_dimensions_are_bounded() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    let ask =
        |dimensions: Value| json!({"model": "fake-model", "input": "x", "dimensions": dimensions});
    let largest = send(&server, "POST", "/v1/embeddings", Some(ask(json!(4096)))).await;
    assert_eq!(
        largest.json()["data"][0]["embedding"]
            .as_array()
            .unwrap()
            .len(),
        4096
    );
    for refused in [
        json!(4097),
        json!(0),
        json!(1_000_000_000_000u64),
        json!("64"),
    ] {
        let reply = send(
            &server,
            "POST",
            "/v1/embeddings",
            Some(ask(refused.clone())),
        )
        .await;
        assert_eq!(reply.status, 400, "{refused}");
        assert!(reply.text().contains("`dimensions`"), "{}", reply.text());
    }
}

#[tokio::test]
async fn a_raw_body_is_served_as_it_is() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    server.update_faults(|f| f.raw_body = Some("data: [DONE]".into()));
    let mut streamed = chat("hi");
    streamed["stream"] = json!(true);
    let reply = send(&server, "POST", "/v1/chat/completions", Some(streamed)).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "data: [DONE]"));
    assert!(reply.content_type.starts_with("text/event-stream"));
    let whole = send(
        &server,
        "POST",
        "/v1/embeddings",
        Some(json!({"model": "fake-model", "input": "x"})),
    )
    .await;
    assert_eq!(whole.content_type, "application/json");
    assert_eq!(whole.text(), "data: [DONE]");
    // Requests the server would refuse are still refused.
    let unknown = send(
        &server,
        "POST",
        "/v1/completions",
        Some(json!({"model": "nope", "prompt": "x"})),
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_raw_answer_is_served_to_every_request() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    let page = "<html><body><h1>404 Not Found</h1></body></html>";
    server.update_faults(|f| f.raw_answer = Some((404, page.into())));
    for (method, path) in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/team-a/v1/embeddings"),
        ("GET", "/v1/models"),
    ] {
        let reply = send(&server, method, path, Some(chat("hi"))).await;
        assert_eq!((reply.status, reply.text().as_str()), (404, page), "{path}");
        assert_eq!(reply.content_type, "text/html");
    }
    let detail = r#"{"detail": "Not Found"}"#;
    server.update_faults(|f| f.raw_answer = Some((404, detail.into())));
    let reply = send(&server, "POST", "/v1/completions", None).await;
    assert_eq!((reply.status, reply.text().as_str()), (404, detail));
    assert_eq!(reply.content_type, "application/json");
}

#[tokio::test]
async fn malformed_json_is_served_whole_and_streamed() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    server.update_faults(|f| f.malformed_json = true);
    let reply = send(&server, "POST", "/v1/chat/completions", Some(chat("hi"))).await;
    assert_eq!(reply.status, 200);
    assert!(reply.broken.is_none());
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    let mut body = chat("hi");
    body["stream"] = json!(true);
    let events = send(&server, "POST", "/v1/chat/completions", Some(body))
        .await
        .events();
    assert!(serde_json::from_str::<Value>(&events[0]).is_err());
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn a_disconnect_cuts_the_stream_after_n_chunks() {
    let server = FakeOpenAi::builder()
        .reply_to("Count", "one two three four")
        .faults(Faults {
            disconnect_after_chunks: Some(2),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let mut body = chat("Count");
    body["stream"] = json!(true);
    let reply = send(&server, "POST", "/v1/chat/completions", Some(body)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.broken.is_some(), "the body should break");
    // The role chunk and the first word arrived whole, then nothing.
    assert_eq!(reply.events().len(), 2, "{}", reply.text());
    assert!(reply.text().ends_with("\n\n"));
    let whole = send(&server, "POST", "/v1/chat/completions", Some(chat("Count"))).await;
    assert!(whole.broken.is_some(), "a non-streamed body breaks too");
    assert!(!whole.body.is_empty() && serde_json::from_slice::<Value>(&whole.body).is_err());
}

#[tokio::test]
async fn latency_and_chunk_delays_slow_answers() {
    let server = FakeOpenAi::builder()
        .reply_to("Count", "one two three")
        .start()
        .await
        .unwrap();
    server.set_faults(Faults {
        latency: Duration::from_millis(150),
        chunk_delay: Duration::from_millis(60),
        ..Faults::default()
    });
    let mut body = chat("Count");
    body["stream"] = json!(true);
    let reply = send(&server, "POST", "/v1/chat/completions", Some(body)).await;
    // Role chunk, three tokens, finish, [DONE]: six chunks, each 60 ms after the one before.
    assert_eq!(reply.frame_times.len(), 6);
    assert!(
        reply.frame_times[0] >= Duration::from_millis(200),
        "{:?}",
        reply.frame_times
    );
    let spread = reply.frame_times[5] - reply.frame_times[0];
    assert!(
        spread >= Duration::from_millis(280),
        "{:?}",
        reply.frame_times
    );
}

#[tokio::test]
async fn requests_are_counted_and_recorded() {
    let server = FakeOpenAi::builder()
        .require_api_key("sk-test")
        .start()
        .await
        .unwrap();
    let denied = send(&server, "POST", "/v1/chat/completions", Some(chat("hi"))).await;
    assert_eq!(denied.status, 401);
    let allowed = send_with(
        &server,
        "POST",
        "/v1/chat/completions",
        Some(chat("hi")),
        &[("authorization", "Bearer sk-test"), ("X-Team", "support")],
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(server.request_count(), 2);
    let last = server.requests().pop().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.header("x-team"), Some("support"));
    assert_eq!(last.json().unwrap()["messages"][0]["content"], "hi");
    server.clear_requests();
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn a_dropped_server_refuses_connections() {
    let server = FakeOpenAi::builder().start().await.unwrap();
    let address = server.address();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}
