//! Secrets known by the label before them rather than by their own shape: `DB_PASSWORD=…`,
//! `"client_secret": "…"`, `X-Api-Key: …`, `GITHUB_TOKEN=…`, Azure's `AccountKey=…`, a shared
//! access signature's `&sig=…`, Docker's `"auth": "…"`, and a Kubernetes container's
//! `- name: DB_PASSWORD` followed by `value: …`.
//!
//! Prompts are full of code and configuration that names secrets without holding one, so a
//! value is taken only when it could be one: not a word (`password: Required`), a reference
//! (`$DB_PASSWORD`, `{{ .Values.password }}`, `os.environ["KEY"]`, `settings.SECRET_KEY`), a
//! type (`password: str`), a placeholder (`YOUR_API_KEY`, `********`) or a Kubernetes object's
//! name (`existingSecret: postgres-creds`); and after a token's label only a value shaped like
//! a credential, for model configurations are full of `eos_token: "</s>"`.

use super::{SecretKind, Span, basic_credential};

/// What a label says its value is, which decides what value is taken for a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// A password, a secret or a key.
    Secret,
    /// A token, or an `Authorization` header's value.
    Token,
    /// Docker's `auth`: the base64 of `user:password`.
    DockerAuth,
    /// A shared access signature's `sig`, in a URL's query.
    Signature,
}

impl Label {
    fn kind(self) -> SecretKind {
        match self {
            Label::DockerAuth => SecretKind::BearerToken,
            Label::Secret | Label::Token | Label::Signature => SecretKind::ProviderKey,
        }
    }
}

/// The longest label read: longer runs before a `:` are not names of settings.
const MAX_LABEL: usize = 64;

/// The longest value taken: longer ones are documents, not secrets.
const MAX_VALUE: usize = 256;

/// Adds the spans of the labelled secrets in `text`: keys, passwords and tokens when `keys`,
/// Docker's credentials when `credentials`.
pub(super) fn find_labelled(text: &str, keys: bool, credentials: bool, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut after = 0;
    for operator in memchr::memchr2_iter(b':', b'=', bytes) {
        // The value of a find may hold `=` (base64 padding) or `:`: nothing in it is a label.
        if operator < after {
            continue;
        }
        let Some(label) = label_before(bytes, operator) else {
            continue;
        };
        let wanted = match label {
            Label::DockerAuth => credentials,
            Label::Secret | Label::Token | Label::Signature => keys,
        };
        if !wanted {
            continue;
        }
        if let Some((start, end)) = value_after(bytes, operator, label) {
            spans.push(Span {
                start,
                end,
                kind: label.kind(),
            });
            after = end;
        }
    }
}

/// The label that `operator` (a `:` or `=`) assigns to, if it names a secret: a setting's name,
/// bare or quoted (`"password":`, `DB_PASSWORD=`, `--password=`, `X-Api-Key:`).
fn label_before(bytes: &[u8], operator: usize) -> Option<Label> {
    let mut end = operator;
    while end > 0 && matches!(bytes.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    let quote = match bytes.get(end.checked_sub(1)?) {
        Some(&quote @ (b'"' | b'\'')) => {
            end -= 1;
            Some(quote)
        }
        _ => None,
    };
    // Every label ends in one of these: most colons and equals signs go no further.
    let &[a, b, c] = bytes.get(end.checked_sub(3)?..end)? else {
        return None;
    };
    let ending = [a, b, c].map(|b| b.to_ascii_lowercase());
    let endings: [&[u8; 3]; 12] = [
        b"ord", b"swd", b"ase", b"pwd", b"ass", b"ret", b"key", b"ken", b"ion", b"uth", b"sig",
        b"lue",
    ];
    if !endings.contains(&&ending) {
        return None;
    }
    let mut start = end;
    while start > 0
        && end - start <= MAX_LABEL
        && bytes
            .get(start - 1)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        start -= 1;
    }
    let before = start.checked_sub(1).and_then(|at| bytes.get(at)).copied();
    if end - start > MAX_LABEL || quote.is_some_and(|quote| before != Some(quote)) {
        return None;
    }
    let name = bytes.get(start..end)?;
    if name.eq_ignore_ascii_case(b"auth") {
        return Some(Label::DockerAuth);
    }
    if name == b"sig" {
        return matches!(before, Some(b'?' | b'&')).then_some(Label::Signature);
    }
    if name == b"value" {
        return env_name_before(bytes, start).and_then(label_of);
    }
    label_of(name)
}

/// What a setting's name says its value is, from its last word or two (`DB_PASSWORD`,
/// `clientSecret`, `x-api-key`, `SharedAccessKey`, `GITHUB_TOKEN`).
fn label_of(name: &[u8]) -> Option<Label> {
    let (previous, last) = last_two_words(name);
    let last = last?;
    let ends = |suffix: &str| {
        last.len() >= suffix.len()
            && last
                .get(last.len() - suffix.len()..)
                .is_some_and(|end| end.eq_ignore_ascii_case(suffix.as_bytes()))
    };
    let is = |word: &[u8], wanted: &str| word.eq_ignore_ascii_case(wanted.as_bytes());
    // What a key is of, in `api_key`, `SharedAccessKey`; run together in `apikey`.
    const KEYS: [&str; 9] = [
        "api",
        "access",
        "account",
        "secret",
        "master",
        "shared",
        "signing",
        "encryption",
        "subscription",
    ];
    const KEYS_RUN_TOGETHER: [&str; 9] = [
        "apikey",
        "accesskey",
        "accountkey",
        "secretkey",
        "masterkey",
        "sharedkey",
        "signingkey",
        "encryptionkey",
        "subscriptionkey",
    ];
    let password = ["password", "passwd", "passphrase"].into_iter().any(ends)
        || is(last, "pwd")
        || (previous.is_some() && is(last, "pass"));
    let key = (is(last, "key") && previous.is_some_and(|word| KEYS.iter().any(|k| is(word, k))))
        || KEYS_RUN_TOGETHER.into_iter().any(ends);
    if password || ends("secret") || key {
        Some(Label::Secret)
    } else if ends("token") || is(last, "authorization") {
        Some(Label::Token)
    } else {
        None
    }
}

/// The last two words of a name, split at `_`, `-`, `.` and where camel case starts a word
/// (`clientSecret`, `APIKey`).
fn last_two_words(name: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let mut words: (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let mut start: Option<usize> = None;
    let upper = |at: usize| name.get(at).is_some_and(u8::is_ascii_uppercase);
    let lower = |at: usize| name.get(at).is_some_and(u8::is_ascii_lowercase);
    for at in 0..=name.len() {
        let in_word = name.get(at).is_some_and(u8::is_ascii_alphanumeric);
        let camel = at > 0
            && upper(at)
            && (!upper(at - 1) || lower(at + 1))
            && name.get(at - 1).is_some_and(u8::is_ascii_alphanumeric);
        if let Some(from) = start
            && (!in_word || camel)
        {
            words = (words.1, name.get(from..at));
            start = None;
        }
        if in_word && start.is_none() {
            start = Some(at);
        }
    }
    words
}

/// The variable a Kubernetes container's `value:` at `value` sets, when the line before is its
/// `- name: DB_PASSWORD`.
fn env_name_before(bytes: &[u8], value: usize) -> Option<&[u8]> {
    let line_start = bytes.get(..value)?.iter().rposition(|&b| b == b'\n')?;
    let indent = bytes.get(line_start + 1..value)?;
    if !indent.iter().all(|&b| b == b' ') {
        return None;
    }
    let previous_start = bytes
        .get(..line_start)?
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let previous = bytes.get(previous_start..line_start)?;
    let previous = previous.strip_suffix(b"\r").unwrap_or(previous);
    let previous = previous.trim_ascii_start();
    let previous = previous.strip_prefix(b"- ").unwrap_or(previous);
    let name = previous.strip_prefix(b"name:")?.trim_ascii();
    let unquoted = name
        .strip_prefix(b"\"")
        .and_then(|name| name.strip_suffix(b"\""));
    Some(unquoted.unwrap_or(name))
}

/// Where the secret assigned at `operator` is, if the value there is one for `label`.
fn value_after(bytes: &[u8], operator: usize, label: Label) -> Option<(usize, usize)> {
    let mut start = operator + 1;
    match (bytes.get(operator), bytes.get(start)) {
        // `==`, `::`, `://`: a comparison, a path, a URL.
        (Some(b'='), Some(b'=')) | (Some(b':'), Some(b':' | b'/')) => return None,
        // `:=`, `=>`.
        (Some(b':'), Some(b'=')) | (Some(b'='), Some(b'>')) => start += 1,
        _ => {}
    }
    while matches!(bytes.get(start), Some(b' ' | b'\t')) {
        start += 1;
    }
    let (start, end) = match bytes.get(start) {
        Some(&quote @ (b'"' | b'\'')) => {
            let from = start + 1;
            let len = bytes
                .get(from..)?
                .iter()
                .take(MAX_VALUE + 1)
                .position(|&b| b == quote || b.is_ascii_whitespace())?;
            (bytes.get(from + len) == Some(&quote)).then_some((from, from + len))?
        }
        _ => {
            let len = bytes
                .get(start..)?
                .iter()
                .position(|&b| ends_bare_value(b))
                .unwrap_or(bytes.len() - start);
            // A call, an index or a generic type follows a name in code, not a secret.
            if matches!(bytes.get(start + len), Some(b'(' | b'[' | b'{' | b'<')) {
                return None;
            }
            let mut end = start + len;
            // A sentence's full stop or colon is not the value's.
            if matches!(bytes.get(end.saturating_sub(1)), Some(b'.' | b':')) {
                end -= 1;
            }
            (start, end)
        }
    };
    let value = bytes.get(start..end)?;
    let taken = match label {
        Label::Secret => may_be_secret(value),
        Label::Token => may_be_secret(value) && is_credential(value, b"._~+/=%-"),
        Label::DockerAuth => basic_credential(value),
        Label::Signature => value.len() >= 20 && is_credential(value, b"%+/=_-"),
    };
    taken.then_some((start, end))
}

/// Whether `byte` ends a value written without quotes.
fn ends_bare_value(byte: u8) -> bool {
    byte.is_ascii_whitespace()
        || byte.is_ascii_control()
        || matches!(
            byte,
            b',' | b';'
                | b'&'
                | b'"'
                | b'\''
                | b'`'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'<'
                | b'>'
                | b'\\'
                | b'|'
        )
}

/// Whether `value` could be a password, secret or key: 6 to 256 bytes, not letters alone (a
/// word or a variable's name), a reference, a placeholder or an object's name.
fn may_be_secret(value: &[u8]) -> bool {
    if !(6..=MAX_VALUE).contains(&value.len()) {
        return false;
    }
    let reference = matches!(
        value.first(),
        Some(b'$' | b'%' | b'{' | b'<' | b'/' | b'~' | b'@' | b'*' | b'#' | b'[' | b'.')
    ) || [&b"{{"[..], b"${", b"}}", b"...", "…".as_bytes()]
        .iter()
        .any(|part| contains(value, part));
    let placeholder = [&b"xxxx"[..], b"XXXX", b"****", b"REDACTED", b"redacted"]
        .iter()
        .any(|part| contains(value, part))
        || value.iter().all(|b| Some(b) == value.first());
    // `YOUR_API_KEY`, `CHANGEME`, `AWS4-HMAC-SHA256`: a constant's name, or one to fill in.
    let constant = value
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    // `Required`, `api_key`, `dbPassword`: a word or a variable's name.
    let name = value.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_');
    !(reference || placeholder || constant || name || is_code_path(value) || is_object_name(value))
}

/// `os.environ`, `settings.SECRET_KEY`, `cfg.DBPassword`: names joined by dots, as code reads a
/// setting (and as a host name is written).
fn is_code_path(value: &[u8]) -> bool {
    value.contains(&b'.')
        && value.split(|&b| b == b'.').all(|part| {
            part.first()
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
                && part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        })
}

/// `postgres-creds`, `my-tls-secret`, `db-pass-v2`: a Kubernetes object's name, lowercase words
/// joined by dashes or dots with few digits (a UUID's are over a quarter).
fn is_object_name(value: &[u8]) -> bool {
    let digits = value.iter().filter(|b| b.is_ascii_digit()).count();
    value.iter().any(|&b| b == b'-' || b == b'.')
        && value
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && digits * 4 < value.len()
}

/// Whether `value` is shaped like a credential: 16 bytes or more of letters, digits and
/// `symbols`, with a letter and a digit.
fn is_credential(value: &[u8], symbols: &[u8]) -> bool {
    value.len() >= 16
        && value.iter().any(u8::is_ascii_digit)
        && value.iter().any(u8::is_ascii_alphabetic)
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || symbols.contains(b))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
