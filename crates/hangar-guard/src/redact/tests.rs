use super::*;

// Secrets are assembled at run time so the source holds no string a secret scanner would flag.
fn openai_key() -> String {
    format!("sk-{}", "T3BlbkFJ9x".repeat(5))
}

fn redact(text: &str) -> Redaction<'_> {
    Redactor::default().redact(text)
}

fn masked(text: &str) -> String {
    redact(text).text.into_owned()
}

#[test]
fn clean_text_is_borrowed_and_reports_nothing() {
    let text = "Summarise the release notes for version 1.4.2 (2024-05-01), 3 pages max.";
    let result = redact(text);
    assert!(matches!(result.text, Cow::Borrowed(_)));
    assert!(result.is_clean());
    assert_eq!(result.text, text);
}

#[test]
fn luhn_valid_cards_are_masked_in_common_layouts() {
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "2223003122003222",
        "3782 822463 10005",
        "6011111111111117",
        "4000056655665556",
    ] {
        let text = format!("my card is {card}, thanks");
        assert_eq!(
            masked(&text),
            "my card is [REDACTED:card_number], thanks",
            "{card}"
        );
    }
}

#[test]
fn luhn_invalid_digit_runs_are_not_masked() {
    for number in [
        "4111111111111112",
        "4111 1111 1111 1112",
        "5555555555554445",
        "1234567812345678",
    ] {
        let text = format!("reference {number}");
        assert!(redact(&text).is_clean(), "{number}");
    }
}

#[test]
fn cards_are_not_found_inside_longer_numbers_or_words() {
    for text in [
        "id 94111111111111111",
        "id 41111111111111110000",
        "order x4111111111111111",
        "order 4111111111111111x",
        "pi is 3.4111111111111111",
        "big 4111111111111111.5",
        "var_4111111111111111",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
}

#[test]
fn card_needs_one_kind_of_separator_and_card_like_groups() {
    // Mixed separators and 2-digit groups are tables of numbers, not cards.
    assert!(redact("4111 1111-1111 1111").is_clean());
    assert!(redact("41 11 11 11 11 11 11 11").is_clean());
    assert!(redact("4111  1111  1111  1111").is_clean());
}

#[test]
fn card_is_found_before_an_expiry_or_a_cvv() {
    assert_eq!(
        masked("4111 1111 1111 1111 12/27 cvv 123"),
        "[REDACTED:card_number] 12/27 cvv 123"
    );
    assert_eq!(
        masked("4111 1111 1111 1111 123"),
        "[REDACTED:card_number] 123"
    );
}

#[test]
fn millisecond_timestamps_and_unknown_issuers_are_not_cards() {
    // Both pass Luhn; prefixes 1 and 9 belong to no major card network.
    for number in ["1700000000004", "9111111111111110"] {
        let digits: Vec<u8> = number.bytes().map(|b| b - b'0').collect();
        assert!(luhn_valid(&digits), "{number}");
        assert!(redact(&format!("id={number}")).is_clean(), "{number}");
    }
}

#[test]
fn issuer_prefixes() {
    assert!(issuer_known(&[2, 2, 2, 1]));
    assert!(issuer_known(&[2, 7, 2, 0]));
    assert!(!issuer_known(&[2, 7, 2, 1]));
    assert!(!issuer_known(&[2, 2, 2, 0]));
    assert!(issuer_known(&[3, 7]));
    assert!(!issuer_known(&[3, 2]));
    assert!(!issuer_known(&[8, 1]));
    assert!(!issuer_known(&[2]));
}

#[test]
fn provider_keys_are_masked() {
    let keys = [
        openai_key(),
        format!("sk-proj-{}", "Ab3_dE-f9".repeat(5)),
        format!("sk-ant-api03-{}", "xY7_zW-q".repeat(6)),
        format!("{}{}", "AKIA", "IOSFODNN7EXAMPL1"),
        format!("{}{}", "ASIA", "Z2X3C4V5B6N7M8Q9"),
        format!("ghp_{}", "a1B2c3D4e5".repeat(4)),
        format!("gho_{}", "a1B2c3D4e5".repeat(4)),
        format!("github_pat_{}", "11ABCDEFG0_abcdefghijk".repeat(2)),
        format!("glpat-{}", "xY7zW-q9r8".repeat(2)),
        format!("xoxb-{}", "1234567890-abcdefghij"),
        format!("xoxp-{}", "1234567890-abcdefghij"),
        format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"),
        format!("rk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"),
        format!("AIza{}", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
        format!("hf_{}", "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"),
        format!("hgk_{}_{}", "ab12CD34", "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tXY"),
    ];
    for key in keys {
        let text = format!("use key {key} for the call");
        let result = redact(&text);
        assert_eq!(
            result.text, "use key [REDACTED:provider_key] for the call",
            "{key}"
        );
        assert_eq!(result.found, vec![(SecretKind::ProviderKey, 1)], "{key}");
    }
}

#[test]
fn prose_that_resembles_key_prefixes_is_kept() {
    for text in [
        "I use sk-learn-style pipelines and scikit-learn estimators everywhere",
        "the task-abcdefghijklmnopqrstuvwxyz runner",
        "keys start with hgk_ and a prefix like hgk_ab12CD34",
        "ghp_ tokens are GitHub personal access tokens",
        "AKIA prefixes mark long-term AWS keys",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
}

#[test]
fn aws_secret_keeps_its_label_and_masks_the_value() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    for line in [
        format!("aws_secret_access_key = {secret}"),
        format!("AWS_SECRET_ACCESS_KEY={secret}"),
        format!("aws_secret_access_key: \"{secret}\""),
    ] {
        let result = redact(&line);
        assert!(result.text.contains("[REDACTED:provider_key]"), "{line}");
        assert!(!result.text.contains("wJalr"), "{line}");
        assert!(
            result
                .text
                .to_lowercase()
                .starts_with("aws_secret_access_key"),
            "{line}"
        );
    }
}

#[test]
fn bearer_credentials_and_jwts_are_masked() {
    let jwt = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.{}",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    );
    assert_eq!(
        masked(&format!("token {jwt} expired")),
        "token [REDACTED:bearer_token] expired"
    );
    assert_eq!(
        masked("curl -H 'Authorization: Bearer abc123def456ghi789jkl' https://api"),
        "curl -H 'Authorization: Bearer [REDACTED:bearer_token]' https://api"
    );
}

#[test]
fn bearer_in_prose_is_kept() {
    for text in [
        "The bearer of this letter is my colleague.",
        "Bearer authentication-mechanisms-are-common in HTTP APIs",
        "bearer tokens are sent in the Authorization header",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
}

#[test]
fn bearer_with_a_provider_key_counts_once() {
    let text = format!("Authorization: Bearer {}", openai_key());
    let result = redact(&text);
    assert_eq!(result.found.iter().map(|(_, n)| n).sum::<usize>(), 1);
    assert!(result.text.ends_with("]"));
    assert!(result.text.starts_with("Authorization: Bearer [REDACTED:"));
}

#[test]
fn private_key_blocks_are_masked_whole() {
    let text = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\nafter";
    assert_eq!(masked(text), "before\n[REDACTED:private_key]\nafter");
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----";
    assert_eq!(masked(openssh), "[REDACTED:private_key]");
    let pgp =
        "x -----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK----- y";
    assert_eq!(masked(pgp), "x [REDACTED:private_key] y");
}

#[test]
fn private_key_without_end_is_masked_to_the_end() {
    let text = "here:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n(truncated) bob@example.com";
    assert_eq!(masked(text), "here:\n[REDACTED:private_key]");
    // An END line of another kind does not close the block.
    let text = "-----BEGIN EC PRIVATE KEY-----\nabc\n-----END CERTIFICATE-----\nmore";
    assert_eq!(masked(text), "[REDACTED:private_key]");
}

#[test]
fn public_keys_and_certificates_are_kept() {
    let text = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";
    assert!(redact(text).is_clean());
}

#[test]
fn email_addresses_are_masked() {
    assert_eq!(
        masked("write to jane.doe+ml@mail.example.co.uk or ops@hangar.dev."),
        "write to [REDACTED:email] or [REDACTED:email]."
    );
}

#[test]
fn email_look_alikes_are_kept() {
    for text in [
        "@dataclass decorators in Python",
        "npm i @types/node",
        "ssh root@localhost",
        "ping me @alice",
        "a@b.c is too short a domain",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
}

#[test]
fn phone_numbers_are_masked() {
    for phone in [
        "+14155550123",
        "(415) 555-0123",
        "415-555-0123",
        "415.555.0123",
        "1-415-555-0123",
        "+1 (415) 555-0123",
        "+1 415 555 0123",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "020 7946 0958",
        "(030) 1234 5678",
    ] {
        let text = format!("call {phone} today");
        let result = redact(&text);
        assert_eq!(result.text, "call [REDACTED:phone] today", "{phone}");
        assert_eq!(result.found, vec![(SecretKind::Phone, 1)], "{phone}");
    }
}

#[test]
fn ordinary_numbers_are_not_phones() {
    for text in [
        "between 2019 and 2024 the count rose from 1200 to 3400",
        "upgrade from 10.0.19045.3803 to v1.2.3",
        "call 911 or 555-0123",
        "at 2024-01-15 12:30:45.123456Z the job failed",
        "epoch 1700000000 and 1700000000123 ms",
        "host 192.168.100.200 port 8080",
        "ISBN 978-0-306-40615-7",
        "order 123-456-7890 shipped",
        "sum 2+14155550123",
        "score +10 200 300",
        "total $1,234,567.89 on 15/01/2024",
        "build 4155550123456789 steps",
        "serial 415-555-0123-4567",
    ] {
        let result = redact(text);
        assert!(result.is_clean(), "{text} -> {}", result.text);
    }
}

#[test]
fn phone_followed_by_more_digits_keeps_the_longest_valid_prefix() {
    assert_eq!(masked("+44 20 7946 0958 2024"), "[REDACTED:phone] 2024");
}

#[test]
fn finds_are_counted_per_kind_in_a_stable_order() {
    let text = format!(
        "mail a@example.com, b@example.org, call +14155550123, card 4111111111111111, key {}",
        openai_key()
    );
    let result = redact(&text);
    assert_eq!(
        result.found,
        vec![
            (SecretKind::CardNumber, 1),
            (SecretKind::ProviderKey, 1),
            (SecretKind::Email, 2),
            (SecretKind::Phone, 1),
        ]
    );
    assert_eq!(result.count(SecretKind::Email), 2);
    assert_eq!(result.count(SecretKind::PrivateKey), 0);
}

#[test]
fn only_the_chosen_kinds_are_masked() {
    let redactor = Redactor::new(&[SecretKind::Email]);
    let result = redactor.redact("a@example.com 4111111111111111 +14155550123");
    assert_eq!(
        result.text,
        "[REDACTED:email] 4111111111111111 +14155550123"
    );
    let cards_only = Redactor::new(&[SecretKind::CardNumber]);
    assert_eq!(
        cards_only.redact("a@example.com 4111111111111111").text,
        "a@example.com [REDACTED:card_number]"
    );
    let nothing = Redactor::new(&[]);
    assert!(nothing.redact("a@example.com 4111111111111111").is_clean());
}

#[test]
fn every_kind_alone_builds_its_patterns() {
    for kind in SecretKind::ALL {
        assert!(Redactor::new(&[kind]).is_ready(), "{kind}");
    }
    assert!(Redactor::default().is_ready());
}

#[test]
fn overlapping_finds_are_masked_as_one_with_the_most_sensitive_kind() {
    // The card scanner and the e-mail pattern both claim the digits.
    let result = redact("4111111111111111@example.com");
    assert_eq!(result.text, "[REDACTED:card_number]");
    assert_eq!(result.found, vec![(SecretKind::CardNumber, 1)]);
}

#[test]
fn non_ascii_text_around_finds_is_kept_intact() {
    assert_eq!(
        masked("carte № 4111 1111 1111 1111 — merci, écrivez à zoe@exemple.fr 🙂"),
        "carte № [REDACTED:card_number] — merci, écrivez à [REDACTED:email] 🙂"
    );
}

#[test]
fn redacting_twice_finds_nothing_new() {
    let text = format!(
        "card 4111 1111 1111 1111 5555555555554444, key {} mail a@b.io phone (415) 555-0123 \
         -----BEGIN PRIVATE KEY-----\nabc",
        openai_key()
    );
    let once = redact(&text);
    assert!(!once.is_clean());
    let twice = redact(&once.text);
    assert!(twice.is_clean(), "{}", twice.text);
}

#[test]
fn kinds_serialise_in_snake_case_and_parse_back() {
    for kind in SecretKind::ALL {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
        assert_eq!(serde_json::from_str::<SecretKind>(&json).unwrap(), kind);
        assert_eq!(SecretKind::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.replacement(), format!("[REDACTED:{kind}]"));
    }
    assert_eq!(SecretKind::parse("ssn"), None);
}

#[test]
fn redactor_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Redactor>();
}

#[test]
fn next_digit_skips_whole_blocks_and_finds_digits_at_any_offset() {
    let text = "x".repeat(100);
    assert_eq!(next_digit(text.as_bytes(), 0), None);
    for position in [0, 1, 15, 16, 17, 31, 32, 63, 99] {
        let mut bytes = text.clone().into_bytes();
        bytes[position] = b'7';
        assert_eq!(next_digit(&bytes, 0), Some(position));
        assert_eq!(next_digit(&bytes, position), Some(position));
        assert_eq!(next_digit(&bytes, position + 1), None);
    }
    assert_eq!(next_digit(b"12", 5), None);
}

#[test]
fn phone_windows_cover_numbers_with_ten_digits_or_more() {
    let text = "v1.2.3 on 2024-01-15, call +1 (415) 555-0123 or 555-0123; id 12345678901";
    let windows: Vec<&str> = phone_windows(text.as_bytes())
        .map(|range| &text[range])
        .collect();
    assert_eq!(windows, vec!["+1 (415) 555-0123", "12345678901"]);
}
