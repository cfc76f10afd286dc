//! Secrets known by the label before them rather than by their own shape: `DB_PASSWORD=…`,
//! `"client_secret": "…"`, `X-Api-Key: …`, `API Key: …`, `--password …`, Azure's
//! `AccountKey=…`, a shared access signature's `&sig=…`, a kubeconfig's `client-key-data: …`,
//! Docker's `"auth": "…"`, and a variable's value beside its name (`- name: DB_PASSWORD` then
//! `value: …`, `<add key="ApiKey" value="…"/>`).
//!
//! Prompts are full of code and configuration that names secrets without holding one, so a
//! value is taken only when it could be one: not a word or a variable's name (`password:
//! Required`, `"Contraseña"`, `api_key=api_key`), a reference (`$DB_PASSWORD`,
//! `{{ .Values.password }}`, `process.env.SECRET!`, a YAML tag or alias), a type
//! (`password: String?`, `Uint8Array`), a path, a placeholder (`YOUR_API_KEY`, `sk_test_...`)
//! or a Kubernetes object's name (`existingSecret: postgres-creds`); and after a token's label
//! only a value shaped like a credential, for model configurations are full of
//! `eos_token: "</s>"`.
//!
//! The scan is linear in the text, however many labels a hostile text repeats: every value's
//! end is found once, and the labels inside a value read, secret or not, are not read again.

use memchr::{memchr2_iter, memmem};

use super::{SecretKind, Span, basic_credential};

/// What a label says its value is, which decides what value is taken for a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// A password, a secret or a key.
    Secret,
    /// A base64 blob of key material: a kubeconfig's `client-key-data`, a Secret's
    /// `.dockerconfigjson`.
    Encoded,
    /// A token or a session cookie.
    Token,
    /// An `Authorization` header's value: a credential after its scheme (`Token …`, `Bot …`).
    Authorization,
    /// Docker's and npm's `auth`: the base64 of `user:password`.
    UserPassword,
    /// A shared access signature's `sig`, in a URL's query.
    Signature,
}

impl Label {
    fn kind(self) -> SecretKind {
        match self {
            Label::UserPassword => SecretKind::BearerToken,
            _ => SecretKind::ProviderKey,
        }
    }

    /// The longest value taken: longer ones are documents, not secrets, but for key material.
    fn max_len(self) -> usize {
        match self {
            Label::Encoded => 16 * 1024,
            _ => 256,
        }
    }
}

/// The longest label read: longer runs before a `:` are not names of settings.
const MAX_LABEL: usize = 128;

/// How far back a variable's name is looked for before its `value`.
const MAX_PAIR_DISTANCE: usize = 256;

/// Adds the spans of the labelled secrets in `text`: keys, passwords and tokens when `keys`,
/// user and password pairs when `credentials`.
pub(super) fn find_labelled(text: &str, keys: bool, credentials: bool, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let wanted = |label: Label| match label {
        Label::UserPassword => credentials,
        _ => keys,
    };
    let mut ends = ValueEnds::default();
    // Masks the value at `start` if it is a secret, and moves `after` past it.
    let mut take = |found: Found, start: usize, after: &mut usize| {
        if !wanted(found.label) {
            return;
        }
        let Some(value) = value_at(bytes, start, found, &mut ends) else {
            return;
        };
        // The labels inside a value were read with it, secret or not: reading each of them
        // again would make a text that repeats a label inside one long value quadratic.
        *after = value.end;
        if value.secret {
            let kind = found.label.kind();
            spans.push(Span {
                start: value.start,
                end: value.end,
                kind,
            });
        }
    };
    let mut after = 0;
    for operator in memchr2_iter(b':', b'=', bytes) {
        // A value may hold `=` (base64 padding) or `:`: nothing in it is a label.
        if operator >= after
            && let Some(found) = label_before(bytes, operator)
            && let Some(start) = value_start(bytes, operator)
        {
            take(found, start, &mut after);
        }
    }
    // `--password S3cret`, `--api-key …`: a flag and its value apart; curl's `-u user:pass`.
    let mut after = 0;
    for dashes in memchr::memchr_iter(b'-', bytes) {
        if dashes >= after
            && let Some((found, start)) = flag_at(bytes, dashes)
        {
            take(found, start, &mut after);
        }
    }
    // `<password>S3cret</password>`, as Maven's settings.xml and other XML hold them.
    let mut after = 0;
    for close in memmem::find_iter(bytes, b"</") {
        if close >= after
            && let Some((found, start)) = element_before(bytes, close)
        {
            take(found, start, &mut after);
        }
    }
    // SQL's `WITH PASSWORD '…'`, `IDENTIFIED BY '…'`.
    let mut after = 0;
    for quote in memchr::memchr_iter(b'\'', bytes) {
        if quote >= after && is_sql_password(bytes, quote) {
            take(Found::new(Label::Secret), quote, &mut after);
        }
    }
    // A setting and its value parted by blanks, alone on their line: `.netrc`'s
    // `password …`, redis.conf's `requirepass …`, Gradle's `storePassword "…"`.
    let mut after = 0;
    let line_starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', bytes).map(|at| at + 1));
    for line in line_starts {
        if line >= after
            && let Some((found, start)) = spaced_setting(bytes, line)
        {
            take(found, start, &mut after);
        }
    }
    // Python's `auth=("user", "…")` and `HTTPBasicAuth("user", "…")`.
    let mut after = 0;
    for open in memchr::memchr_iter(b'(', bytes) {
        if open >= after
            && let Some(start) = auth_pair_password(bytes, open)
        {
            take(Found::new(Label::Secret), start, &mut after);
        }
    }
}

/// The setting at the start of the line at `line`, parted from its value by blanks, and
/// where the value starts: a password's or a token's name alone (`password s3cr3t`,
/// `storePassword "…"`), with a value that ends the line; or `.netrc`'s `password` after
/// `machine`, `default` or `login` on its line.
fn spaced_setting(bytes: &[u8], line: usize) -> Option<(Found, usize)> {
    let rest = bytes.get(line..)?;
    let indent = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    let rest = rest.get(indent..)?;
    let name_len = rest
        .iter()
        .take(MAX_LABEL + 1)
        .position(|&b| !is_name_byte(b))?;
    let (name, after_name) = rest.split_at(name_len);
    let blanks = after_name.iter().position(|&b| b != b' ' && b != b'\t')?;
    if blanks == 0 || name.is_empty() || name_len > MAX_LABEL {
        return None;
    }
    let value = line + indent + name_len + blanks;
    if [&b"machine"[..], b"default", b"login"].contains(&name) {
        let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let words = rest.get(..line_end.min(MAX_PAIR_DISTANCE))?;
        let keyword = memmem::find(words, b" password ")?;
        let mut start = line + indent + keyword + b" password ".len();
        while matches!(bytes.get(start), Some(b' ' | b'\t')) {
            start += 1;
        }
        return Some((Found::new(Label::Secret), start));
    }
    if !may_be_label(name) {
        return None;
    }
    let label = label_of(name).filter(|label| matches!(label, Label::Secret | Label::Token))?;
    // Nothing after the value but blanks or nginx's `;`: in prose, more words follow.
    let rest = bytes.get(value..)?;
    let line_end = rest
        .iter()
        .take(label.max_len() + 3)
        .position(|&b| b == b'\n');
    let said = rest.get(..line_end.unwrap_or(rest.len().min(label.max_len() + 3)))?;
    // A comment after the value (`storePassword "…" // release key`) is no more words.
    let comment = memmem::find(said, b" //").or_else(|| memmem::find(said, b" #"));
    let said = said.get(..comment.unwrap_or(said.len())).unwrap_or(said);
    let said = said.trim_ascii_end();
    let said = said.strip_suffix(b";").unwrap_or(said);
    let quoted = matches!(said.first(), Some(b'"' | b'\'')) && said.last() == said.first();
    let one_value = match said.get(1..said.len().saturating_sub(1)) {
        Some(inside) if quoted && said.len() >= 2 => !inside.contains(&said[0]),
        _ => !said.iter().any(|&b| ends_bare_value(b)),
    };
    // Without an operator the label says less: a man page's `passwd 口令來…` is a sentence
    // and `secret TLSv1.3` a term, so only a longer value in ASCII is taken.
    let long_ascii = said.is_ascii() && said.len() >= 8 + 2 * usize::from(quoted);
    (one_value && long_ascii).then_some((Found::new(label), value))
}

/// Where the password starts in the user and password pair that the parenthesis at `open`
/// opens, after `auth=` (or `basic_auth=`, `http_auth=`…) or `HTTPBasicAuth`: Python's
/// Requests, HTTPX, aiohttp and Elasticsearch clients, on one line or several. The user is a
/// quoted string or a variable; the password is taken only when quoted.
fn auth_pair_password(bytes: &[u8], open: usize) -> Option<usize> {
    let floor = open.saturating_sub(MAX_LABEL);
    let mut end = open;
    let before = |end: usize| bytes.get(floor..end).unwrap_or_default();
    let classes: [&[u8]; 3] = [b"BasicAuth", b"DigestAuth", b"ProxyAuth"];
    if !classes.iter().any(|class| before(end).ends_with(class)) {
        skip_back(bytes, &mut end, floor, |b| b == b' ' || b == b'\t');
        end = end
            .checked_sub(1)
            .filter(|&at| bytes.get(at) == Some(&b'='))?;
        skip_back(bytes, &mut end, floor, |b| b == b' ' || b == b'\t');
        let name = before(end);
        // `auth=`, `session.auth =`, `basic_auth=`; not `oauth=`.
        let auth = name.strip_suffix(b"auth")?;
        if auth.last().is_some_and(u8::is_ascii_alphanumeric) {
            return None;
        }
    }
    let mut at = open + 1;
    skip_whitespace(bytes, &mut at);
    let user_len = match *bytes.get(at)? {
        quote @ (b'"' | b'\'') => {
            let inside = (bytes.get(at + 1..)?.iter().take(MAX_LABEL))
                .position(|&b| b == quote || b == b'\n')?;
            (bytes.get(at + 1 + inside) == Some(&quote)).then_some(inside + 2)?
        }
        // `auth=(user, "…")`, `auth=(settings.USER, "…")`.
        first if first.is_ascii_alphabetic() || first == b'_' => (bytes.get(at..)?.iter())
            .take(MAX_LABEL)
            .position(|&b| !is_name_byte(b))?,
        _ => return None,
    };
    at += user_len;
    skip_whitespace(bytes, &mut at);
    if bytes.get(at) != Some(&b',') {
        return None;
    }
    at += 1;
    skip_whitespace(bytes, &mut at);
    matches!(bytes.get(at), Some(b'"' | b'\'')).then_some(at)
}

/// Moves `at` past blanks and line breaks: black writes a call's arguments a line each.
fn skip_whitespace(bytes: &[u8], at: &mut usize) {
    while bytes.get(*at).is_some_and(u8::is_ascii_whitespace) {
        *at += 1;
    }
}

/// The element that the closing tag at `close` ends, if its name names a secret, and where
/// its text starts.
fn element_before(bytes: &[u8], close: usize) -> Option<(Found, usize)> {
    let name_start = close + 2;
    let name_len = (bytes.get(name_start..)?.iter().take(MAX_LABEL + 1))
        .position(|&b| !is_name_byte(b) && b != b':')?;
    let name = bytes.get(name_start..name_start + name_len)?;
    if name.is_empty() || bytes.get(name_start + name_len) != Some(&b'>') {
        return None;
    }
    let label = label_of(name)?;
    // The opening tag, `<password>`, with nothing but the text between.
    let floor = close.saturating_sub(label.max_len() + 1);
    let open_end = floor + bytes.get(floor..close)?.iter().rposition(|&b| b == b'>')?;
    let open_start = open_end.checked_sub(name_len + 1)?;
    let opens =
        bytes.get(open_start) == Some(&b'<') && bytes.get(open_start + 1..open_end) == Some(name);
    if !opens || bytes.get(open_end..close)?.contains(&b'<') {
        return None;
    }
    let mut start = open_end + 1;
    while bytes.get(start).is_some_and(u8::is_ascii_whitespace) && start < close {
        start += 1;
    }
    let found = Found {
        in_element: true,
        ..Found::new(label)
    };
    Some((found, start))
}

/// Whether the quote at `quote` opens a password in SQL: `CREATE USER app WITH PASSWORD '…'`,
/// `ALTER USER … PASSWORD '…'`, MySQL's `IDENTIFIED BY '…'`.
fn is_sql_password(bytes: &[u8], quote: usize) -> bool {
    let before = bytes.get(..quote).unwrap_or_default();
    let said = |phrase: &[u8]| {
        (before.len().checked_sub(phrase.len()))
            .and_then(|from| before.get(from..))
            .is_some_and(|end| end.eq_ignore_ascii_case(phrase))
    };
    said(b" password ") || said(b" identified by ")
}

/// A label found before an operator.
#[derive(Debug, Clone, Copy)]
struct Found {
    label: Label,
    /// In a URL's query (`?api_key=…&…`), where `&` ends a value.
    in_query: bool,
    /// An XML element's text, which its closing tag ends.
    in_element: bool,
}

impl Found {
    fn new(label: Label) -> Found {
        Found {
            label,
            in_query: false,
            in_element: false,
        }
    }
}

/// The label that `operator` (a `:` or `=`) assigns to, if it names a secret: a setting's name,
/// bare, quoted, in bold, or a subscript's (`"password":`, `DB_PASSWORD=`, `--password=`,
/// `**API Key:**`, `headers["X-Api-Key"] =`).
fn label_before(bytes: &[u8], operator: usize) -> Option<Found> {
    let floor = operator.saturating_sub(MAX_LABEL + 16);
    let mut end = operator;
    skip_back(bytes, &mut end, floor, |b| matches!(b, b' ' | b'\t' | b'*'));
    if bytes.get(end.checked_sub(1)?) == Some(&b']') {
        end -= 1;
    }
    let quote = match bytes.get(end.checked_sub(1)?) {
        Some(&quote @ (b'"' | b'\'' | b'`')) => {
            end -= 1;
            Some(quote)
        }
        _ => None,
    };
    skip_back(bytes, &mut end, floor, |b| b == b'*');
    if !may_be_label(bytes.get(end.checked_sub(3)?..end)?) {
        return None;
    }
    let mut start = end;
    skip_back(bytes, &mut start, floor, is_name_byte);
    // A name that reaches the floor goes on beyond it: too long for a setting's.
    if end - start > MAX_LABEL || (start == floor && floor > 0) {
        return None;
    }
    let name = bytes.get(start..end)?;
    // `API Key:`, `Secret Access Key:`: the word before a bare `Key` names it.
    let name = match (name, start.checked_sub(1).and_then(|at| bytes.get(at))) {
        (b"Key" | b"key" | b"KEY", Some(b' ')) => {
            let mut words_start = start - 1;
            skip_back(bytes, &mut words_start, floor, |b| b.is_ascii_alphabetic());
            start = words_start;
            bytes.get(start..end)?
        }
        _ => name,
    };
    let byte_before = |n: usize| start.checked_sub(n).and_then(|at| bytes.get(at)).copied();
    let before = byte_before(1);
    let quoted_alike = match quote {
        Some(quote) => before == Some(quote),
        None => true,
    };
    // `arn:…:secret:name`, `${SECRET_KEY:?required}`: part of a longer name, or a shell
    // default (npm's `//registry/:_authToken=` is a label all the same).
    let inside = match before {
        Some(b':') => byte_before(2) != Some(b'/'),
        Some(b'{') => byte_before(2) == Some(b'$'),
        _ => false,
    };
    if !quoted_alike || inside {
        return None;
    }
    let in_query = matches!(before, Some(b'?' | b'&'));
    // Azure's `sig`, S3's and GCS's `X-Amz-Signature`, CloudFront's `Signature`.
    let signature = name.len() >= 9
        && (name.get(name.len() - 9..)).is_some_and(|end| end.eq_ignore_ascii_case(b"signature"));
    let label = if name == b"sig" || signature {
        in_query.then_some(Label::Signature)?
    } else if name.eq_ignore_ascii_case(b"value") {
        label_of(paired_name_before(bytes, start)?)?
    } else {
        label_of(name)?
    };
    Some(Found {
        in_query,
        ..Found::new(label)
    })
}

/// The label of a flag `--password`, `--api-key`, `--token` at `dashes`, and where its value
/// starts when a space parts them; for curl's `-u user:password` and `--user`, where the
/// password starts.
fn flag_at(bytes: &[u8], dashes: usize) -> Option<(Found, usize)> {
    let starts_word = dashes == 0 || bytes.get(dashes - 1).is_some_and(u8::is_ascii_whitespace);
    if !starts_word {
        return None;
    }
    // HTTPie's and xh's `-a` is another command's flag for something else.
    let httpie =
        |flag: &[u8]| flag != b"-a " || line_runs(bytes, dashes, &["http ", "https ", "xh "]);
    if let Some(rest) = bytes.get(dashes..)
        && let Some(user) = [&b"-u "[..], b"--user ", b"-a ", b"--auth ", b"--auth="]
            .into_iter()
            .find_map(|flag| rest.strip_prefix(flag).filter(|_| httpie(flag)))
    {
        return user_password(dashes + (rest.len() - user.len()), user);
    }
    if let Some(start) = command_password(bytes, dashes) {
        return Some((Found::new(Label::Secret), start));
    }
    if bytes.get(dashes + 1) != Some(&b'-') {
        return None;
    }
    let name_start = dashes + 2;
    let name_len = bytes
        .get(name_start..)?
        .iter()
        .take(MAX_LABEL + 1)
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))?;
    let name = bytes.get(name_start..name_start + name_len)?;
    let value = name_start + name_len + 1;
    let spaced = bytes.get(value - 1) == Some(&b' ');
    if !spaced || name.is_empty() || name_len > MAX_LABEL {
        return None;
    }
    Some((Found::new(label_of(name)?), value))
}

/// Where the password a command's own flag at `dash` gives starts: `mysql -pS3cret`,
/// `redis-cli -a …`, `sshpass -p …`, `docker login -p …`, `ldapsearch -w …`,
/// `keytool -storepass …`, `openssl … -passout pass:…`. The command must be on the flag's line:
/// `-p` and `-a` mean other things to other commands.
fn command_password(bytes: &[u8], dash: usize) -> Option<usize> {
    // Each command with the space after it.
    const FLAGS: [(&str, &[&str]); 7] = [
        ("-p", &["mysql ", "mysqladmin ", "mysqldump "]),
        (
            "-p ",
            &[
                "sshpass ",
                "docker login ",
                "podman login ",
                "helm registry login ",
            ],
        ),
        ("-a ", &["redis-cli "]),
        (
            "-w ",
            &[
                "ldapsearch ",
                "ldapadd ",
                "ldapmodify ",
                "ldapdelete ",
                "ldappasswd ",
            ],
        ),
        ("-storepass ", &["keytool "]),
        ("-keypass ", &["keytool "]),
        ("-passout pass:", &["openssl "]),
    ];
    let rest = bytes.get(dash..)?;
    let (flag, _) = FLAGS.iter().find(|(flag, commands)| {
        rest.starts_with(flag.as_bytes()) && line_runs(bytes, dash, commands)
    })?;
    let start = dash + flag.len();
    // `mysql -p` alone asks for the password.
    let given = bytes.get(start).is_some_and(|b| !b.is_ascii_whitespace());
    given.then_some(start)
}

/// Whether one of `commands` (each with the space after it) runs the flag at `dash`: it is on
/// the flag's line, after the last `;`, `|` or `&` that ends another command.
fn line_runs(bytes: &[u8], dash: usize, commands: &[&str]) -> bool {
    let floor = dash.saturating_sub(MAX_PAIR_DISTANCE);
    let before = bytes.get(floor..dash).unwrap_or_default();
    let start = before
        .iter()
        .rposition(|&b| matches!(b, b'\n' | b';' | b'|' | b'&'))
        .map_or(0, |at| at + 1);
    let line = before.get(start..).unwrap_or_default();
    commands.iter().any(|command| {
        memmem::find_iter(line, command.as_bytes())
            .any(|at| at == 0 || line.get(at - 1).is_some_and(|b| !is_name_byte(*b)))
    })
}

/// Where the password of curl's `user:password` at `start` (`user` is the text from there)
/// starts, quoted or not.
fn user_password(start: usize, user: &[u8]) -> Option<(Found, usize)> {
    let quoted = matches!(user.first(), Some(b'"' | b'\''));
    let name = user.get(usize::from(quoted)..)?;
    let colon = name
        .iter()
        .take(MAX_LABEL)
        .position(|&b| b == b':' || b.is_ascii_whitespace() || b == b'"' || b == b'\'')?;
    if name.get(colon) != Some(&b':') || colon == 0 {
        return None;
    }
    Some((
        Found::new(Label::Secret),
        start + usize::from(quoted) + colon + 1,
    ))
}

/// Moves `at` back over the bytes `skip` takes, no further than `floor`.
fn skip_back(bytes: &[u8], at: &mut usize, floor: usize, skip: impl Fn(u8) -> bool) {
    while *at > floor && bytes.get(*at - 1).is_some_and(|&b| skip(b)) {
        *at -= 1;
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Whether a name that ends with `end` may be a label: every label `label_of` knows ends in
/// one of these (keep the two in step), and most names go no further.
fn may_be_label(end: &[u8]) -> bool {
    const ENDINGS: [&[u8; 3]; 19] = [
        b"ord", b"swd", b"ase", b"pwd", b"ass", b"ret", b"key", b"ken", b"ion", b"uth", b"sig",
        b"lue", b"ial", b"als", b"ata", b"son", b"cfg", b"nid", b"ure",
    ];
    let Some(&[a, b, c]) = end.len().checked_sub(3).and_then(|from| end.get(from..)) else {
        return false;
    };
    ENDINGS.contains(&&[a, b, c].map(|b| b.to_ascii_lowercase()))
}

/// What a setting's name says its value is, from its last word or two (`DB_PASSWORD`,
/// `clientSecret`, `x-api-key`, `SharedAccessKey`, `GITHUB_TOKEN`, `client-key-data`).
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
    let previous_is = |words: &[&str]| previous.is_some_and(|p| words.iter().any(|w| is(p, w)));
    // What a key is of, in `api_key`, `SharedAccessKey`, `FERNET_KEY` (not `CACHE_KEY`,
    // `PARTITION_KEY`, `GPG_KEY` or `VAPID_PUBLIC_KEY`).
    const KEY_OF: [&str; 32] = [
        "anthropic",
        "cohere",
        "mistral",
        "gemini",
        "groq",
        "service",
        "client",
        "admin",
        "session",
        "application",
        "preshared",
        "functions",
        "api",
        "access",
        "account",
        "secret",
        "master",
        "shared",
        "signing",
        "encryption",
        "encrypt",
        "subscription",
        "private",
        "fernet",
        "openai",
        "jwt",
        "hmac",
        "license",
        "consumer",
        "deploy",
        "app",
        "tls",
    ];
    // Whose `pass` it is: `DB_PASS`, `SMTP_PASS`, Ansible's `ansible_become_pass`;
    // `render_pass` is a step, not a password.
    const PASS_OF: [&str; 19] = [
        "db", "smtp", "mysql", "pg", "postgres", "redis", "mail", "email", "admin", "root", "user",
        "ftp", "sftp", "ldap", "proxy", "mongo", "rabbitmq", "become", "ssh",
    ];
    let password = ["password", "passwd", "passphrase"].into_iter().any(ends)
        || is(last, "pwd")
        // redis.conf's.
        || is(last, "requirepass")
        || is(last, "masterauth")
        || (is(last, "pass") && previous_is(&PASS_OF));
    let key = is(last, "key") && previous_is(&KEY_OF);
    let key_run_together = [
        "apikey",
        "accesskey",
        "accountkey",
        "secretkey",
        "privatekey",
        "presharedkey",
    ]
    .into_iter()
    .any(ends);
    let credentials = is(last, "credential") || is(last, "credentials");
    // Rails' `SECRET_KEY_BASE`.
    let key_base = is(last, "base") && previous.is_some_and(|p| is(p, "key"));
    if (is(last, "data") && previous.is_some_and(|p| is(p, "key")))
        || is(last, "dockerconfigjson")
        || is(last, "dockercfg")
    {
        Some(Label::Encoded)
    } else if password || ends("secret") || key || key_run_together || credentials || key_base {
        Some(Label::Secret)
    } else if is(last, "auth") && previous.is_none() {
        Some(Label::UserPassword)
    } else if is(last, "authorization") {
        Some(Label::Authorization)
    } else if (ends("token") && !previous_is(&["page", "next", "continuation", "sync"]))
        || is(last, "sessionid")
    {
        Some(Label::Token)
    } else {
        None
    }
}

/// The last two words of a name, split at `_`, `-`, `.`, spaces and where camel case starts a
/// word (`clientSecret`, `APIKey`).
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

/// The variable whose `value` is at `value`, named just before it: `- name: DB_PASSWORD` on the
/// line before, `{"name": "DB_PASSWORD", "value": …}`, `<add key="ApiKey" value="…"/>`,
/// `{ name = "DB_PASSWORD", value = … }`.
fn paired_name_before(bytes: &[u8], value: usize) -> Option<&[u8]> {
    let floor = value.saturating_sub(MAX_PAIR_DISTANCE);
    let mut at = value;
    // Back over what parts the name from `value`, then the name, then its operator.
    let parting = |b: u8| b.is_ascii_whitespace() || matches!(b, b',' | b'"' | b'\'');
    let quotes = |b: u8| matches!(b, b' ' | b'"' | b'\'');
    skip_back(bytes, &mut at, floor, parting);
    let name_end = at;
    skip_back(bytes, &mut at, floor, is_name_byte);
    let name = bytes.get(at..name_end)?;
    skip_back(bytes, &mut at, floor, quotes);
    let operator = at.checked_sub(1)?;
    if !matches!(bytes.get(operator), Some(b':' | b'=')) || operator < floor {
        return None;
    }
    at = operator;
    skip_back(bytes, &mut at, floor, quotes);
    let label_end = at;
    skip_back(bytes, &mut at, floor, |b| b.is_ascii_alphabetic());
    let label = bytes.get(at..label_end)?;
    (label.eq_ignore_ascii_case(b"name") || label.eq_ignore_ascii_case(b"key")).then_some(name)
}

/// Where the value assigned at `operator` starts: past `==`-like operators' second sign, blanks
/// and a bold label's closing `**`. `None` for a comparison, a path or a URL.
fn value_start(bytes: &[u8], operator: usize) -> Option<usize> {
    let mut start = operator + 1;
    match (bytes.get(operator), bytes.get(start)) {
        // `==`, `::`, `://`.
        (Some(b'='), Some(b'=')) | (Some(b':'), Some(b':' | b'/')) => return None,
        // `:=`, `=>`.
        (Some(b':'), Some(b'=')) | (Some(b'='), Some(b'>')) => start += 1,
        _ => {}
    }
    while matches!(bytes.get(start), Some(b'*')) {
        start += 1;
    }
    while matches!(bytes.get(start), Some(b' ' | b'\t')) {
        start += 1;
    }
    Some(start)
}

/// Where each value found so far ended, so that a value's end is looked for once: a text
/// repeating `password=` a hundred thousand times is read once, not a hundred thousand times.
#[derive(Debug, Default)]
struct ValueEnds {
    /// The end of the last bare value read, and where that read started.
    bare: (usize, usize),
    /// The same for values in each kind of quote: `"`, `'` and `` ` ``.
    quoted: [(usize, usize); 3],
}

impl ValueEnds {
    /// Where the value from `start` ends: at the first byte `ends` takes.
    fn find(
        bytes: &[u8],
        known: &mut (usize, usize),
        start: usize,
        ends: impl Fn(u8) -> bool,
    ) -> usize {
        let (from, end) = *known;
        if from < end && (from..=end).contains(&start) {
            return end;
        }
        let len = bytes
            .get(start..)
            .unwrap_or_default()
            .iter()
            .position(|&b| ends(b))
            .unwrap_or(bytes.len().saturating_sub(start));
        *known = (start, start + len);
        start + len
    }
}

/// A value read after a label.
#[derive(Debug, Clone, Copy)]
struct Value {
    start: usize,
    end: usize,
    /// Whether it is a secret for its label.
    secret: bool,
}

/// The value at `start` after `found`'s label, and whether it is a secret.
fn value_at(bytes: &[u8], start: usize, found: Found, ends: &mut ValueEnds) -> Option<Value> {
    let label = found.label;
    if label == Label::Authorization {
        return authorization_credential(bytes, start);
    }
    let (start, end, quoted) = match bytes.get(start) {
        Some(&quote @ (b'"' | b'\'' | b'`')) => {
            let from = start + 1;
            let known = match quote {
                b'"' => &mut ends.quoted[0],
                b'\'' => &mut ends.quoted[1],
                _ => &mut ends.quoted[2],
            };
            let end = ValueEnds::find(bytes, known, from, |b| {
                b == quote || b.is_ascii_whitespace()
            });
            (bytes.get(end) == Some(&quote)).then_some((from, end, true))?
        }
        _ => {
            let end = ValueEnds::find(bytes, &mut ends.bare, start, ends_bare_value);
            // A call, an index or a generic type follows a name in code, not a secret; an
            // element's text ends at its closing tag.
            let code = matches!(bytes.get(end), Some(b'(' | b'[' | b'{' | b'<'));
            let closed = found.in_element && bytes.get(end..end + 2) == Some(b"</");
            if code && !closed {
                let secret = false;
                return Some(Value { start, end, secret });
            }
            (start, end, false)
        }
    };
    let mut end = end;
    // Every read of the value is bounded by the longest one taken, so that a value the text's
    // labels share is not read again for each.
    let bounded = label.max_len() + 2;
    if found.in_query
        && let Some(amp) = (bytes.get(start..end)?.iter().take(bounded)).position(|&b| b == b'&')
    {
        end = start + amp;
    }
    let rejected = Value {
        start,
        end,
        secret: false,
    };
    // With room for a sentence's full stop.
    if end - start > label.max_len() + 1 {
        return Some(rejected);
    }
    let value = bytes.get(start..end)?;
    if !quoted && is_placeholder(value) {
        return Some(rejected);
    }
    // A sentence's full stop or colon is not the value's.
    if !quoted && matches!(value.last(), Some(b'.' | b':')) {
        end -= 1;
    }
    let value = bytes.get(start..end)?;
    if value.len() > label.max_len() {
        return Some(rejected);
    }
    let secret = match label {
        Label::Secret => may_be_secret(value, quoted),
        Label::Encoded => value.len() >= 32 && is_credential(value, b"+/=_-"),
        Label::Token => {
            // `=` pads base64 at the end; inside, it assigns (`expires_in=3600s`).
            let unpadded = value.iter().rposition(|&b| b != b'=');
            let unpadded = unpadded
                .and_then(|last| value.get(..=last))
                .unwrap_or_default();
            may_be_secret(value, quoted)
                && !unpadded.contains(&b'=')
                && !value.starts_with(b"0x")
                && is_credential(value, b"._~+/=%-")
        }
        Label::UserPassword => basic_credential(value),
        Label::Signature => value.len() >= 20 && is_credential(value, b"%+/=_-"),
        Label::Authorization => false,
    };
    Some(Value { start, end, secret })
}

/// The credential in an `Authorization` value at `start`, quoted or not: after its scheme
/// (`Token 9944b0…`, `Bot MTk4…`, `SSWS 00Qh…`), or alone. `Bearer` and `Basic` have patterns
/// of their own.
fn authorization_credential(bytes: &[u8], start: usize) -> Option<Value> {
    const MAX_CREDENTIAL: usize = 512;
    let quoted = matches!(bytes.get(start), Some(b'"' | b'\''));
    let from = start + usize::from(quoted);
    let run = |from: usize, part_of: fn(&u8) -> bool| {
        let rest = bytes.get(from..).unwrap_or_default();
        let len = rest
            .iter()
            .take(MAX_CREDENTIAL + 1)
            .position(|b| !part_of(b));
        from + len.unwrap_or(rest.len().min(MAX_CREDENTIAL + 1))
    };
    let is_credential_byte: fn(&u8) -> bool =
        |b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(b);
    let scheme_end = run(from, u8::is_ascii_alphabetic);
    let scheme = bytes.get(from..scheme_end)?;
    let (from, to) = if bytes.get(scheme_end) == Some(&b' ') && scheme.len() <= 16 {
        if scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"basic") {
            return None;
        }
        (scheme_end + 1, run(scheme_end + 1, is_credential_byte))
    } else {
        (from, run(from, is_credential_byte))
    };
    let credential = bytes.get(from..to)?;
    let secret = credential.len() <= MAX_CREDENTIAL
        && may_be_secret(credential, true)
        && is_credential(credential, b"._~+/=-");
    Some(Value {
        start: from,
        end: to,
        secret,
    })
}

/// Whether `byte` ends a value written without quotes.
fn ends_bare_value(byte: u8) -> bool {
    byte.is_ascii_whitespace()
        || byte.is_ascii_control()
        || matches!(
            byte,
            b',' | b';'
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

/// `sk_test_...`, `YOUR_API_KEY`, `changeme`: a value to fill in.
fn is_placeholder(value: &[u8]) -> bool {
    const PARTS: [&str; 12] = [
        "...",
        "…",
        "xxxx",
        "****",
        "redacted",
        "example",
        "changeme",
        "change_me",
        "replace",
        "your",
        "placeholder",
        "abc123",
    ];
    PARTS
        .iter()
        .any(|part| contains_ignoring_case(value, part.as_bytes()))
        || value.iter().all(|b| Some(b) == value.first())
}

/// Whether `value` could be a password, secret or key: 6 bytes or more and not a word, a
/// variable's or type's name, a reference, a path, a placeholder or an object's name.
fn may_be_secret(value: &[u8], quoted: bool) -> bool {
    if value.len() < 6 || is_placeholder(value) {
        return false;
    }
    // `${DB_PASSWORD}`, `{{ .Values.password }}`, `%(password)s`; bare, also `$DB_PASSWORD`,
    // a YAML tag (`!vault`), alias (`*db_pass`) or anchor, a Ruby symbol, a path.
    let template = [&b"{{"[..], b"${", b"}}", b"%("]
        .iter()
        .any(|part| contains_ignoring_case(value, part));
    let bare_reference = !quoted
        && matches!(
            value.first(),
            Some(b'$' | b'%' | b'{' | b'<' | b'/' | b'~' | b'@' | b'*' | b'&' | b'!' | b':')
                | Some(b'#' | b'[' | b'.')
        );
    // `"$DB_PASS"`, `"<api-key>"`, `"{API_KEY}"`, `"[FILTERED]"`, `"%SECRET%"`, SOPS's
    // `"ENC[AES256_GCM,…]"`, a path: quoted, a reference or a placeholder still.
    let wrapped = [
        (b'<', b'>'),
        (b'{', b'}'),
        (b'[', b']'),
        (b'(', b')'),
        (b'%', b'%'),
    ]
    .iter()
    .any(|(open, close)| value.first() == Some(open) && value.last() == Some(close));
    let quoted_reference = quoted
        && (wrapped
            || value.starts_with(b"$")
            || value.starts_with(b"ENC[")
            || value.starts_with(b"~/")
            || value.starts_with(b"./")
            || value.starts_with(b"/")
            || value.get(1..3) == Some(b":\\"));
    // `process.env.SECRET!`, `config?.apiKey`, `String?`: code, whatever the `!` and `?` say.
    let code = value.strip_suffix(b"!").unwrap_or(value);
    let code = code.strip_suffix(b"?").unwrap_or(code);
    !(template
        || bare_reference
        || quoted_reference
        || contains_ignoring_case(value, b"::")
        || is_quantity(value)
        || is_version(value)
        || is_algorithm(value)
        || is_short_hex(value)
        || is_name(code)
        || is_code_path(code)
        || is_path(value)
        || is_object_name(value))
}

/// A word, a sentence's label or a variable's, constant's or type's name: `Required`,
/// `Contraseña`, `Show/Hide`, `api_key`, `new_password2`, `YOUR_KEY`, `AWS4-HMAC-SHA256`,
/// `Uint8Array`, `Ed25519PrivateKey`.
fn is_name(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let has_digit = value.iter().any(u8::is_ascii_digit);
    // Words and the marks between them, without a digit.
    let words = !has_digit
        && text
            .chars()
            .all(|c| c.is_alphabetic() || "_-/:'.".contains(c));
    // snake_case, with digits or not.
    let snake = (value.first())
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && value.contains(&b'_')
        && value
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    // A constant: capitals and underscores or dashes, or capitals alone.
    let constant = value
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
        && (!has_digit || value.iter().any(|b| matches!(b, b'_' | b'-')));
    words || snake || constant || is_type_name(value)
}

/// `Uint8Array`, `SecretString`, `Ed25519PrivateKey`: capitalised words, two of them of three
/// letters or more, and at most two numbers, each word starting with its capital (a random key
/// has a lowercase letter after a digit, or more numbers).
fn is_type_name(value: &[u8]) -> bool {
    if !value.first().is_some_and(u8::is_ascii_uppercase)
        || !value.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let mut long_words = 0;
    let mut numbers = 0;
    let mut at = 0;
    while let Some(&b) = value.get(at) {
        let run_end = |from: usize, part_of: fn(&u8) -> bool| {
            from + value
                .get(from..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| part_of(b))
                .count()
        };
        if b.is_ascii_digit() {
            numbers += 1;
            at = run_end(at, u8::is_ascii_digit);
            // A word starts with a capital: a lowercase letter after a number is no type's.
            if value.get(at).is_some_and(u8::is_ascii_lowercase) {
                return false;
            }
        } else {
            let capitals = run_end(at, u8::is_ascii_uppercase);
            let end = run_end(capitals, u8::is_ascii_lowercase);
            // A lowercase letter starting a word: no type's name (and no loop without end).
            if capitals == at && end > at {
                return false;
            }
            if end - capitals >= 2 {
                long_words += 1;
            }
            at = end;
        }
    }
    long_words >= 2 && numbers <= 2
}

/// `1024usize`, `30s`, `256-bit`, `12-char`, `12–64`, `1.2.840.10045`: a number with its unit, a
/// range or an OID. A number alone (`12345678`) may be a PIN.
fn is_quantity(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(digits_end);
    let unit = |rest: &str| rest.chars().all(|c| c.is_ascii_lowercase()) && rest.len() <= 6;
    let oid = rest.is_empty() && number.contains('.');
    let suffixed = !rest.is_empty() && unit(rest);
    let dashed = (rest.strip_prefix('-').or(rest.strip_prefix('–')))
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    number.starts_with(|c: char| c.is_ascii_digit()) && (oid || suffixed || dashed)
}

/// `Ed25519`, `AES256`, `aes-256-gcm`, `argon2id`, `RS256/ES256`, `secp256k1`: an algorithm's
/// name, as a text about keys names one.
/// A version or a time of day: `v1.2.3-rc1`, `python3.11`, `OAuth2.0`, `12:30:45`.
fn is_version(value: &[u8]) -> bool {
    let name_end = value
        .iter()
        .position(u8::is_ascii_digit)
        .unwrap_or(value.len());
    let (name, rest) = value.split_at(name_end);
    let (numbers, suffix) = match rest.iter().position(|&b| b == b'-') {
        Some(dash) => rest.split_at(dash),
        None => (rest, &b""[..]),
    };
    let dotted = numbers.contains(&b'.')
        && numbers.iter().all(|&b| b.is_ascii_digit() || b == b'.')
        && !numbers.ends_with(b".");
    let clock = name.is_empty()
        && numbers.len() <= 8
        && numbers.contains(&b':')
        && numbers.iter().all(|&b| b.is_ascii_digit() || b == b':');
    name.iter().all(u8::is_ascii_alphabetic)
        && suffix
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && (dotted || clock)
}

fn is_algorithm(value: &[u8]) -> bool {
    const ALGORITHMS: [&str; 27] = [
        "aes",
        "rsa",
        "ed25519",
        "ed448",
        "x25519",
        "x448",
        "secp",
        "argon2",
        "bcrypt",
        "scrypt",
        "pbkdf2",
        "sha",
        "chacha20",
        "hs256",
        "hs384",
        "hs512",
        "rs256",
        "es256",
        "ps256",
        "eddsa",
        "ecdsa",
        "hmac",
        "md5",
        "curve25519",
        "base64",
        "oauth",
        "pkcs",
    ];
    value
        .split(|b| matches!(b, b'-' | b'/' | b'_'))
        .all(|part| {
            let numeric = !part.is_empty() && part.iter().all(u8::is_ascii_digit);
            let mode = [&b"gcm"[..], b"cbc", b"ctr", b"bit"]
                .iter()
                .any(|mode| part.eq_ignore_ascii_case(mode));
            let named = part.len() <= 12
                && ALGORITHMS.iter().any(|name| {
                    part.get(..name.len())
                        .is_some_and(|start| start.eq_ignore_ascii_case(name.as_bytes()))
                });
            numeric || mode || named
        })
}

/// `0x0029`: a constant written in hex, not a 32-byte key.
fn is_short_hex(value: &[u8]) -> bool {
    value.strip_prefix(b"0x").is_some_and(|hex| {
        hex.len() <= 16 && !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit)
    })
}

/// `os.environ`, `settings.SECRET_KEY`, `config?.anthropic?.apiKey`: names joined by dots, as
/// code reads a setting (and as a host name is written).
fn is_code_path(value: &[u8]) -> bool {
    value.contains(&b'.')
        && value.split(|&b| b == b'.').all(|part| {
            let part = part.strip_suffix(b"?").unwrap_or(part);
            let part = part.strip_suffix(b"!").unwrap_or(part);
            // A JWT-like token's parts are longer than names are.
            part.len() <= 32
                && part
                    .first()
                    .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
                && part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        })
}

/// `secret/data/myapp`, `keys/jwt-signing.pem`: a lowercase path, where base64 mixes cases.
fn is_path(value: &[u8]) -> bool {
    value.contains(&b'/')
        && value.iter().all(|&b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'/' | b'.' | b'-' | b'_' | b':')
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

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}
