//! Masking secrets and personal data before text is logged (or sent upstream).
//!
//! Three regex groups and two scanners, each with a cheap way to skip clean text:
//! - keys, tokens and private-key headers: one multi-pattern regex whose literal prefixes
//!   (`sk-`, `AKIA`, `ghp_`, `eyJ`, `-----BEGIN`…) drive a SIMD prefilter;
//! - e-mail addresses: a regex the engine anchors on `@`;
//! - card numbers: a byte scanner (a regex cannot check Luhn) that skips blocks with neither
//!   an ASCII digit nor the lead byte of a full-width one;
//! - phone numbers: a regex run only over stretches with 10 or more digits.
//! - IBANs: a byte scanner (mod 97, like Luhn, is beyond a regex) that looks only at digits
//!   with two letters before them.
//!
//! Cards are looked for last, so that one which masking another find leaves standing on its own
//! (glued to an e-mail address, say) is masked too. Overlapping finds are merged, and the text
//! is copied only when something was found.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use regex_automata::util::syntax;
use regex_automata::{Input, meta};
use serde::{Deserialize, Serialize};

mod iban;
mod labelled;

/// A kind of secret or personal data the redactor masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// Payment card numbers (PAN): 13–19 ASCII or full-width digits, in groups joined by short
    /// runs of spaces, dashes, dots or slashes, that pass Luhn and look like a card prefix.
    CardNumber,
    /// International bank account numbers, in groups of four or unbroken, at the length their
    /// country's have and with check digits that agree.
    Iban,
    /// API keys and access tokens with a known prefix: OpenAI, Anthropic, AWS, GitHub, GitLab,
    /// Slack (webhook URLs too), Stripe, Google (OAuth too), Hugging Face, Groq, Replicate,
    /// xAI, npm, SendGrid, NVIDIA, Perplexity, LangSmith, Pinecone, Databricks, Vault, Docker
    /// Hub, PyPI and more, Hangar's own `hgk_` keys; AWS secret keys and session tokens after
    /// their labels; the password of a URL's `user:password@`; a value after a label that
    /// names a password, secret, key or token (`DB_PASSWORD=…`, `"client_secret": "…"`).
    ProviderKey,
    /// PEM/OpenSSH/PGP private key blocks.
    PrivateKey,
    /// JWTs, the credential after `Bearer`, and the one after `Basic` or Docker's `"auth":`
    /// when it decodes to a user and password.
    BearerToken,
    /// E-mail addresses, in any script but those written without spaces between words.
    Email,
    /// Phone numbers: E.164, `+CC` with separators (and the UK's `(0)`), North American,
    /// trunk-0 national, French and Swiss formats.
    Phone,
}

impl SecretKind {
    /// Every kind, in the order findings are reported.
    pub const ALL: [SecretKind; 7] = [
        SecretKind::CardNumber,
        SecretKind::Iban,
        SecretKind::ProviderKey,
        SecretKind::PrivateKey,
        SecretKind::BearerToken,
        SecretKind::Email,
        SecretKind::Phone,
    ];

    /// The name used in configuration, logs and the replacement text.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::CardNumber => "card_number",
            SecretKind::Iban => "iban",
            SecretKind::ProviderKey => "provider_key",
            SecretKind::PrivateKey => "private_key",
            SecretKind::BearerToken => "bearer_token",
            SecretKind::Email => "email",
            SecretKind::Phone => "phone",
        }
    }

    /// The kind named `text` (as written by [`SecretKind::as_str`]).
    pub fn parse(text: &str) -> Option<SecretKind> {
        SecretKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// What a masked value is replaced with, e.g. `[REDACTED:card_number]`.
    pub fn replacement(self) -> &'static str {
        match self {
            SecretKind::CardNumber => "[REDACTED:card_number]",
            SecretKind::Iban => "[REDACTED:iban]",
            SecretKind::ProviderKey => "[REDACTED:provider_key]",
            SecretKind::PrivateKey => "[REDACTED:private_key]",
            SecretKind::BearerToken => "[REDACTED:bearer_token]",
            SecretKind::Email => "[REDACTED:email]",
            SecretKind::Phone => "[REDACTED:phone]",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of [`Redactor::redact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction<'a> {
    /// The text with every find replaced; borrowed when nothing was found.
    pub text: Cow<'a, str>,
    /// How many values of each kind were masked, in [`SecretKind::ALL`] order; kinds with no
    /// finds are left out, so an empty list means the text was clean.
    pub found: Vec<(SecretKind, usize)>,
}

impl Redaction<'_> {
    /// Whether nothing was masked.
    pub fn is_clean(&self) -> bool {
        self.found.is_empty()
    }

    /// How many values of `kind` were masked.
    pub fn count(&self, kind: SecretKind) -> usize {
        self.found
            .iter()
            .find(|(found, _)| *found == kind)
            .map_or(0, |(_, count)| *count)
    }
}

/// Masks secrets and personal data. Build it once and share it: it is `Send + Sync`, and
/// [`Redactor::redact`] does not allocate when the text is clean.
#[derive(Debug, Clone)]
pub struct Redactor {
    cards: bool,
    ibans: bool,
    private_keys: bool,
    /// Whether keys found by code rather than by the keys' regexes are masked
    /// (`provider_key`): keys and passwords after their labels, and Telegram's bot tokens.
    provider_keys: bool,
    /// Whether Docker's `"auth"` credentials are masked (`bearer_token`).
    labelled_credentials: bool,
    secrets: Matcher,
    platform_keys: Matcher,
    emails: Matcher,
    full_width_emails: Matcher,
    phones: Matcher,
}

impl Default for Redactor {
    /// A redactor for every kind.
    fn default() -> Self {
        Redactor::new(&SecretKind::ALL)
    }
}

impl Redactor {
    /// A redactor for the given kinds (duplicates are harmless; an empty list masks nothing).
    pub fn new(kinds: &[SecretKind]) -> Redactor {
        Redactor {
            cards: kinds.contains(&SecretKind::CardNumber),
            ibans: kinds.contains(&SecretKind::Iban),
            private_keys: kinds.contains(&SecretKind::PrivateKey),
            provider_keys: kinds.contains(&SecretKind::ProviderKey),
            labelled_credentials: kinds.contains(&SecretKind::BearerToken),
            secrets: Matcher::new(SECRET_PATTERNS, kinds),
            platform_keys: Matcher::new(PLATFORM_KEY_PATTERNS, kinds),
            emails: Matcher::new(EMAIL_PATTERNS, kinds),
            full_width_emails: Matcher::new(FULL_WIDTH_EMAIL_PATTERNS, kinds),
            phones: Matcher::new(PHONE_PATTERNS, kinds),
        }
    }

    /// Whether every pattern compiled (always true unless the built-in patterns have a bug).
    pub fn is_ready(&self) -> bool {
        self.secrets.is_ready()
            && self.platform_keys.is_ready()
            && self.emails.is_ready()
            && self.full_width_emails.is_ready()
            && self.phones.is_ready()
    }

    /// Masks every find in `text`.
    pub fn redact<'a>(&self, text: &'a str) -> Redaction<'a> {
        self.redact_with(text, Vec::new())
    }

    /// [`Redactor::redact`] of `text` cut at `cut` bytes: the text after the cut is read too,
    /// so that a secret the cut splits is masked whole rather than left in part. What follows
    /// the cut is left out, but for the rest of such a secret's mask.
    pub fn redact_prefix<'a>(&self, text: &'a str, cut: usize) -> Redaction<'a> {
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        if !self.is_ready() {
            return unavailable();
        }
        let mut spans = Vec::new();
        self.find_all(text, &mut spans);
        spans.retain(|span| span.start < cut);
        // Every span kept begins before the cut, so up to the last one's end all is masked.
        let end = spans.iter().map(|span| span.end).fold(cut, usize::max);
        let Some(text) = text.get(..end) else {
            // Not reached (spans end on character boundaries); the whole text is safe too.
            return self.redact(text);
        };
        if spans.is_empty() {
            return Redaction {
                text: Cow::Borrowed(text),
                found: Vec::new(),
            };
        }
        apply(text, spans)
    }

    /// [`Redactor::redact`], masking `spans` as well.
    fn redact_with<'a>(&self, text: &'a str, mut spans: Vec<Span>) -> Redaction<'a> {
        if !self.is_ready() {
            return unavailable();
        }
        self.find_all(text, &mut spans);
        if spans.is_empty() {
            return Redaction {
                text: Cow::Borrowed(text),
                found: Vec::new(),
            };
        }
        apply(text, spans)
    }

    /// Adds the spans of every find in `text`, read as it is and with JSON escapes decoded.
    fn find_all(&self, text: &str, spans: &mut Vec<Span>) {
        self.find(text, spans);
        // JSON text inside a string (a tool call's `arguments`) keeps its escapes: read it
        // decoded as well, where a card after `\n` is not glued to the `n`.
        if let Some(decoded) = Unescaped::of(text) {
            let mut found = Vec::new();
            self.find(&decoded.text, &mut found);
            spans.extend(found.into_iter().map(|span| decoded.original(span)));
        }
    }

    /// Adds the spans of every find in `text`.
    fn find(&self, text: &str, spans: &mut Vec<Span>) {
        self.secrets.find(text, 0..text.len(), spans);
        self.platform_keys.find(text, 0..text.len(), spans);
        if self.provider_keys || self.labelled_credentials {
            let (keys, credentials) = (self.provider_keys, self.labelled_credentials);
            labelled::find_labelled(text, keys, credentials, spans);
        }
        if self.provider_keys {
            find_bot_tokens(text, spans);
        }
        if text.contains('@') {
            self.emails.find(text, 0..text.len(), spans);
        }
        if text.contains('＠') {
            self.full_width_emails.find(text, 0..text.len(), spans);
        }
        if self.phones.is_enabled() {
            for window in phone_windows(text.as_bytes()) {
                self.phones.find(text, window, spans);
            }
        }
        if self.ibans {
            iban::find_ibans(text, spans);
        }
        if self.cards {
            find_all_cards(text, spans);
        }
    }

    /// [`Redactor::redact`] for texts a model reads one after another (the parts of a prompt):
    /// a card number split across neighbouring texts (`["4111 1111", "1111 1111"]`), which
    /// neither text shows alone, is masked in each of them too.
    ///
    /// Likewise a private key block begun in one text and ended in a later one: the texts after
    /// its BEGIN line are masked up to its END line.
    pub fn redact_all<'a>(&self, texts: &[&'a str]) -> Vec<Redaction<'a>> {
        let mut key_open = false;
        let mut redactions: Vec<Redaction<'a>> = Vec::with_capacity(texts.len());
        for text in texts {
            let mut spans = Vec::new();
            let mut rest = 0;
            if key_open && !text.is_empty() {
                let closed = private_key_close(text, 0);
                rest = closed.unwrap_or(text.len());
                let upto = text.get(..rest).unwrap_or_default();
                let body = (upto.rfind("-----END ")).and_then(|end| upto.get(..end));
                let body = body.unwrap_or(upto);
                // Only the rest of a key carries on: a system prompt that names the BEGIN line
                // must not mask the conversation after it.
                if is_key_body(body) {
                    spans.push(Span {
                        start: 0,
                        end: rest,
                        kind: SecretKind::PrivateKey,
                    });
                    key_open = closed.is_none();
                } else {
                    rest = 0;
                    key_open = false;
                }
            }
            let tail = text.get(rest..).unwrap_or_default();
            key_open |= self.private_keys && opens_private_key(tail);
            redactions.push(self.redact_with(text, spans));
        }
        if !self.cards || !self.is_ready() {
            return redactions;
        }
        let mut start = 0;
        while start + 1 < redactions.len() {
            let mut end = start;
            while let [this, next, ..] = &redactions[end..]
                && digit_at_edge(this.text.chars().rev())
                && digit_at_edge(next.text.chars())
            {
                end += 1;
            }
            if end > start {
                mask_split_cards(&mut redactions[start..=end]);
            }
            start = end + 1;
        }
        redactions
    }
}

/// Whether the first of `chars` that is not a card separator (at most three are skipped) or
/// an invisible character (any number, as the card reader skips them) is a digit: a text that
/// may end (or begin) with part of a card.
fn digit_at_edge(chars: impl Iterator<Item = char>) -> bool {
    let mut utf8 = [0; 4];
    let mut separators = 0;
    for c in chars {
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        if card_digit(bytes, 0).is_some() {
            return true;
        }
        if invisible_len(bytes, 0) > 0 {
            continue;
        }
        separators += 1;
        if card_separator(bytes, 0).is_none() || separators > MAX_CARD_SEPARATORS {
            return false;
        }
    }
    false
}

/// Masks the cards that only the texts of `run` read together, one after another, show.
fn mask_split_cards(run: &mut [Redaction<'_>]) {
    let mut joined = String::new();
    let mut bounds = Vec::with_capacity(run.len());
    for redaction in run.iter() {
        if !joined.is_empty() {
            joined.push(' ');
        }
        let start = joined.len();
        joined.push_str(&redaction.text);
        bounds.push(start..joined.len());
    }
    let mut cards = Vec::new();
    find_cards(&joined, 0, &mut cards);
    let mut pieces: Vec<Vec<Span>> = vec![Vec::new(); run.len()];
    // Cards come in order, so the texts before one are never looked at again: a prompt of
    // many short parts costs a pass, not a pass per card.
    let mut first = 0;
    for card in cards {
        while bounds.get(first).is_some_and(|text| text.end <= card.start) {
            first += 1;
        }
        let parts: Vec<(usize, Span)> = (bounds.iter().enumerate().skip(first))
            .take_while(|(_, text)| text.start < card.end)
            .map(|(index, text)| {
                let start = card.start.max(text.start) - text.start;
                let end = card.end.min(text.end) - text.start;
                (
                    index,
                    Span {
                        start,
                        end,
                        kind: SecretKind::CardNumber,
                    },
                )
            })
            .collect();
        // A card within one text was masked already.
        if parts.len() > 1 {
            for (index, span) in parts {
                if let Some(spans) = pieces.get_mut(index) {
                    spans.push(span);
                }
            }
        }
    }
    // Each text counts the pieces masked in it, so that every changed text reports a find.
    for (redaction, spans) in run.iter_mut().zip(pieces) {
        if spans.is_empty() {
            continue;
        }
        let masked = apply(&redaction.text, spans);
        let mut found = redaction.found.clone();
        for (kind, count) in masked.found {
            match found.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, total)) => *total += count,
                None => found.push((kind, count)),
            }
        }
        found.sort_by_key(|(kind, _)| kind.index());
        *redaction = Redaction {
            text: Cow::Owned(masked.text.into_owned()),
            found,
        };
    }
}

/// A text with its JSON string escapes (`\n`, `\"`, `\u0034`…) decoded, and the way back to
/// the text's own positions.
struct Unescaped {
    text: String,
    /// At each end of each decoded escape: its position in `text` and in the original.
    marks: Vec<(usize, usize)>,
}

impl Unescaped {
    /// `None` when `text` has no escape to decode.
    fn of(text: &str) -> Option<Unescaped> {
        let bytes = text.as_bytes();
        let mut decoded = String::new();
        let mut marks = Vec::new();
        let mut copied = 0;
        let mut at = 0;
        while let Some(found) = text.get(at..).and_then(|rest| rest.find('\\')) {
            let start = at + found;
            let Some((c, length)) = json_escape(bytes.get(start + 1..).unwrap_or_default()) else {
                at = start + 1;
                continue;
            };
            decoded.push_str(text.get(copied..start).unwrap_or_default());
            marks.push((decoded.len(), start));
            decoded.push(c);
            copied = start + 1 + length;
            marks.push((decoded.len(), copied));
            at = copied;
        }
        if marks.is_empty() {
            return None;
        }
        decoded.push_str(text.get(copied..).unwrap_or_default());
        Some(Unescaped {
            text: decoded,
            marks,
        })
    }

    /// `span` of the decoded text as a span of the original: an escape inside it or at its
    /// edges is masked whole.
    fn original(&self, span: Span) -> Span {
        let at = |position: usize| {
            let before = self
                .marks
                .partition_point(|(decoded, _)| *decoded <= position);
            match before.checked_sub(1).and_then(|i| self.marks.get(i)) {
                Some((decoded, original)) => original + (position - decoded),
                None => position,
            }
        };
        Span {
            start: at(span.start),
            end: at(span.end),
            kind: span.kind,
        }
    }
}

/// The character a JSON escape stands for, given what follows its backslash, and how many of
/// those bytes it takes. A surrogate (half of a character) is left as it is.
fn json_escape(after: &[u8]) -> Option<(char, usize)> {
    let c = match after.first()? {
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'"' => '"',
        b'/' => '/',
        b'\\' => '\\',
        b'u' => {
            let hex = std::str::from_utf8(after.get(1..5)?).ok()?;
            let code = u32::from_str_radix(hex, 16).ok()?;
            return Some((char::from_u32(code)?, 5));
        }
        _ => return None,
    };
    Some((c, 1))
}

/// One group of patterns compiled into one multi-pattern regex.
#[derive(Debug, Clone)]
struct Matcher {
    /// The enabled patterns, indexed by the regex's pattern id.
    patterns: Vec<&'static Pattern>,
    /// `None` when no pattern is enabled, or if they failed to compile (a bug the tests
    /// catch); the redactor then masks everything rather than nothing.
    regex: Option<meta::Regex>,
}

impl Matcher {
    fn new(table: &'static [Pattern], kinds: &[SecretKind]) -> Matcher {
        let patterns: Vec<&'static Pattern> = table
            .iter()
            .filter(|pattern| kinds.contains(&pattern.kind))
            .collect();
        let sources: Vec<&str> = patterns.iter().map(|pattern| pattern.regex).collect();
        let regex = if sources.is_empty() {
            None
        } else {
            meta::Regex::builder()
                .syntax(syntax::Config::new().unicode(false))
                .build_many(&sources)
                .ok()
        };
        Matcher { patterns, regex }
    }

    fn is_enabled(&self) -> bool {
        !self.patterns.is_empty()
    }

    fn is_ready(&self) -> bool {
        self.patterns.is_empty() || self.regex.is_some()
    }

    /// Adds the spans of the matches starting in `range` (look-around sees the whole text).
    fn find(&self, text: &str, range: Range<usize>, spans: &mut Vec<Span>) {
        let Some(regex) = &self.regex else {
            return;
        };
        let mut at = range.start;
        while at < range.end {
            let input = Input::new(text).span(at..range.end);
            let Some(found) = regex.search(&input) else {
                break;
            };
            let Some(pattern) = self.patterns.get(found.pattern().as_usize()) else {
                break;
            };
            match pattern.shape.span(text, found.start(), found.end()) {
                Some((start, end)) => {
                    spans.push(Span {
                        start,
                        end,
                        kind: pattern.kind,
                    });
                    at = end.max(found.end());
                }
                // Rejected by a check the regex cannot express: look again one character on,
                // or past a URL's user@host, no part of which is an address either.
                None => {
                    at = match pattern.shape {
                        Shape::Email => found.end(),
                        _ => next_char_boundary(text, found.start()),
                    }
                }
            }
        }
    }
}

/// What [`Redactor::redact`] returns if its patterns could not be built.
const UNAVAILABLE: &str = "[REDACTED:redactor_unavailable]";

/// A byte range of the text to mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: usize,
    end: usize,
    kind: SecretKind,
}

/// What a redactor whose patterns failed to compile gives instead of the text.
fn unavailable() -> Redaction<'static> {
    Redaction {
        text: Cow::Borrowed(UNAVAILABLE),
        found: Vec::new(),
    }
}

/// Replaces the spans (merging overlaps, the most sensitive kind winning) and counts them.
fn apply(text: &str, mut spans: Vec<Span>) -> Redaction<'_> {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start < last.end => {
                last.end = last.end.max(span.end);
                last.kind = last.kind.min(span.kind);
            }
            _ => merged.push(span),
        }
    }
    let mut counts = [0usize; SecretKind::ALL.len()];
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for span in &merged {
        out.push_str(text.get(copied..span.start).unwrap_or_default());
        out.push_str(span.kind.replacement());
        copied = span.end;
        if let Some(count) = counts.get_mut(span.kind.index()) {
            *count += 1;
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    let found = SecretKind::ALL
        .into_iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .collect();
    Redaction {
        text: Cow::Owned(out),
        found,
    }
}

fn next_char_boundary(text: &str, from: usize) -> usize {
    let mut next = from + 1;
    while next < text.len() && !text.is_char_boundary(next) {
        next += 1;
    }
    next
}

/// One regex of the combined set and what part of its match to mask.
#[derive(Debug)]
struct Pattern {
    kind: SecretKind,
    shape: Shape,
    regex: &'static str,
}

/// How a regex match becomes the span to mask.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// The whole match.
    Whole,
    /// Only the value after the first `:` or `=` (and any quotes/blanks), keeping the label.
    ValueAfterAssignment,
    /// The credential after `Bearer`, if it looks like one (has a digit and a letter).
    BearerCredential,
    /// The credential after `Basic`, if it decodes to `user:password` with no control
    /// character (in UTF-8 or Latin-1).
    BasicCredential,
    /// The password of a match `://user:password@`: after the first `:` past `://`, up to the
    /// `@`.
    UrlPassword,
    /// A `-----BEGIN … PRIVATE KEY-----` line: the block up to its END line, or to the end of
    /// the text when there is none.
    PrivateKeyBlock,
    /// An e-mail address, unless it is the `user@host` of a URL (`ssh://git@github.com`,
    /// `postgres://admin:pw@db.example.com`): the host stays readable, and a password there is
    /// masked on its own.
    Email,
    /// A phone number, if its digit count and surroundings say it is one.
    Phone,
    /// A phone number written in pairs of digits, unless more digits come before or after it
    /// (a table).
    PairedPhone,
}

impl Shape {
    fn span(self, text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
        let bytes = text.as_bytes();
        match self {
            Shape::Whole => Some((start, end)),
            Shape::ValueAfterAssignment => {
                let matched = bytes.get(start..end)?;
                let equals = matched.iter().position(|b| matches!(b, b':' | b'='))?;
                let value = matched
                    .iter()
                    .skip(equals + 1)
                    .position(|b| !matches!(b, b' ' | b'\t' | b'"' | b'\''))?;
                Some((start + equals + 1 + value, end))
            }
            Shape::BearerCredential => {
                let matched = bytes.get(start..end)?;
                let value = start + matched.iter().position(|b| matches!(b, b' ' | b'\t'))?;
                let value = value
                    + bytes
                        .get(value..end)?
                        .iter()
                        .position(|b| !matches!(b, b' ' | b'\t'))?;
                let credential = bytes.get(value..end)?;
                let has_digit = credential.iter().any(u8::is_ascii_digit);
                let has_letter = credential.iter().any(u8::is_ascii_alphabetic);
                (has_digit && has_letter).then_some((value, end))
            }
            Shape::BasicCredential => {
                let value = start + basic_value_offset(bytes.get(start..end)?)?;
                basic_credential(bytes.get(value..end)?).then_some((value, end))
            }
            Shape::UrlPassword => {
                let userinfo = start + "://".len();
                let colon = bytes.get(userinfo..end)?.iter().position(|&b| b == b':')?;
                let (from, to) = (userinfo + colon + 1, end.checked_sub(1)?);
                // An image digest follows a tag, not a password (`docker://alpine:3.19@sha256:…`).
                let after = bytes.get(end..).unwrap_or_default();
                let digest = after.starts_with(b"sha256:") || after.starts_with(b"sha512:");
                // `postgres:${POSTGRES_PASSWORD}@db`, `user:password@localhost`: to fill in.
                let password = bytes.get(from..to)?;
                let placeholder = password.starts_with(b"$")
                    || password.starts_with(b"{{")
                    || [&b"password"[..], b"passwd", b"pass", b"secret", b"changeme"]
                        .iter()
                        .any(|word| password.eq_ignore_ascii_case(word));
                (!digest && !placeholder).then_some((from, to))
            }
            Shape::PrivateKeyBlock => Some((start, private_key_end(text, end))),
            Shape::Email => email_span(text, start, end),
            Shape::Phone => phone_span(text, start, end),
            Shape::PairedPhone => {
                let table = pairs_after(bytes, end) >= 2 || pairs_before(bytes, start) >= 2;
                if table {
                    None
                } else {
                    phone_span(text, start, end)
                }
            }
        }
    }
}

/// How many pairs of hex digits, each after a space or a dot, follow `at` (at most 2 counted):
/// a number in pairs followed by two more is a row of a table or a hex dump, not a phone.
fn pairs_after(bytes: &[u8], at: usize) -> usize {
    (0..2)
        .take_while(|n| {
            let pair = at + 3 * n;
            matches!(bytes.get(pair), Some(b' ' | b'.'))
                && (bytes.get(pair + 1..pair + 3))
                    .is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
                && !(bytes.get(pair + 3)).is_some_and(u8::is_ascii_alphanumeric)
        })
        .count()
}

/// [`pairs_after`], for the pairs before `at`, each followed by a space or a dot.
fn pairs_before(bytes: &[u8], at: usize) -> usize {
    (1..=2)
        .take_while(|n| {
            let Some(pair) = at.checked_sub(3 * n) else {
                return false;
            };
            (bytes.get(pair..pair + 2)).is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
                && matches!(bytes.get(pair + 2), Some(b' ' | b'.'))
                && !(pair.checked_sub(1).and_then(|b| bytes.get(b)))
                    .is_some_and(u8::is_ascii_alphanumeric)
        })
        .count()
}

/// Image files named like addresses (`icon@2x.png`): these are no top-level domains.
const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "avif",
];

/// Accepts an address unless it is something else that reads like one: the user of a URL
/// (see [`in_url_authority`]), a git remote's `user@host:path`, a method call on a matrix
/// product (`q@k.transpose(…)`), an image at a pixel density (`icon@2x.png`). A URL's user
/// that is an address, its password after it (`smtp://jane@acme.com:pw@smtp.acme.com`), is one.
fn email_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let after = text.get(end..).unwrap_or_default();
    let after_colon = after.strip_prefix(':');
    let password_follows = after_colon.is_some_and(|rest| {
        (rest.split(|c: char| c.is_whitespace() || c == '/').next())
            .is_some_and(|p| p.contains('@'))
    });
    if password_follows {
        return Some((start, end));
    }
    // A path, not a port (`jane@acme.com:587` names a server).
    let remote_path = after_colon
        .is_some_and(|rest| rest.starts_with(|c: char| !c.is_whitespace() && !c.is_ascii_digit()));
    let call = after.starts_with('(');
    let top_level = text.get(start..end)?.rsplit('.').next().unwrap_or_default();
    let image = IMAGE_EXTENSIONS.contains(&top_level.to_ascii_lowercase().as_str());
    let other = remote_path || call || image || in_url_authority(text, start);
    (!other).then_some((start, end))
}

/// Whether the address found at `at` is in the user part of a URL: right after its `://`
/// (`ssh://git@github.com`), or after its user and part of its password
/// (`postgres://admin:p!ss@db.example.com`, whose password the password rule masks). A `/`,
/// `?`, `#`, a blank, a comma, `|`, `&`, `*` or a bracket since the `://` ends the URL's authority:
/// `https://example.com?to=jane@example.com` and `https://acme.com,jane@acme.com` hold addresses.
fn in_url_authority(text: &str, at: usize) -> bool {
    const LOOK_BACK: usize = 256;
    let mut from = at.saturating_sub(LOOK_BACK);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let before = text.get(from..at).unwrap_or_default();
    before.rfind("://").is_some_and(|scheme_end| {
        let user = before.get(scheme_end + 3..).unwrap_or_default();
        !user.contains(|c: char| c.is_whitespace() || "/?#@[](),;|&*\"'<>".contains(c))
    })
}

/// Where the credential starts in a match `Basic <credential>`: past `Basic` and the blanks,
/// line breaks or URL-encoded spaces (`%20`) after it.
fn basic_value_offset(matched: &[u8]) -> Option<usize> {
    let mut at = "basic".len();
    loop {
        match matched.get(at..)? {
            [b' ' | b'\t' | b'\r' | b'\n', ..] => at += 1,
            [b'%', b'2', b'0', ..] => at += 3,
            _ => return Some(at),
        }
    }
}

/// Whether `value` is the base64 of `user:password`: padded to a multiple of four (`=` or
/// `%3D`), as RFC 7617's clients send it; a user before the `:`; no control character, in
/// UTF-8 or Latin-1; and not a word (a digit, a symbol or a capital past its first letter),
/// so that "Basic Overview" or "Basic Ordering", whose base64 readings hold a `:`, stay.
fn basic_credential(value: &[u8]) -> bool {
    let mut encoded = value;
    let mut padding = 0;
    loop {
        if let Some(rest) = encoded.strip_suffix(b"=") {
            encoded = rest;
        } else if let [rest @ .., b'%', b'3', b'd' | b'D'] = encoded {
            encoded = rest;
        } else {
            break;
        }
        padding += 1;
    }
    let not_a_word = encoded.iter().skip(1).any(|b| !b.is_ascii_lowercase());
    let Some(decoded) = crate::base64::decode(encoded) else {
        return false;
    };
    (encoded.len() + padding).is_multiple_of(4)
        && not_a_word
        && decoded
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| colon > 0)
        && !decoded.iter().any(u8::is_ascii_control)
}

/// Where the private key block that starts before `from` ends: after its END line, or at the
/// end of the text (the safe side) when the END line is missing.
fn private_key_end(text: &str, from: usize) -> usize {
    private_key_close(text, from).unwrap_or(text.len())
}

/// Where the first `-----END … PRIVATE KEY-----` line from `from` ends, if there is one.
fn private_key_close(text: &str, from: usize) -> Option<usize> {
    key_line(text, from, "-----END ")
}

/// Whether `text` begins a private key block it does not end.
/// Whether `text` ends inside a private key block: its last BEGIN line has no END line after
/// it, and nothing but key text follows it.
fn opens_private_key(text: &str) -> bool {
    let mut at = 0;
    while let Some(begun) = key_line(text, at, "-----BEGIN ") {
        match private_key_close(text, begun) {
            Some(closed) => at = closed,
            None => return is_key_body(text.get(begun..).unwrap_or_default()),
        }
    }
    false
}

/// Whether `text` could be part of a key block's body: base64 lines, and header lines
/// (`Proc-Type: 4,ENCRYPTED`, PGP's `Version: …`).
fn is_key_body(text: &str) -> bool {
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    text.lines().map(str::trim).all(|line| {
        line.chars().all(base64)
            || line.split_once(": ").is_some_and(|(name, _)| {
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    })
}

/// Where the first `<marker><label>PRIVATE KEY[ BLOCK]-----` line from `from` ends.
fn key_line(text: &str, from: usize, marker: &str) -> Option<usize> {
    const TAIL: &str = "PRIVATE KEY";
    let mut at = from;
    while let Some(found) = text.get(at..).and_then(|rest| rest.find(marker)) {
        let label_start = at + found + marker.len();
        let rest = text.get(label_start..).unwrap_or_default();
        let label_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
            .count();
        let label = rest.get(..label_len).unwrap_or_default();
        let after = rest.get(label_len..).unwrap_or_default();
        if label.trim_end_matches(" BLOCK").ends_with(TAIL) && after.starts_with("-----") {
            return Some(label_start + label_len + "-----".len());
        }
        at = label_start;
    }
    None
}

/// Accepts a phone candidate: trims trailing groups until it has 10–15 digits, and rejects it
/// when it is glued to a longer number, a word (ASCII or full-width) or an arithmetic `+`.
fn phone_span(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut before = text.get(..start)?.chars().rev();
    if let Some(c) = before.next() {
        let glued_to_number =
            matches!(c, '.' | '-' | '/' | ':' | ',') && before.next().is_some_and(is_digit_char);
        if is_word_char(c) || c == '+' || glued_to_number {
            return None;
        }
    }
    // The longest prefix ending after a digit group with 10..=15 digits.
    let mut digits = 0;
    let mut best = None;
    for (offset, byte) in bytes.get(start..end)?.iter().enumerate() {
        if !byte.is_ascii_digit() {
            continue;
        }
        digits += 1;
        let group_end = start + offset + 1;
        let group_closes = card_digit(bytes, group_end).is_none();
        if group_closes && (10..=15).contains(&digits) {
            best = Some(group_end);
        }
    }
    let end = best?;
    let mut after = text.get(end..)?.chars();
    let glued_after = match after.next() {
        Some('.' | '-' | '/' | ':') => after.next().is_some_and(is_digit_char),
        Some(c) => is_word_char(c),
        None => false,
    };
    (!glued_after && !is_amount(text, start, end)).then_some((start, end))
}

/// Whether the number at `start..end` is an amount of money, with a currency's sign or code
/// beside it: `+1 250 000 000 €` is grouped as a phone number may be.
fn is_amount(text: &str, start: usize, end: usize) -> bool {
    const SIGNS: &str = "$€£¥₹₽₩₺₪₫₴₦₱฿¢";
    const CODES: [&str; 24] = [
        "USD", "EUR", "GBP", "JPY", "CNY", "CHF", "CAD", "AUD", "INR", "BRL", "RUB", "KRW", "SEK",
        "NOK", "DKK", "PLN", "CZK", "HUF", "MXN", "ZAR", "TRY", "HKD", "SGD", "NZD",
    ];
    let blank = |c: char| matches!(c, ' ' | '\u{a0}' | '\u{202f}');
    let after = text
        .get(end..)
        .unwrap_or_default()
        .trim_start_matches(blank);
    let before = text
        .get(..start)
        .unwrap_or_default()
        .trim_end_matches(blank);
    let code_after = CODES.iter().any(|code| {
        (after.strip_prefix(code)).is_some_and(|rest| !rest.starts_with(char::is_alphanumeric))
    });
    let code_before = CODES.iter().any(|code| {
        (before.strip_suffix(code)).is_some_and(|rest| !rest.ends_with(char::is_alphanumeric))
    });
    after.starts_with(|c| SIGNS.contains(c))
        || before.ends_with(|c| SIGNS.contains(c))
        || code_after
        || code_before
}

/// Keys, tokens and private keys, all ASCII and all starting with a literal (which keeps the
/// prefilter on). Where two match at the same place the first listed wins, so specific
/// prefixes come before generic ones.
const SECRET_PATTERNS: &[Pattern] = &[
    // Anthropic: sk-ant-api03-…, sk-ant-admin01-…
    key(r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    // OpenAI project, service-account and admin keys, and `sk-None-` ones made without a project.
    key(r"\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}"),
    // OpenAI user keys (no dashes after `sk-`, so `sk-learn-…` prose does not match).
    key(r"\bsk-[A-Za-z0-9]{20,}"),
    // AWS access key ids (long-term AKIA, temporary ASIA, and the rarer ABIA/ACCA).
    key(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    // AWS secret access keys and session tokens after their usual labels: env, credentials and
    // YAML files (`aws_secret_access_key =`, `AWS_SESSION_TOKEN=`), the JSON that
    // `aws iam create-access-key` and `aws sts` print (`"SecretAccessKey": "…"`,
    // `"SessionToken": "…"`) and the `aws configure` prompt (`AWS Secret Access Key [None]: …`).
    Pattern {
        kind: SecretKind::ProviderKey,
        shape: Shape::ValueAfterAssignment,
        regex: r#"(?:(?i:aws[_ ]secret[_ ]access[_ ]key|aws[_ ]secret[_ ]key|aws[_ ]session[_ ]token)|secret_access_key|SECRET_ACCESS_KEY|[Ss]ecretAccessKey|[Ss]essionToken)(?:[ \t]*\[[A-Za-z0-9*]{0,64}\])?["']?[ \t]*[:=][ \t]*["']?[A-Za-z0-9/+=]{30,}"#,
    },
    // GitHub classic tokens (personal, OAuth, server, user, refresh) and fine-grained PATs.
    key(r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{30,}"),
    key(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    // GitLab personal access tokens.
    key(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    // Slack bot, user, app-level, refresh and legacy tokens.
    key(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    // Slack app-level tokens (xapp-1-A…-<digits>-<hex>) and incoming webhook URLs, whose path
    // is the credential.
    key(r"\bxapp-[0-9]+-[A-Za-z0-9]{6,}-[0-9]{6,}-[A-Za-z0-9]{16,}"),
    key(
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Za-z0-9]{6,}/[A-Za-z0-9]{6,}/[A-Za-z0-9]{16,}(?:/[A-Za-z0-9]+)?",
    ),
    // Stripe secret and restricted keys (test keys too: they are still credentials).
    key(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    // Stripe (and Svix) webhook signing secrets.
    key(r"\bwhsec_[A-Za-z0-9+/]{24,}=*"),
    // Google API keys.
    key(r"\bAIza[A-Za-z0-9_-]{35,}"),
    // Hugging Face access tokens.
    key(r"\bhf_[A-Za-z0-9]{30,}"),
    // Groq, Replicate, xAI and npm tokens.
    key(r"\bgsk_[A-Za-z0-9]{40,}"),
    key(r"\br8_[A-Za-z0-9]{30,}"),
    key(r"\bxai-[A-Za-z0-9]{50,}"),
    key(r"\bnpm_[A-Za-z0-9]{36,}"),
    // SendGrid: SG.<22>.<43>.
    key(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{30,}"),
    // Hangar gateway keys: hgk_<8-char prefix>_<secret>.
    key(r"\bhgk_[A-Za-z0-9_]{16,}"),
    // A password in a URL (`postgres://admin:S3cr3t@db`, `redis://:pass@cache`), any scheme:
    // only the password is masked. Printable ASCII but for URL and quoting delimiters (`/?#@`,
    // `"<>`) and `[]`, so that a mask is not read as a password again.
    Pattern {
        kind: SecretKind::ProviderKey,
        shape: Shape::UrlPassword,
        regex: r"://[!$-.0-9;=A-Z\\^-~]*:[!$-.0-;=A-Z\\^-~]+@",
    },
    // JWTs: base64url JSON header and payload (both start `{"` = `eyJ`), optional signature.
    Pattern {
        kind: SecretKind::BearerToken,
        shape: Shape::Whole,
        regex: r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    },
    // `Bearer <credential>` in headers pasted into prompts, curl commands, logs.
    Pattern {
        kind: SecretKind::BearerToken,
        shape: Shape::BearerCredential,
        regex: r"\b(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]{16,}=*",
    },
    // `Basic <base64 of user:password>`, as curl -v and browsers' devtools show it.
    Pattern {
        kind: SecretKind::BearerToken,
        shape: Shape::BasicCredential,
        regex: r"\b(?i:basic)(?:[ \t\r\n]+|%20)[A-Za-z0-9+/_-]{8,}(?:=|%3[dD]){0,2}",
    },
    Pattern {
        kind: SecretKind::PrivateKey,
        shape: Shape::PrivateKeyBlock,
        regex: r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
    },
];

/// More keys with a known prefix, in a regex of their own: in the one above, that many
/// literals turned its fast start off, which made every search three times slower.
const PLATFORM_KEY_PATTERNS: &[Pattern] = &[
    // Model and AI platforms: NVIDIA (NIM, build.nvidia.com), Perplexity, LangSmith,
    // Pinecone, Databricks.
    key(r"\bnvapi-[A-Za-z0-9_-]{40,}"),
    key(r"\bpplx-[A-Za-z0-9]{40,}"),
    key(r"\blsv2_(?:pt|sk)_[A-Za-z0-9_]{32,}"),
    key(r"\bpcsk_[A-Za-z0-9_]{30,}"),
    key(r"\bdapi[0-9a-f]{32}\b"),
    // Google OAuth client secrets and access tokens.
    key(r"\bGOCSPX-[A-Za-z0-9_-]{24,}"),
    key(r"\bya29\.[A-Za-z0-9_-]{20,}"),
    // What platform teams hold: Vault tokens, Docker Hub, PyPI, DigitalOcean, Heroku,
    // Doppler, Pulumi, Grafana, New Relic, Sentry, Atlassian, Linear, Notion, Postman,
    // Shopify, Square, age secret keys. (Twilio's `SK` keys are left out: a two-letter
    // prefix made every search three times slower.)
    key(r"\bhv[sb]\.[A-Za-z0-9_-]{24,}"),
    key(r"\bdckr_pat_[A-Za-z0-9_-]{24,}"),
    key(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{40,}"),
    key(r"\bdo[opr]_v1_[0-9a-f]{64}\b"),
    key(r"\bHRKU-[A-Za-z0-9_-]{30,}"),
    key(r"\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,}"),
    key(r"\bpul-[0-9a-f]{40}\b"),
    key(r"\bgl(?:sa|c)_[A-Za-z0-9_+/]{32,}=*"),
    key(r"\bNRAK-[A-Z0-9]{27}\b"),
    key(r"\bsntry[su]_[A-Za-z0-9_+/=]{40,}"),
    key(r"\bATATT3[A-Za-z0-9_=-]{100,}"),
    key(r"\blin_api_[A-Za-z0-9]{40,}"),
    key(r"\bntn_[0-9]{11}[A-Za-z0-9]{35,}"),
    key(r"\bPMAK-[0-9a-f]{24}-[0-9a-f]{34}\b"),
    key(r"\bshp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}\b"),
    key(r"\bsq0(?:atp|csp)-[A-Za-z0-9_-]{22,}"),
    key(r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b"),
];

/// A regex class of `$class`'s characters but for the letters of scripts written without
/// spaces between words.
macro_rules! spaced_script {
    ($class:literal) => {
        concat!(
            "[",
            $class,
            r"&&[^\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}]]"
        )
    };
}

/// An address's regex around the at sign `$at`: in any script (`josé@exemple.fr`,
/// `почта@пример.рф`) but those written without spaces between words: Chinese, Japanese,
/// Korean or Thai letters around an address (`请发邮件到john@example.com谢谢`) are words, not
/// part of it. Zero-width (non-)joiners belong to names in Persian and Indic scripts.
macro_rules! email_regex {
    ($at:literal) => {
        concat!(
            "(?u:",
            spaced_script!(r"\p{L}\p{M}0-9._%+\-\x{200c}\x{200d}"),
            "+",
            $at,
            spaced_script!(r"\p{L}\p{M}0-9\-"),
            r"+(?:\.",
            spaced_script!(r"\p{L}\p{M}0-9\-"),
            r"+)*\.",
            spaced_script!(r"\p{L}\p{M}"),
            "{2,})",
        )
    };
}

const EMAIL_PATTERNS: &[Pattern] = &[Pattern {
    kind: SecretKind::Email,
    shape: Shape::Email,
    regex: email_regex!("@"),
}];

/// Addresses with the full-width at sign, as Japanese text writes them: a regex of its own,
/// run only on text that has one, for either sign in one regex would cost the other's search
/// its fast start.
const FULL_WIDTH_EMAIL_PATTERNS: &[Pattern] = &[Pattern {
    kind: SecretKind::Email,
    shape: Shape::Email,
    regex: email_regex!("＠"),
}];

/// Phone shapes, searched only inside [`phone_windows`].
const PHONE_PATTERNS: &[Pattern] = &[
    // E.164 without separators: +14155550123.
    phone(r"\+[1-9][0-9]{9,14}"),
    // International with separators: +44 20 7946 0958, +33 1 23 45 67 89, +49 30 901820,
    // +49 171/1234567; with an area code or the UK's trunk 0 in brackets: +1 (415) 555-0123,
    // +44 (0)20 7946 0958, +44 (0)7911123456; or the rest unbroken: +49 15112345678.
    phone(
        r"\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\)[ .-]?[0-9]{1,10}(?:[ ./-][0-9]{1,8}){0,5}|(?:[ ./-][0-9]{1,8}){2,6}|[ .-][0-9]{6,12})",
    ),
    // North American: (415) 555-0123, 415-555-0123, 415.555.0123, 1-415-555-0123.
    phone(
        r"(?:1[ .-]?)?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}\b",
    ),
    // National with a trunk 0: 020 7946 0958, (030) 1234 5678, 06-1234-5678, 0171/1234567.
    phone(r"\(?0[1-9][0-9]{0,3}\)?[ ./-][0-9]{3,4}[ .-]?[0-9]{3,4}\b"),
    // France in pairs (01 23 45 67 89, 06.12.34.56.78), Switzerland in 3-3-2-2 (044 668 18 00).
    Pattern {
        kind: SecretKind::Phone,
        shape: Shape::PairedPhone,
        // Spaces, no-break spaces (narrow ones, as French typography has), dots, dashes, slashes.
        regex: r"0[1-9](?:(?:[ ./-]|(?u:[\x{a0}\x{202f}]))[0-9]{2}){4}\b",
    },
    phone(r"0[1-9][0-9][ ./-][0-9]{3}[ .-][0-9]{2}[ .-][0-9]{2}\b"),
    // Chinese mobiles in 3-4-4 (138 0013 8000), Brazil's (11) 91234-5678, India's 98765 43210.
    phone(r"1[3-9][0-9][ -][0-9]{4}[ -][0-9]{4}\b"),
    phone(r"\([1-9][0-9]\) ?9[0-9]{4}-[0-9]{4}\b"),
    phone(r"[6-9][0-9]{4} [0-9]{5}\b"),
];

const fn key(regex: &'static str) -> Pattern {
    Pattern {
        kind: SecretKind::ProviderKey,
        shape: Shape::Whole,
        regex,
    }
}

const fn phone(regex: &'static str) -> Pattern {
    Pattern {
        kind: SecretKind::Phone,
        shape: Shape::Phone,
        regex,
    }
}

/// Masks Telegram's bot tokens, `123456789:AA…`: the bot's id, then 35 characters beginning
/// `AA` (34 in older ones). Found from their `:AA`, for a regex that starts with digits would
/// turn the keys' regex's fast start off.
fn find_bot_tokens(text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let is_token_byte = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    for colon in memchr::memmem::find_iter(bytes, b":AA") {
        let before = bytes.get(..colon).unwrap_or_default();
        let digits = (before.iter().rev().take(13))
            .take_while(|b| b.is_ascii_digit())
            .count();
        let start = colon - digits;
        let after = bytes.get(colon + 1..).unwrap_or_default();
        let secret_len = after
            .iter()
            .take(36)
            .take_while(|b| is_token_byte(b))
            .count();
        // The Bot API's URLs put it after `/bot`.
        let alone = start == 0
            || bytes.get(start - 1).is_some_and(|b| !is_token_byte(b))
            || before
                .get(..start)
                .is_some_and(|url| url.ends_with(b"/bot"));
        if (6..=12).contains(&digits) && alone && (34..=35).contains(&secret_len) {
            let end = colon + 1 + secret_len;
            spans.push(Span {
                start,
                end,
                kind: SecretKind::ProviderKey,
            });
        }
    }
}

/// Finds the cards in `text`, and then those that masking the other finds (already in `spans`)
/// leaves standing on their own: a card glued to an e-mail address or a key is glued to
/// nothing once that is replaced. Only the stretches between masks with a digit or a decimal
/// point against a mask can hold such a card, so only those are read again.
fn find_all_cards(text: &str, spans: &mut Vec<Span>) {
    let masked = masked_ranges(spans);
    find_cards(text, 0, spans);
    let mut gap_start = 0;
    let mut number_after_mask = false;
    for range in &masked {
        let number_before_mask =
            number_edge(text.get(..range.start).and_then(|t| t.chars().next_back()));
        if number_after_mask || number_before_mask {
            find_cards_between(text, gap_start..range.start, spans);
        }
        number_after_mask = number_edge(text.get(range.end..).and_then(|t| t.chars().next()));
        gap_start = range.end;
    }
    if number_after_mask {
        find_cards_between(text, gap_start..text.len(), spans);
    }
}

/// Finds the cards in `text[range]` read on its own, as it will read between two masks.
fn find_cards_between(text: &str, range: Range<usize>, spans: &mut Vec<Span>) {
    if let Some(part) = text.get(range.clone()) {
        find_cards(part, range.start, spans);
    }
}

/// Whether `c` is a digit or a decimal point: what decides whether a card is glued.
fn number_edge(c: Option<char>) -> bool {
    c.is_some_and(|c| is_digit_char(c) || matches!(c, '.' | '．'))
}

/// The byte ranges the spans cover, sorted and merged.
fn masked_ranges(spans: &[Span]) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = spans.iter().map(|span| span.start..span.end).collect();
    ranges.sort_unstable_by_key(|range| range.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Finds card numbers: runs of 13–19 digits, or groups of 3–6 digits (the first 4–6) joined by
/// one to three separators of any mix, that pass Luhn and the issuer-prefix check. Digits may
/// be ASCII or full-width, with invisible characters anywhere between them. Digit runs are
/// never split, so a card is never found inside a longer number. Spans are pushed `offset`
/// bytes on, for when `text` is part of a larger text.
fn find_cards(text: &str, offset: usize, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(lead) = next_byte(bytes, at, may_start_card_digit) {
        if card_digit(bytes, lead).is_none() {
            // A full-width character that is not a digit.
            at = lead + 1;
            continue;
        }
        let (digits, run_end) = card_digit_run(bytes, lead);
        // A card's first group has 4 digits or more, however the invisible characters in it
        // are read; most numbers in text have fewer (versions, times, counts).
        if digits >= 4
            && card_may_start(text, lead)
            && let Some(end) = card_from(text, lead, Invisible::Skipped)
                .or_else(|| card_from(text, lead, Invisible::Separate))
        {
            spans.push(Span {
                start: offset + lead,
                end: offset + end,
                kind: SecretKind::CardNumber,
            });
            at = end;
        } else {
            at = run_end;
        }
    }
}

/// The stretches of text that can hold a phone number: digit runs joined by at most three
/// characters of phone punctuation (` .-()`), with 10 or more digits in all, widened to take a
/// leading `+` or `(`.
fn phone_windows(bytes: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(first) = next_digit(bytes, at) {
            let mut end = first;
            let mut digits = 0;
            loop {
                let run_end = digit_run_end(bytes, end);
                digits += run_end - end;
                let gap = bytes
                    .get(run_end..)
                    .unwrap_or_default()
                    .iter()
                    .take(4)
                    // ASCII separators, and the bytes of a no-break or narrow no-break space.
                    .take_while(|b| {
                        matches!(
                            b,
                            b' ' | b'.'
                                | b'-'
                                | b'/'
                                | b'('
                                | b')'
                                | 0xC2
                                | 0xA0
                                | 0xE2
                                | 0x80
                                | 0xAF
                        )
                    })
                    .count();
                end = run_end;
                if !(1..=3).contains(&gap) || !is_digit(bytes, run_end + gap) {
                    break;
                }
                end = run_end + gap;
            }
            at = end;
            if digits >= 10 {
                let lead = bytes
                    .get(first.saturating_sub(2)..first)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .take_while(|b| matches!(b, b'+' | b'('))
                    .count();
                return Some(first - lead..end);
            }
        }
        None
    })
}

/// The position of the first ASCII digit at or after `from`.
fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    next_byte(bytes, from, |byte| byte.is_ascii_digit())
}

/// The position of the first byte at or after `from` that `wanted` accepts. Blocks of 16 bytes
/// without one are skipped with a branch-free test the compiler vectorises.
pub(crate) fn next_byte(bytes: &[u8], from: usize, wanted: impl Fn(u8) -> bool) -> Option<usize> {
    const BLOCK: usize = 16;
    let rest = bytes.get(from..)?;
    let skipped = rest
        .chunks_exact(BLOCK)
        .take_while(|block| !block.iter().fold(false, |any, &byte| any | wanted(byte)))
        .count()
        * BLOCK;
    let offset = rest.get(skipped..)?.iter().position(|&byte| wanted(byte))?;
    Some(from + skipped + offset)
}

fn digit_run_end(bytes: &[u8], from: usize) -> usize {
    from + bytes
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

fn is_digit(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_some_and(u8::is_ascii_digit)
}

/// The most digits a card number has.
const MAX_CARD_DIGITS: usize = 19;

/// The most separator characters between two groups of a card.
const MAX_CARD_SEPARATORS: usize = 3;

/// The first byte of the full-width digits `０`–`９` (U+FF10–U+FF19: `EF BC 90`–`EF BC 99`).
const FULL_WIDTH_LEAD: u8 = 0xEF;

/// Whether `byte` may be the first byte of a card digit: an ASCII digit, or the lead byte of a
/// full-width (`EF`), Arabic-Indic (`D9`, `DB`), Devanagari (`E0`) or mathematical (`F0`) one.
/// Two range tests, so that the scan for them stays vectorised: other lead bytes from `D9` up
/// pass too, and [`card_digit`] turns them away.
fn may_start_card_digit(byte: u8) -> bool {
    (byte.wrapping_sub(b'0') < 10) | (byte >= 0xD9)
}

/// The value and UTF-8 length of the card digit at `at`: ASCII `0`–`9`, full-width `０`–`９`,
/// or the digits a model reads just as well: Arabic-Indic `٠`–`٩` (U+0660), Eastern
/// Arabic-Indic `۰`–`۹` (U+06F0), Devanagari `०`–`९` (U+0966), and the mathematical bold,
/// double-struck, sans-serif and monospace digits (U+1D7CE–U+1D7FF).
fn card_digit(bytes: &[u8], at: usize) -> Option<(u8, usize)> {
    match bytes.get(at..)? {
        [digit @ b'0'..=b'9', ..] => Some((digit - b'0', 1)),
        [FULL_WIDTH_LEAD, 0xBC, digit @ 0x90..=0x99, ..] => Some((digit - 0x90, 3)),
        [0xD9, digit @ 0xA0..=0xA9, ..] => Some((digit - 0xA0, 2)),
        [0xDB, digit @ 0xB0..=0xB9, ..] => Some((digit - 0xB0, 2)),
        [0xE0, 0xA5, digit @ 0xA6..=0xAF, ..] => Some((digit - 0xA6, 3)),
        [0xF0, 0x9D, 0x9F, digit @ 0x8E..=0xBF, ..] => Some(((digit - 0x8E) % 10, 4)),
        _ => None,
    }
}

/// The UTF-8 length of the separator at `at`, if one that may stand between the groups of a
/// card is there: what people type, and what pasting from PDFs and web pages leaves.
fn card_separator(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at..)? {
        [b' ' | b'\t' | b'-' | b'.' | b'/', ..] => Some(1),
        // U+00A0 no-break space, U+00B7 middle dot.
        [0xC2, 0xA0 | 0xB7, ..] => Some(2),
        // U+2022 bullet, U+2027 hyphenation point.
        [0xE2, 0x80, 0xA2 | 0xA7, ..] => Some(3),
        // U+2000–U+200A spaces (en, em, figure, thin, hair…), U+2010–U+2015 hyphens and
        // dashes, U+202F narrow no-break space.
        [0xE2, 0x80, 0x80..=0x8A | 0x90..=0x95 | 0xAF, ..] => Some(3),
        // U+2212 minus sign.
        [0xE2, 0x88, 0x92, ..] => Some(3),
        // U+3000 ideographic space.
        [0xE3, 0x80, 0x80, ..] => Some(3),
        // U+FF0D–U+FF0F full-width hyphen-minus, full stop and solidus.
        [FULL_WIDTH_LEAD, 0xBC, 0x8D..=0x8F, ..] => Some(3),
        _ => None,
    }
}

/// How invisible characters are read in a card. Both readings are tried, so that hiding them in
/// a number does not hide it from redaction.
#[derive(Debug, Clone, Copy)]
enum Invisible {
    /// Not there at all: digits on either side are one group (`4⁠1⁠1⁠1…`).
    Skipped,
    /// A separator between groups (`4111⁠1111…`).
    Separate,
}

/// The UTF-8 length of the invisible characters at `from` (none: 0): soft hyphen U+00AD,
/// combining marks U+0300–U+036F (the grapheme joiner U+034F among them), Mongolian vowel
/// separator U+180E, zero-width space, non-joiner and joiner U+200B–U+200D, left-to-right and
/// right-to-left marks U+200E–U+200F, bidirectional embeddings and overrides U+202A–U+202E,
/// word joiner and invisible operators U+2060–U+2064, bidirectional isolates U+2066–U+2069,
/// combining marks for symbols U+20D0–U+20FF (the keycap U+20E3), variation selectors
/// U+FE00–U+FE0F and byte order mark U+FEFF. Pages in right-to-left scripts put the bidi marks
/// into what is copied from them, and all of them can be slipped between digits on purpose.
fn invisible_len(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    loop {
        let width = match bytes.get(at..).unwrap_or_default() {
            [0xC2, 0xAD, ..] | [0xCC, 0x80..=0xBF, ..] | [0xCD, 0x80..=0xAF, ..] => 2,
            [0xE1, 0xA0, 0x8E, ..]
            | [0xE2, 0x80, 0x8B..=0x8F | 0xAA..=0xAE, ..]
            | [0xE2, 0x81, 0xA0..=0xA4 | 0xA6..=0xA9, ..]
            | [0xE2, 0x83, 0x90..=0xBF, ..]
            | [FULL_WIDTH_LEAD, 0xB8, 0x80..=0x8F, ..]
            | [FULL_WIDTH_LEAD, 0xBB, 0xBF, ..] => 3,
            _ => return at - from,
        };
        at += width;
    }
}

/// Where the digit after the one ending at `at` starts, past invisible characters, if one does.
fn next_digit_in_run(bytes: &[u8], at: usize) -> Option<usize> {
    let next = at + invisible_len(bytes, at);
    card_digit(bytes, next).map(|_| next)
}

/// How many digits follow from `from`, invisible characters between them skipped, and where
/// they end.
fn card_digit_run(bytes: &[u8], from: usize) -> (usize, usize) {
    let mut at = from;
    let mut digits = 0;
    while let Some((_, width)) = card_digit(bytes, at) {
        digits += 1;
        at = next_digit_in_run(bytes, at + width).unwrap_or(at + width);
    }
    (digits, at)
}

/// A digit [`card_digit`] reads.
fn is_digit_char(c: char) -> bool {
    let mut utf8 = [0; 4];
    card_digit(c.encode_utf8(&mut utf8).as_bytes(), 0).is_some()
}

/// Letters and `_`, ASCII or full-width, and every digit [`card_digit`] reads.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, '_' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '＿')
        || is_digit_char(c)
}

/// Whether a card would be glued to its neighbour `next` (with `beyond` the character past
/// it): a word, an identifier or a decimal fraction.
fn glued(next: Option<char>, beyond: Option<char>) -> bool {
    match next {
        Some('.' | '．') => beyond.is_some_and(is_digit_char),
        Some(c) => is_word_char(c),
        None => false,
    }
}

/// A card may not continue a word, an identifier or a decimal fraction.
fn card_may_start(text: &str, start: usize) -> bool {
    let mut before = text.get(..start).unwrap_or_default().chars().rev();
    let next = before.next();
    !glued(next, before.next())
}

/// A card may not run into a word, an identifier or a decimal fraction.
fn card_may_end(text: &str, end: usize) -> bool {
    let mut after = text.get(end..).unwrap_or_default().chars();
    let next = after.next();
    !glued(next, after.next())
}

/// The end of the longest card starting at `start` (the first digit of a group), if any.
fn card_from(text: &str, start: usize, invisible: Invisible) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut digits = [0u8; MAX_CARD_DIGITS];
    let mut count = 0;
    let mut group_start = start;
    let mut best = None;
    for group in 0.. {
        let (len, group_end) = read_group(bytes, group_start, &mut digits, count, invisible);
        let shape_ok = match group {
            0 => (4..=6).contains(&len) || (13..=MAX_CARD_DIGITS).contains(&len),
            _ => (3..=6).contains(&len),
        };
        if !shape_ok || count + len > MAX_CARD_DIGITS {
            break;
        }
        count += len;
        let number = digits.get(..count).unwrap_or_default();
        if count >= 13
            && card_may_end(text, group_end)
            && luhn_valid(number)
            && issuer_known(number)
        {
            best = Some(group_end);
        }
        // A single long run is a card on its own; groups continue after a few separators.
        match next_group(bytes, group_end, invisible) {
            Some(next) if len <= 6 => group_start = next,
            _ => break,
        }
    }
    best
}

/// Reads the digits of the group at `from` into `digits`, after the first `count`, and returns
/// how many it has (counting stops past [`MAX_CARD_DIGITS`]) and where it ends.
fn read_group(
    bytes: &[u8],
    from: usize,
    digits: &mut [u8],
    count: usize,
    invisible: Invisible,
) -> (usize, usize) {
    let mut len = 0;
    let mut at = from;
    while len <= MAX_CARD_DIGITS
        && let Some((value, width)) = card_digit(bytes, at)
    {
        if let Some(slot) = digits.get_mut(count + len) {
            *slot = value;
        }
        len += 1;
        at += width;
        if let Invisible::Skipped = invisible {
            at = next_digit_in_run(bytes, at).unwrap_or(at);
        }
    }
    (len, at)
}

/// Where the group after the one ending at `from` starts: at a digit after one to
/// [`MAX_CARD_SEPARATORS`] separators.
fn next_group(bytes: &[u8], from: usize, invisible: Invisible) -> Option<usize> {
    let mut at = from;
    for _ in 0..MAX_CARD_SEPARATORS {
        at += separator_len(bytes, at, invisible)?;
        if card_digit(bytes, at).is_some() {
            return Some(at);
        }
    }
    None
}

/// The UTF-8 length of the separator at `at`, with the invisible characters around it when
/// they are skipped; a run of them is a separator of its own when they separate.
fn separator_len(bytes: &[u8], at: usize, invisible: Invisible) -> Option<usize> {
    let hidden = invisible_len(bytes, at);
    match invisible {
        Invisible::Separate if hidden > 0 => Some(hidden),
        Invisible::Separate => card_separator(bytes, at),
        Invisible::Skipped => {
            let visible = card_separator(bytes, at + hidden)?;
            Some(hidden + visible + invisible_len(bytes, at + hidden + visible))
        }
    }
}

/// The Luhn (mod 10) check every payment card number passes.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &digit)| {
            let digit = u32::from(digit);
            if i % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether the number starts like a card of a major network: Visa 4, Mastercard 51–55 and
/// 2221–2720, Amex 34/37, Diners 30/36/38/39, JCB 35, Discover/UnionPay/Maestro 5x/6x.
/// Prefix 1 (UATP) is left out on purpose: it would catch millisecond timestamps.
fn issuer_known(digits: &[u8]) -> bool {
    // The only 15-digit cards are Amex and UATP (left out): other 15 Luhn-valid digits are
    // IMEIs (35…, 49…) and the like.
    if digits.len() == 15 {
        return matches!(digits, [3, 4 | 7, ..]);
    }
    match digits {
        [4, ..] | [5, ..] | [6, ..] => true,
        [3, second, ..] => !matches!(second, 1..=3),
        [2, a, b, c, ..] => {
            let prefix = 2000 + u32::from(*a) * 100 + u32::from(*b) * 10 + u32::from(*c);
            (2221..=2720).contains(&prefix)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
