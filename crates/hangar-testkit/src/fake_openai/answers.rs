//! What the fake model says: scripted replies, the echo default, drift, token counts,
//! deterministic embeddings, and the OpenAI JSON shapes that carry them.

use serde_json::{Value, json};

/// The reply of a model in drift mode when no drifted reply was scripted for the prompt.
pub const DEFAULT_DRIFTED_REPLY: &str = "Sorry, I am not able to help with that request.";

/// One scripted reply.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    /// `None`: any model.
    pub model: Option<String>,
    pub prompt: String,
    pub reply: String,
}

/// Everything the model says, fixed when the server starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub replies: Vec<Scripted>,
    pub drifted: Vec<Scripted>,
}

impl Script {
    /// The reply to `prompt`: scripted for this model, scripted for any model, or the prompt
    /// itself (echo). Drift answers from the drifted script, or a fixed different sentence.
    pub fn reply(&self, model: &str, prompt: &str, drift: bool) -> String {
        let table = if drift { &self.drifted } else { &self.replies };
        let prompt = prompt.trim();
        let for_model = |wanted: Option<&str>| {
            table
                .iter()
                .find(|s| s.prompt.trim() == prompt && s.model.as_deref() == wanted)
        };
        match for_model(Some(model)).or_else(|| for_model(None)) {
            Some(scripted) => scripted.reply.clone(),
            None if drift => DEFAULT_DRIFTED_REPLY.to_owned(),
            None => prompt.to_owned(),
        }
    }
}

/// The reply cut into tokens: each word with the whitespace before it, so the pieces
/// concatenate back into the reply.
pub fn tokens(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        let space = c.is_whitespace();
        if space && in_word {
            pieces.push(std::mem::take(&mut current));
        }
        in_word = !space;
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// How many tokens the fake counts in a text: its words.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The reply after `max_tokens`, and the finish reason that goes with it.
pub fn limit(reply: String, max_tokens: Option<u64>) -> (Vec<String>, &'static str) {
    let mut pieces = tokens(&reply);
    match max_tokens {
        Some(max) if (pieces.len() as u64) > max => {
            pieces.truncate(max as usize);
            (pieces, "length")
        }
        _ => (pieces, "stop"),
    }
}

/// A deterministic embedding: a hashed bag of lower-cased words, normalised to length 1.
/// Texts sharing most words have a cosine similarity near 1; drift hashes with another seed,
/// which moves every word to another dimension.
pub fn embed(text: &str, dimensions: usize, drift: bool) -> Vec<f32> {
    let dimensions = dimensions.max(1);
    let mut vector = vec![0f32; dimensions];
    let seed: &[u8] = if drift { b"drifted:" } else { b"" };
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = fnv1a(seed, word.to_lowercase().as_bytes());
        let index = (hash % dimensions as u64) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        vector[index] += sign;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        // A text without words still gets a unit vector, as real models give.
        vector[0] = 1.0;
        return vector;
    }
    vector.iter().map(|x| x / norm).collect()
}

fn fnv1a(seed: &[u8], bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in seed.iter().chain(bytes) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The text a chat request asks about: the last user message's content (a string, or the text
/// parts of a content array).
pub fn chat_prompt(body: &Value) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let message = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .or_else(|| messages.last())?;
    match message.get("content")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

/// The text a completion request continues: `prompt` as a string, or the first of an array.
pub fn completion_prompt(body: &Value) -> Option<String> {
    match body.get("prompt")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => items.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The texts to embed: `input` as a string or an array of strings.
pub fn embedding_inputs(body: &Value) -> Option<Vec<String>> {
    match body.get("input")? {
        Value::String(text) => Some(vec![text.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// `usage` for a prompt and a reply.
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens
    })
}

/// An OpenAI error body.
pub fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        400 => "BadRequestError",
        401 => "AuthenticationError",
        403 => "PermissionDeniedError",
        404 => "NotFoundError",
        429 => "RateLimitError",
        500..=599 => "InternalServerError",
        _ => "APIError",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": status}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn tokens_concatenate_back() {
        let text = "The answer  is\n4.";
        let pieces = tokens(text);
        assert_eq!(pieces, ["The", " answer", "  is", "\n4."]);
        assert_eq!(pieces.concat(), text);
        assert!(tokens("").is_empty());
        assert_eq!(count_tokens(text), 4);
    }

    #[test]
    fn max_tokens_cuts_with_length() {
        let (pieces, reason) = limit("one two three".into(), Some(2));
        assert_eq!((pieces.concat().as_str(), reason), ("one two", "length"));
        assert_eq!(limit("one".into(), Some(2)).1, "stop");
    }

    #[test]
    fn scripts_prefer_the_model_then_any_then_echo() {
        let script = Script {
            replies: vec![
                Scripted {
                    model: None,
                    prompt: "2+2?".into(),
                    reply: "4".into(),
                },
                Scripted {
                    model: Some("pedant".into()),
                    prompt: "2+2?".into(),
                    reply: "Four.".into(),
                },
            ],
            drifted: Vec::new(),
        };
        assert_eq!(script.reply("pedant", " 2+2? ", false), "Four.");
        assert_eq!(script.reply("other", "2+2?", false), "4");
        assert_eq!(script.reply("other", "hello", false), "hello");
        assert_eq!(script.reply("other", "2+2?", true), DEFAULT_DRIFTED_REPLY);
    }

    #[test]
    fn embeddings_are_unit_vectors_that_drift_apart() {
        let a = embed("my parcel never arrived", 64, false);
        let b = embed("My parcel never arrived!", 64, false);
        let c = embed("my parcel arrived late", 64, false);
        let drifted = embed("my parcel never arrived", 64, true);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        assert!((cosine(&a, &b) - 1.0).abs() < 1e-5);
        let similar = cosine(&a, &c);
        assert!(similar > 0.4 && similar < 0.95, "{similar}");
        assert!(cosine(&a, &drifted) < 0.6, "{}", cosine(&a, &drifted));
        assert_eq!(embed("", 8, false)[0], 1.0);
    }

    #[test]
    fn prompts_are_read_from_each_shape() {
        let chat = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "2+"}, {"type": "text", "text": "2?"}]}
        ]});
        assert_eq!(chat_prompt(&chat).as_deref(), Some("2+2?"));
        assert_eq!(
            completion_prompt(&json!({"prompt": ["a", "b"]})).as_deref(),
            Some("a")
        );
        assert_eq!(
            embedding_inputs(&json!({"input": ["a", "b"]})).unwrap(),
            ["a", "b"]
        );
        assert_eq!(embedding_inputs(&json!({"input": [1, 2]})), None);
    }
}
