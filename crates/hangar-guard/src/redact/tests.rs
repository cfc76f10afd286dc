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

/// Asserts that `card`, written inside a sentence, is masked whole, separators included.
fn assert_card_masked(card: &str) {
    let text = format!("my card is {card}, thanks");
    let result = redact(&text);
    assert_eq!(
        result.text, "my card is [REDACTED:card_number], thanks",
        "{card:?}"
    );
    assert_eq!(result.found, vec![(SecretKind::CardNumber, 1)], "{card:?}");
}

#[test]
fn cards_with_dots_or_slashes_between_groups_are_masked() {
    assert_card_masked("4111.1111.1111.1111");
    assert_card_masked("4111/1111/1111/1111");
    assert_card_masked("3782.822463.10005");
}

#[test]
fn cards_with_two_or_three_separators_between_groups_are_masked() {
    assert_card_masked("4111  1111  1111  1111");
    assert_card_masked("4111   1111   1111   1111");
    assert_card_masked("4111 - 1111 - 1111 - 1111");
}

#[test]
fn cards_with_tabs_between_groups_are_masked() {
    assert_card_masked("4111\t1111\t1111\t1111");
}

#[test]
fn cards_with_non_breaking_spaces_are_masked() {
    assert_card_masked("4111\u{a0}1111\u{a0}1111\u{a0}1111");
    assert_card_masked("4111\u{202f}1111\u{202f}1111\u{202f}1111");
}

#[test]
fn cards_with_thin_or_figure_spaces_or_en_dashes_are_masked() {
    assert_card_masked("4111\u{2009}1111\u{2009}1111\u{2009}1111");
    assert_card_masked("4111\u{2007}1111\u{2007}1111\u{2007}1111");
    assert_card_masked("4111\u{2013}1111\u{2013}1111\u{2013}1111");
}

#[test]
fn cards_with_invisible_or_typographic_separators_are_masked() {
    // Zero-width space, soft hyphen, minus sign, em space, ideographic space.
    assert_card_masked("4111\u{200b}1111\u{200b}1111\u{200b}1111");
    assert_card_masked("4111\u{ad}1111\u{ad}1111\u{ad}1111");
    assert_card_masked("4111\u{2212}1111\u{2212}1111\u{2212}1111");
    assert_card_masked("4111\u{2003}1111\u{2003}1111\u{2003}1111");
    assert_card_masked("4111\u{3000}1111\u{3000}1111\u{3000}1111");
}

#[test]
fn invisible_characters_anywhere_in_a_card_do_not_hide_it() {
    // Zero-width space, non-joiner and joiner, word joiner, byte order mark, soft hyphen and
    // Mongolian vowel separator: inside groups, between every digit, around separators.
    assert_card_masked("4\u{200b}111 1111 1111 1111");
    assert_card_masked("4111\u{200c}1111\u{200d}1111\u{2060}1111");
    assert_card_masked("4111 11\u{feff}11 1111 11\u{ad}11");
    assert_card_masked("4111\u{180e}1111-1111-1111");
    assert_card_masked("4111 \u{200b}1111\u{200b} 1111 1111");
    let every_digit: Vec<String> = "4111111111111111".chars().map(String::from).collect();
    assert_card_masked(&every_digit.join("\u{200b}"));
    assert_card_masked(&every_digit.join("\u{200b}\u{200d}\u{feff}"));
    assert_eq!(
        masked("\u{feff}4111111111111111\u{200b}."),
        "\u{feff}[REDACTED:card_number]\u{200b}."
    );
}

#[test]
fn invisible_characters_do_not_make_cards_of_other_numbers() {
    // They join digits into one number; they are not separators between groups.
    assert!(redact("41\u{200b}11 11 11 11 11 11 11").is_clean());
    assert!(redact("4111\u{200b}, 1111, 1111, 1111").is_clean());
    assert!(redact("2024\u{200b}11\u{200b}28 and 10\u{200b}30\u{200b}07").is_clean());
}

#[test]
fn cards_with_mixed_separators_are_masked() {
    assert_card_masked("4111 1111-1111 1111");
    assert_card_masked("4111-1111.1111/1111");
    assert_card_masked("5555\u{a0}5555 -5555\u{2009}4444");
}

#[test]
fn bidi_marks_combining_marks_and_variation_selectors_do_not_hide_a_card() {
    for hidden in [
        "\u{200e}", // left-to-right mark (pages in right-to-left scripts add it when copied)
        "\u{200f}", // right-to-left mark
        "\u{202a}", // left-to-right embedding
        "\u{202e}", // right-to-left override
        "\u{2066}", // left-to-right isolate
        "\u{2069}", // pop directional isolate
        "\u{2063}", // invisible separator
        "\u{34f}",  // combining grapheme joiner
        "\u{301}",  // combining acute accent
        "\u{fe0f}", // variation selector 16
        "\u{20e3}", // combining enclosing keycap
    ] {
        assert_card_masked(&format!("4111{hidden}1111{hidden}1111{hidden}1111"));
        let every_digit: Vec<String> = "4111111111111111".chars().map(String::from).collect();
        assert_card_masked(&every_digit.join(hidden));
    }
    assert_card_masked("4\u{fe0f}\u{20e3}1\u{fe0f}\u{20e3}11 1111 1111 1111");
}

#[test]
fn cards_with_middle_dots_or_bullets_between_groups_are_masked() {
    assert_card_masked("4111·1111·1111·1111");
    assert_card_masked("4111•1111•1111•1111");
    assert_card_masked("4111 · 1111 · 1111 · 1111");
}

#[test]
fn cards_in_arabic_indic_devanagari_or_mathematical_digits_are_masked() {
    assert_card_masked("٤١١١ ١١١١ ١١١١ ١١١١");
    assert_card_masked("۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱");
    assert_card_masked("४१११ ११११ ११११ ११११");
    assert_card_masked("𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏");
    assert_card_masked("𝟜𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙𝟙");
    // Luhn still decides.
    assert!(redact("٤١١١ ١١١١ ١١١١ ١١١٢").is_clean());
    // Arabic text around them is not a word a card would be glued to.
    assert_eq!(
        masked("بطاقة ٤١١١١١١١١١١١١١١١ شكرا"),
        "بطاقة [REDACTED:card_number] شكرا"
    );
}

#[test]
fn cards_in_full_width_digits_are_masked() {
    assert_card_masked("４１１１ １１１１ １１１１ １１１１");
    assert_card_masked("４１１１１１１１１１１１１１１１");
    assert_card_masked("４１１１\u{3000}１１１１－１１１１／１１１１");
    assert_card_masked("4111 １１１１ 1111 １１１１");
}

#[test]
fn full_width_cards_are_masked_inside_text_without_spaces() {
    assert_eq!(
        masked("卡号４１１１１１１１１１１１１１１１，谢谢"),
        "卡号[REDACTED:card_number]，谢谢"
    );
}

#[test]
fn card_at_the_end_of_a_sentence_keeps_its_full_stop() {
    assert_eq!(
        masked("card 4111.1111.1111.1111."),
        "card [REDACTED:card_number]."
    );
}

#[test]
fn card_left_standing_by_another_mask_is_masked_too() {
    // The e-mail address cannot start with a full-width digit, so it starts right after the
    // card; once it is masked, the card is glued to nothing.
    assert_eq!(
        masked("4111 1111 1111 111１a@example.com"),
        "[REDACTED:card_number][REDACTED:email]"
    );
    // Likewise a key whose last character made the card look like a decimal fraction.
    let key = format!("hf_{}1", "aBcDeFgHiJ".repeat(3));
    assert_eq!(
        masked(&format!("{key}.4111111111111111 ok")),
        "[REDACTED:provider_key].[REDACTED:card_number] ok"
    );
}

#[test]
fn phone_glued_to_a_full_width_number_is_not_a_phone() {
    for text in [
        "ref １415-555-0123",
        "ref 415-555-0123４",
        "ref ａ415-555-0123",
    ] {
        let result = redact(text);
        assert!(result.is_clean(), "{text} -> {}", result.text);
    }
}

#[test]
fn luhn_invalid_numbers_with_new_separators_are_not_masked() {
    for number in [
        "4111.1111.1111.1112",
        "4111 1111-1111 1112",
        "４１１１ １１１１ １１１１ １１１２",
    ] {
        assert!(redact(number).is_clean(), "{number}");
    }
}

#[test]
fn card_needs_card_like_groups_and_short_separator_runs() {
    for text in [
        // 2-digit groups are tables of numbers, not cards.
        "41 11 11 11 11 11 11 11",
        // Four or more separators, a comma or a line break end a group: columns and lists.
        "4111    1111    1111    1111",
        "4111 ....1111 ....1111 ....1111",
        "4111, 1111, 1111, 1111",
        "4111\n1111\n1111\n1111",
    ] {
        assert!(redact(text).is_clean(), "{text:?}");
    }
}

/// Asserts that `text` is left alone although its digits, read as one number, would pass the
/// Luhn and issuer checks: only the layout rules keep it from being a card.
fn assert_layout_is_not_a_card(text: &str) {
    let digits: Vec<u8> = text
        .chars()
        .filter_map(|c| c.to_digit(10))
        .filter_map(|d| u8::try_from(d).ok())
        .collect();
    assert!(
        (13..=19).contains(&digits.len()) && luhn_valid(&digits) && issuer_known(&digits),
        "{text:?} does not test the layout rules"
    );
    let result = redact(text);
    assert!(result.is_clean(), "{text:?} -> {}", result.text);
}

#[test]
fn dotted_numbers_are_not_cards() {
    // IP addresses with a prefix length, a date and a time, prices, versions.
    assert_layout_is_not_a_card("45.12.1.8/24 10.0.0.1");
    assert_layout_is_not_a_card("25.12.2024 10.30.07");
    assert_layout_is_not_a_card("45.00 20.00 30.00 49.00");
    assert!(redact("1.2.3.4 5.6.7.8 9.10.11.12 13.14.15.16").is_clean());
    assert!(redact("2024.01.15 10.30 and 2026.11.28 23.59.59").is_clean());
}

#[test]
fn small_numbers_separated_by_slashes_are_not_cards() {
    assert_layout_is_not_a_card("4/12/3/45/6/7/89/10/2");
    assert_layout_is_not_a_card("pages 4 / 12 / 3 / 45 / 6 / 7 / 89 / 10 / 2");
}

#[test]
fn cards_are_not_cut_out_of_longer_grouped_numbers() {
    // The first 16 digits are a valid card, but the last group has five digits.
    assert!(luhn_valid(&[
        4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    ]));
    for text in [
        "4111.1111.1111.11110",
        "4111/1111/1111/11110",
        "４１１１ １１１１ １１１１ １１１１０",
        "9.4111.1111.1111.1111",
        "4111.1111.1111.1111.5",
        "ｘ４１１１１１１１１１１１１１１１",
        "４１１１１１１１１１１１１１１１ｘ",
        "３．４１１１１１１１１１１１１１１１",
    ] {
        let result = redact(text);
        assert!(result.is_clean(), "{text:?} -> {}", result.text);
    }
}

#[test]
fn cut_multibyte_separators_and_digits_never_panic() {
    let text =
        "４１１１\u{a0}１１１１\u{202f}1111\u{2009}1111 x 5555\u{2007}5555\u{2013}5555\u{3000}4444";
    for (at, _) in text.char_indices() {
        for part in [&text[..at], &text[at..]] {
            let once = redact(part);
            assert_eq!(
                redact(&once.text).count(SecretKind::CardNumber),
                0,
                "{part:?}"
            );
        }
    }
    assert_eq!(redact(text).count(SecretKind::CardNumber), 2);
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
fn fifteen_digit_numbers_are_cards_only_with_an_amex_prefix() {
    // Luhn-valid IMEIs: their type allocation codes start 35 (JCB's prefix) or 49 (Visa's).
    for imei in [
        "352099001761481",
        "356938035643809",
        "354885071234567",
        "490154203237518",
    ] {
        let digits: Vec<u8> = imei.bytes().map(|b| b - b'0').collect();
        assert!(luhn_valid(&digits), "{imei}");
        assert!(!issuer_known(&digits), "{imei}");
        assert!(redact(&format!("IMEI {imei}")).is_clean(), "{imei}");
    }
    for amex in ["378282246310005", "371449635398431", "3400 000000 00009"] {
        assert_eq!(
            masked(&format!("Amex {amex} ok")),
            "Amex [REDACTED:card_number] ok",
            "{amex}"
        );
    }
    // 16 digits starting 35 are JCB cards still.
    assert_eq!(masked("JCB 3530111333300000"), "JCB [REDACTED:card_number]");
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
        format!("sk-None-{}", "Ab3_dE-f9".repeat(5)),
        format!(
            "xapp-1-A0{}-{}-{}",
            "12BCDEFGH",
            "1234567890123",
            "0a1b2c3d4e5f".repeat(4)
        ),
        format!(
            "https://hooks.slack.com/services/T0{}/B0{}/{}",
            "1ABCDEFG", "2HIJKLMN", "aBcDeFgHiJkLmNoPqRsTuVwX"
        ),
        format!("whsec_{}", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        format!("gsk_{}", "aBcDeFgHiJ".repeat(5)),
        format!("r8_{}", "aBcDeFgHiJ".repeat(4)),
        format!("xai-{}", "aBcDeFgHiJ".repeat(8)),
        format!("npm_{}", "aBcDeFgHiJ".repeat(4)),
        format!(
            "SG.{}.{}kLm",
            "aBcDeFgHiJkLmNoPqRsTuV",
            "aBcDeFgHiJ".repeat(4)
        ),
        format!("nvapi-{}", "aB3_dE-f9Z".repeat(7)),
        format!("pplx-{}", "aBcDeFgH12".repeat(5)),
        format!("lsv2_pt_{}_{}", "0a1b2c3d".repeat(4), "0a1b2c3d4e"),
        format!("pcsk_{}_{}", "4Xq9Zr", "aBcDeFgH12".repeat(5)),
        format!("dapi{}", "0a1b2c3d".repeat(4)),
        format!("GOCSPX-{}", "aB3_dE-f9Zq".repeat(3)),
        format!("ya29.{}", "a0AfB_byC3dE".repeat(4)),
        format!("hvs.{}", "CAESIJ3kLm9".repeat(3)),
        format!("dckr_pat_{}", "aB3_dE-f9Zq".repeat(3)),
        format!("pypi-AgEIcHlwaS5vcmc{}", "CJDAwMDAwMDAw".repeat(4)),
        format!("dop_v1_{}", "0a1b2c3d".repeat(8)),
        format!("HRKU-{}", "aB3_dE-f9Zq".repeat(4)),
        format!("dp.pt.{}", "aBcDeFgH12".repeat(5)),
        format!("pul-{}", "0a1b2c3d4e".repeat(4)),
        format!("glsa_{}_{}", "aBcDeFgH12".repeat(4), "0a1b2c3d"),
        format!("NRAK-{}", "A1B2C3D4E5F6G7H8I9J0K1L2M3N"),
        format!("sntrys_{}", "eyJpYXQiOjE3".repeat(5)),
        format!("ATATT3{}", "xFfGF0aB3_dE-f9Zq".repeat(8)),
        format!("lin_api_{}", "aBcDeFgH12".repeat(4)),
        format!("ntn_{}{}", "12345678901", "aBcDeFgH12".repeat(4)),
        format!(
            "PMAK-{}-{}",
            "0a1b2c3d".repeat(3),
            "0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e"
        ),
        format!("shpat_{}", "0a1b2c3d".repeat(4)),
        format!("sq0atp-{}", "aB3_dE-f9Zq".repeat(2)),
        format!(
            "AGE-SECRET-KEY-1{}",
            "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
                .repeat(2)
                .get(..58)
                .unwrap_or_default()
        ),
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
        "sk-None- is the prefix of keys made without a project",
        "xapp-1-A0123 tokens are app-level",
        "see https://hooks.slack.com/services/ for webhooks",
        "whsec_ secrets sign webhooks, e.g. whsec_test",
        "the gsk_ prefix and gsk_short",
        "call var_r8_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 later, r8_ registers too",
        "pip install xai-sdk and read xai-org/grok-1",
        "npm_config_registry and npm_package_version_long_name_here",
        "SG.Settings.Default and SG.abc.def",
        "Rotate the SecretAccessKey every 90 days",
        r#""SessionToken": null, "SecretAccessKey": "short""#,
        "NVIDIA keys start with nvapi- and Perplexity's with pplx-",
        "dapi tokens such as dapi0123 are Databricks'; ya29.short is no token",
        "SKU SK0123456789 and SK_LIVE_MODE and hvs.short",
        "the glc_ prefix; glsa_short; NRAK-SHORT; AGE-SECRET-KEY-1 starts an age key",
        "shpat_notHexAtAllButLongEnoughToMatchIt and dop_v1_0a1b",
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
fn aws_secrets_and_session_tokens_are_masked_after_every_common_label() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let token = format!(
        "IQoJb3JpZ2luX2Vj{}/+Ab==",
        "EHYaCXVzLWVhc3QtMSJHMEUCIQD".repeat(4)
    );
    let key = "[REDACTED:provider_key]";
    for (line, expected) in [
        // What `aws iam create-access-key` and `aws sts get-session-token` print.
        (
            format!(
                r#"{{"AccessKeyId": "ASIA{}", "SecretAccessKey": "{secret}"}}"#,
                "Z2X3C4V5B6N7M8Q9"
            ),
            format!(r#"{{"AccessKeyId": "{key}", "SecretAccessKey": "{key}"}}"#),
        ),
        (
            format!(r#""SessionToken": "{token}","#),
            format!(r#""SessionToken": "{key}","#),
        ),
        // The `aws configure` prompts, before and after a key was set.
        (
            format!("AWS Secret Access Key [None]: {secret}"),
            format!("AWS Secret Access Key [None]: {key}"),
        ),
        (
            format!("AWS Secret Access Key [****************EKEY]: {secret}"),
            format!("AWS Secret Access Key [****************EKEY]: {key}"),
        ),
        (
            format!("secret_access_key = {secret}"),
            format!("secret_access_key = {key}"),
        ),
        (
            format!("aws_secret_key: {secret}"),
            format!("aws_secret_key: {key}"),
        ),
        (
            format!("aws_session_token = {token}"),
            format!("aws_session_token = {key}"),
        ),
        (
            format!("export AWS_SESSION_TOKEN={token}"),
            format!("export AWS_SESSION_TOKEN={key}"),
        ),
    ] {
        assert_eq!(masked(&line), expected, "{line}");
    }
}

#[test]
fn passwords_in_urls_are_masked_and_nothing_else() {
    let key = "[REDACTED:provider_key]";
    for (url, expected) in [
        (
            "postgres://admin:S3cr3t@localhost:5432/app".to_owned(),
            format!("postgres://admin:{key}@localhost:5432/app"),
        ),
        // A host that reads as an e-mail domain stays too.
        (
            "postgres://admin:hunter2@db.example.com:5432/app".to_owned(),
            format!("postgres://admin:{key}@db.example.com:5432/app"),
        ),
        (
            "redis://:hunter2@cache:6379/0".to_owned(),
            format!("redis://:{key}@cache:6379/0"),
        ),
        (
            "mysql://root:123456@10.0.0.5:3306/app".to_owned(),
            format!("mysql://root:{key}@10.0.0.5:3306/app"),
        ),
        (
            "amqp://guest:p%40ss:w0rd@mq/vhost".to_owned(),
            format!("amqp://guest:{key}@mq/vhost"),
        ),
        (
            r#"{"dsn": "mysql://root:t0p$ecret!@db/shop"}"#.to_owned(),
            format!(r#"{{"dsn": "mysql://root:{key}@db/shop"}}"#),
        ),
    ] {
        let once = redact(&url);
        assert_eq!(once.text, expected, "{url}");
        assert_eq!(once.found, vec![(SecretKind::ProviderKey, 1)], "{url}");
        assert!(redact(&once.text).is_clean(), "{url}");
    }
    // A user and no password, a port, or an `@` in the path is no password.
    for text in [
        "clone ssh://git@github.com/acme/api.git",
        "open https://user@example.com:8443/path",
        "open https://example.com:8443/a@b and http://localhost:8080/",
        "skopeo copy docker://alpine:3.19@sha256:0123abcd oci:dir",
        "skopeo copy docker://nginx:1.25-alpine@sha512:0123abcd oci:dir",
    ] {
        assert_eq!(redact(text).count(SecretKind::ProviderKey), 0, "{text}");
    }
    // Nor is a URL's user an e-mail address; one in its path or query is.
    for text in [
        "clone ssh://git@github.com/acme/api.git",
        "open https://user@example.com:8443/path",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
    for (text, expected) in [
        (
            "https://example.com/unsubscribe?to=jane@example.com",
            "https://example.com/unsubscribe?to=[REDACTED:email]",
        ),
        (
            "https://example.com?to=jane@example.com",
            "https://example.com?to=[REDACTED:email]",
        ),
        (
            "https://example.com#c=jane@example.com",
            "https://example.com#c=[REDACTED:email]",
        ),
        (
            "https://acme.com,jane@acme.com",
            "https://acme.com,[REDACTED:email]",
        ),
        (
            "[https://x.io]jane@example.com",
            "[https://x.io][REDACTED:email]",
        ),
        (
            "site=https://acme.com;owner=jane@acme.com",
            "site=https://acme.com;owner=[REDACTED:email]",
        ),
    ] {
        assert_eq!(masked(text), expected, "{text}");
    }
    // A password with characters an address cannot hold still leaves the host readable.
    assert_eq!(
        masked("postgres://admin:p!ss@db.example.com:5432/app"),
        "postgres://admin:[REDACTED:provider_key]@db.example.com:5432/app"
    );
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
fn basic_credentials_are_masked_when_they_decode_to_a_user_and_password() {
    assert_eq!(
        masked("curl -H 'Authorization: Basic YWRtaW46aHVudGVyMg==' https://registry"),
        "curl -H 'Authorization: Basic [REDACTED:bearer_token]' https://registry"
    );
    // Letters only, a password that is not ASCII, and one in Latin-1.
    for credential in [
        "dXNlcjpwYXNz",
        "asO8cmdlbjpww6Rzc3dvcnQ=",
        "YWRtaW46cORzc3dvcnQ=",
    ] {
        let text = format!("authorization: basic {credential}\n");
        let result = redact(&text);
        assert_eq!(
            result.text, "authorization: basic [REDACTED:bearer_token]\n",
            "{credential}"
        );
        assert_eq!(result.found, vec![(SecretKind::BearerToken, 1)]);
    }
}

#[test]
fn basic_credentials_in_logs_urls_and_folded_headers_are_masked() {
    assert_eq!(
        masked("GET /api?auth=Basic%20YWRtaW46aHVudGVyMg%3D%3D HTTP/1.1"),
        "GET /api?auth=Basic%20[REDACTED:bearer_token] HTTP/1.1"
    );
    assert_eq!(
        masked("Authorization: Basic\n  YWRtaW46aHVudGVyMg==\nHost: x"),
        "Authorization: Basic\n  [REDACTED:bearer_token]\nHost: x"
    );
}

#[test]
fn basic_in_prose_or_before_other_base64_is_kept() {
    for text in [
        // Words whose base64 reading holds a ':' (an O first gives one at once).
        "Python Basic Operators",
        "Chapter 3: Basic Operations",
        "Write a Basic Overview of Kubernetes",
        "Basic Optimization Techniques for SQL",
        "Plan a Basic Outreach campaign",
        "Basic Ordering rules",
        "Windows Vista Home Basic 2006-2009",
        "in the basic /usr/lib/zoneinfo layout",
        "Basic understanding of Kubernetes is assumed",
        "BASIC   authentication-is-deprecated-here",
        // Base64, but of no `user:password`.
        "basic YWJjZGVmZ2hpams= decodes to abcdefghijk",
        // A colon, but control characters around it: not a credential.
        "Basic dXNlcjoBAnB3",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
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
fn ibans_are_masked_in_groups_or_unbroken_in_any_case() {
    for iban in [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB29 NWBK 6016 1331 9268 19",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "NO93 8601 1117 947",
        "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
        "de89 3704 0044 0532 0130 00",
        "DE89-3704-0044-0532-0130-00",
        "DE89\u{a0}3704\u{a0}0044\u{a0}0532\u{a0}0130\u{a0}00",
        "FR14\u{202f}2004\u{202f}1010\u{202f}0505\u{202f}0001\u{202f}3M02\u{202f}606",
        // A space too many, or wrapped at the end of a line.
        "DE89 3704  0044 0532 0130 00",
        "DE89 3704 0044\n0532 0130 00",
        "DE89 3704 0044\r\n    0532 0130 00",
    ] {
        let text = format!("IBAN: {iban}, BIC follows");
        let result = redact(&text);
        assert_eq!(result.text, "IBAN: [REDACTED:iban], BIC follows", "{iban}");
        assert_eq!(result.found, vec![(SecretKind::Iban, 1)], "{iban}");
    }
}

#[test]
fn iban_shaped_codes_that_fail_the_check_or_the_length_are_kept() {
    for text in [
        // One digit off: the check digits disagree.
        "IBAN DE89 3704 0044 0532 0130 01",
        // Germany's are 22 long, not 20 or 24.
        "ref DE89 3704 0044 0532 01",
        "ref DE89 3704 0044 0532 0130 0012",
        // No country has XX.
        "part XX89 3704 0044 0532 0130 00",
        // Glued to a word, or grouped other than by four.
        "idDE89370400440532013000",
        "DE89 37040044 0532 0130 00",
        "SKU AB12 3456 7890",
    ] {
        let result = redact(text);
        assert!(
            result.count(SecretKind::Iban) == 0,
            "{text} -> {}",
            result.text
        );
    }
}

#[test]
fn an_iban_followed_by_another_number_is_masked_alone() {
    assert_eq!(
        masked("DE89 3704 0044 0532 0130 00 2024"),
        "[REDACTED:iban] 2024"
    );
}

#[test]
fn email_addresses_are_masked() {
    assert_eq!(
        masked("write to jane.doe+ml@mail.example.co.uk or ops@hangar.dev."),
        "write to [REDACTED:email] or [REDACTED:email]."
    );
}

#[test]
fn email_addresses_in_other_scripts_are_masked() {
    for (text, expected) in [
        ("écrivez à josé@exemple.fr.", "écrivez à [REDACTED:email]."),
        (
            "an jürgen.müller@bücher.de senden",
            "an [REDACTED:email] senden",
        ),
        ("пишите на почта@пример.рф", "пишите на [REDACTED:email]"),
        // Decomposed: `e` and a combining acute.
        ("to jose\u{301}@example.com now", "to [REDACTED:email] now"),
        // Scripts written without spaces stay out of the address, so the words around it stay.
        (
            "请发邮件到john@example.com谢谢",
            "请发邮件到[REDACTED:email]谢谢",
        ),
        ("連絡先：tanaka＠example.co.jp", "連絡先：[REDACTED:email]"),
        // A Persian name joined by a zero-width non-joiner is one name.
        (
            "به علی\u{200c}رضا@example.com بنویس",
            "به [REDACTED:email] بنویس",
        ),
        // An address in a URL's user part before its password is an address all the same.
        (
            "EMAIL_URL=smtp://jane.doe@acme.com:Hunter2pass@smtp.gmail.com:587",
            "EMAIL_URL=smtp://[REDACTED:email]:[REDACTED:email]:587",
        ),
        (
            "2024-05-01 url=https://api.acme.com|user=jane.doe@acme.com|status=500",
            "2024-05-01 url=https://api.acme.com|user=[REDACTED:email]|status=500",
        ),
        (
            "callback=https://app.acme.com&email=jane.doe@acme.com&plan=pro",
            "callback=https://app.acme.com&email=[REDACTED:email]&plan=pro",
        ),
    ] {
        assert_eq!(masked(text), expected, "{text}");
    }
}

#[test]
fn email_look_alikes_are_kept() {
    for text in [
        "git clone git@github.com:rust-lang/cargo.git",
        "icon@2x.png and icon@3x.PNG",
        "scores = q@k.transpose(-2, -1) / math.sqrt(d)",
        "y = α@β.transpose()",
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
        // The UK's trunk 0 kept in brackets after the country code.
        "+44 (0)20 7946 0958",
        // A subscriber number of six digits or more.
        "+49 30 901820",
        "+49 89 12345678",
        // France in pairs, Switzerland in 3-3-2-2.
        "01 23 45 67 89",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "06/12/34/56/78",
        "06\u{a0}12\u{a0}34\u{a0}56\u{a0}78",
        "01\u{202f}23\u{202f}45\u{202f}67\u{202f}89",
        "+44 (0)7911123456",
        "+49 15112345678",
        "+91 9876543210",
        "+49 171/1234567",
        "0171/1234567",
        "044/668 18 00",
        "044-668-18-00",
        "138 0013 8000",
        "(11) 91234-5678",
        "98765 43210",
        "044 668 18 00",
    ] {
        let text = format!("call {phone} today");
        let result = redact(&text);
        assert_eq!(result.text, "call [REDACTED:phone] today", "{phone}");
        assert_eq!(result.found, vec![(SecretKind::Phone, 1)], "{phone}");
    }
}

#[test]
fn a_number_beside_a_phone_in_pairs_does_not_make_a_table() {
    assert_eq!(
        masked("Jean Dupont 06 12 34 56 78 12 rue de Rivoli"),
        "Jean Dupont [REDACTED:phone] 12 rue de Rivoli"
    );
    assert_eq!(masked("Ref 12 06 12 34 56 78"), "Ref 12 [REDACTED:phone]");
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
        "scores 10 20 30 40 50 60",
        "version 0.12.34.56.78",
        "grid 01 23 45 67 89 10 11",
        "grid 10 11 01 23 45 67 89",
        "dump 4f 2a 03 12 34 56 78",
        "de ad be ef 01 02 03 04 05",
        // Amounts grouped as phone numbers may be, with a currency beside them.
        "The deal is worth +1 250 000 000 € over five years.",
        "margin +1 250 000 000\u{a0}USD, cost EUR +2 500 000 000",
        "raised $ +1 250 000 000 in total",
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

#[test]
fn random_mixes_of_digit_groups_and_separators_never_panic_and_mask_for_good() {
    const DIGITS: &[char] = &['4', '1', '5', '0', '7', '2', '９', '１', '４', '０'];
    const SEPARATORS: &[char] = &[
        ' ', '-', '.', '/', '\t', '\u{a0}', '\u{202f}', '\u{2009}', '\u{2013}', '\u{3000}', '－',
        '．',
    ];
    const OTHERS: &[char] = &['\n', ',', 'x', 'é', '卡', '_', '＿', 'Ａ'];
    let redactor = Redactor::default();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        // xorshift64: deterministic, so a failure always reproduces.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % bound as u64).unwrap()
    };
    let mut with_cards = 0;
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..1 + next(7) {
            let group = if next(4) == 0 {
                1 + next(8)
            } else {
                3 + next(4)
            };
            (0..group).for_each(|_| text.push(DIGITS[next(DIGITS.len())]));
            (0..next(5)).for_each(|_| text.push(SEPARATORS[next(SEPARATORS.len())]));
            if next(6) == 0 {
                text.push(OTHERS[next(OTHERS.len())]);
            }
        }
        let once = redactor.redact(&text);
        with_cards += usize::from(once.count(SecretKind::CardNumber) > 0);
        let twice = redactor.redact(&once.text);
        assert_eq!(twice.count(SecretKind::CardNumber), 0, "{text:?}");
    }
    assert!(with_cards > 100, "only {with_cards} texts held a card");
}

#[test]
fn a_card_split_across_neighbouring_texts_is_masked_in_each() {
    let redactor = Redactor::default();
    let all = |texts: &[&str]| masked_texts(&redactor, texts);
    assert_eq!(
        all(&["my card is 4111 1111", "1111 1111 thanks"]),
        [
            "my card is [REDACTED:card_number]",
            "[REDACTED:card_number] thanks"
        ]
    );
    assert_eq!(
        all(&["4111", "1111", "1111", "1111"]),
        ["[REDACTED:card_number]"; 4]
    );
    let split = redactor.redact_all(&["pay 4111 1111 ", "1111 1111"]);
    assert_eq!(split[0].count(SecretKind::CardNumber), 1);
    assert_eq!(split[1].count(SecretKind::CardNumber), 1);
    // Luhn still decides, a whole card in one text is masked once, and clean texts stay
    // borrowed.
    assert_eq!(all(&["4111 1111", "1111 1112"]), ["4111 1111", "1111 1112"]);
    let whole = redactor.redact_all(&["4111 1111 1111 1111", "2024"]);
    assert_eq!(whole[0].text, "[REDACTED:card_number]");
    assert_eq!(whole[1].text, "2024");
    assert!(matches!(
        redactor.redact_all(&["a", "b"])[0].text,
        Cow::Borrowed(_)
    ));
    // A number glued to a word stays an identifier across texts too.
    assert_eq!(
        all(&["id_4111 1111", "1111 1111"]),
        ["id_4111 1111", "1111 1111"]
    );
    // Invisible characters at the split hide nothing, however many: the card reader skips
    // them all.
    let hidden = format!("4111 1111{}", "\u{200b}".repeat(6));
    assert_eq!(all(&[&hidden, "1111 1111"]), ["[REDACTED:card_number]"; 2]);
    // Many cards over many short parts: each is masked in its own parts.
    let parts: Vec<&str> = ["4111", "1111", "1111", "1111", "next"].repeat(500);
    let masked = all(&parts);
    assert_eq!(masked.len(), 2500);
    for (part, text) in parts.iter().zip(&masked) {
        match *part {
            "next" => assert_eq!(text, "next"),
            _ => assert_eq!(text, "[REDACTED:card_number]"),
        }
    }
}

#[test]
fn secrets_in_json_text_inside_a_string_are_masked_through_its_escapes() {
    let redactor = Redactor::default();
    // A tool call's `arguments`, as the parsed body holds it: JSON text with its escapes.
    let arguments = r#"{"note":"card:\n4111111111111111\nkey:\nsk-proj-AAAAAAAAAAAAAAAAAAAAAAAA\tcall +1 415 555 0100"}"#;
    let masked = redactor.redact(arguments);
    assert_eq!(
        masked.text,
        r#"{"note":"card:\n[REDACTED:card_number]\nkey:\n[REDACTED:provider_key]\tcall [REDACTED:phone]"}"#
    );
    assert_eq!(masked.count(SecretKind::CardNumber), 1);
    // An escaped digit is part of the card, and masked with it.
    let escaped = r#"pay \u0034111111111111111 now"#;
    assert_eq!(
        redactor.redact(escaped).text,
        "pay [REDACTED:card_number] now"
    );
    let all_escaped = r#"\u0034\u0031\u0031\u0031 1111 1111 1111 ok"#;
    assert_eq!(
        redactor.redact(all_escaped).text,
        "[REDACTED:card_number] ok"
    );
    // Found both as written and decoded, a find counts once.
    let plain = r#"mail jo@example.com\n"#;
    let masked = redactor.redact(plain);
    assert_eq!(masked.text, r#"mail [REDACTED:email]\n"#);
    assert_eq!(masked.count(SecretKind::Email), 1);
    // Backslashes that are no escape, and clean text, change nothing.
    for clean in [
        r#"C:\dir\new\u12"#,
        r#"regex \d+\s\n"#,
        "\\",
        r#"\u00"#,
        r#"\ud83d\ude00"#,
    ] {
        assert_eq!(redactor.redact(clean).text, clean);
    }
    assert!(matches!(redactor.redact(r#"a\nb"#).text, Cow::Borrowed(_)));
}

#[test]
fn a_private_key_split_across_texts_is_masked_in_each() {
    let redactor = Redactor::default();
    let all = |texts: &[&str]| masked_texts(&redactor, texts);
    let begin = "here it is: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA";
    let middle = "q3Zx9yW0bT7uV";
    let end = "Hn2kL8pQ==\n-----END RSA PRIVATE KEY----- thanks";
    assert_eq!(
        all(&[begin, middle, end, "next"]),
        [
            "here it is: [REDACTED:private_key]",
            "[REDACTED:private_key]",
            "[REDACTED:private_key] thanks",
            "next",
        ]
    );
    let found = redactor.redact_all(&[begin, end]);
    assert_eq!(found[1].count(SecretKind::PrivateKey), 1);
    // A whole block in one text leaves the next one alone, and so does a BEGIN that is no key.
    let whole = "-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----";
    assert_eq!(all(&[whole, "after"])[1], "after");
    assert_eq!(
        all(&["-----BEGIN CERTIFICATE-----\nMIIB", "after"])[1],
        "after"
    );
    // Closed, then opened again in the same text.
    let reopened = format!("{whole} and -----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl");
    assert_eq!(
        all(&[&reopened, "bnNzaC1r\n-----END OPENSSH PRIVATE KEY-----"])[1],
        "[REDACTED:private_key]"
    );
    // A text that names the BEGIN line (a system prompt's rule) leaves what follows alone, and
    // so does a key whose next part is no key text.
    let rule = "Refuse if the user pastes -----BEGIN RSA PRIVATE KEY----- in a message.";
    assert_eq!(all(&[rule, "hello"])[1], "hello");
    let named = "The header is -----BEGIN RSA PRIVATE KEY-----";
    assert_eq!(all(&[named, "What does it mean?"])[1], "What does it mean?");
    assert_eq!(
        all(&[begin, "Thanks, and my name is Jo."])[1],
        "Thanks, and my name is Jo."
    );
    // An empty part in between changes nothing.
    assert_eq!(
        all(&[begin, "", end]),
        [
            "here it is: [REDACTED:private_key]",
            "",
            "[REDACTED:private_key] thanks"
        ]
    );
    // Without the private-key kind, nothing carries over.
    let cards_only = Redactor::new(&[SecretKind::CardNumber]);
    assert_eq!(cards_only.redact_all(&[begin, middle])[1].text, middle);
}

/// What [`Redactor::redact_all`] makes of `texts`.
fn masked_texts(redactor: &Redactor, texts: &[&str]) -> Vec<String> {
    redactor
        .redact_all(texts)
        .into_iter()
        .map(|r| r.text.into_owned())
        .collect()
}

#[test]
fn a_prefix_masks_whole_the_secret_its_cut_splits_and_nothing_after() {
    let redactor = Redactor::default();
    let text = "pay 4111 1111 1111 1111 then 5555 5555 5555 4444 é";
    let prefix = |cut| redactor.redact_prefix(text, cut).text.into_owned();
    // Cut inside the first card: it is masked whole, and the second is left out.
    assert_eq!(prefix(10), "pay [REDACTED:card_number]");
    // Cut just before a card: none of its digits.
    assert_eq!(prefix(29), "pay [REDACTED:card_number] then ");
    assert_eq!(prefix(3), "pay");
    // A cut past the end, or inside a character, is taken to the nearest boundary below.
    assert_eq!(prefix(1000), masked(text));
    assert_eq!(prefix(text.len() - 1), masked(&text[..text.len() - 2]));
}

#[test]
fn secrets_after_their_labels_are_masked() {
    let cases = [
        (
            "DB_PASSWORD=hunter2Xy9",
            "DB_PASSWORD=[REDACTED:provider_key]",
        ),
        (
            "PGPASSWORD=S3cret!x psql",
            "PGPASSWORD=[REDACTED:provider_key] psql",
        ),
        (
            "Server=db;Uid=sa;Pwd=S3cret!x;",
            "Server=db;Uid=sa;Pwd=[REDACTED:provider_key];",
        ),
        (
            "mysqladmin --password=S3cr3t status",
            "mysqladmin --password=[REDACTED:provider_key] status",
        ),
        (
            r#"{"password": "S3cr3t!pass"}"#,
            r#"{"password": "[REDACTED:provider_key]"}"#,
        ),
        (
            "the password: hunter2.",
            "the password: [REDACTED:provider_key].",
        ),
        (
            "client_secret: 8Qy~abcDEF123ghiJKL456",
            "client_secret: [REDACTED:provider_key]",
        ),
        (
            "JWT_SECRET=4f3c2b1a9e8d7c6b",
            "JWT_SECRET=[REDACTED:provider_key]",
        ),
        (
            "SECRET_KEY = 'django-insecure-7x$k2!abc'",
            "SECRET_KEY = '[REDACTED:provider_key]'",
        ),
        (
            r#"{"apiKey": "Xk93mQp27Lw8Tz4vB"}"#,
            r#"{"apiKey": "[REDACTED:provider_key]"}"#,
        ),
        (
            "-H 'x-api-key: 4f3c2b1a9e8d7c6b5a4f3c2b'",
            "-H 'x-api-key: [REDACTED:provider_key]'",
        ),
        (
            "Ocp-Apim-Subscription-Key: 0123456789abcdef0123",
            "Ocp-Apim-Subscription-Key: [REDACTED:provider_key]",
        ),
        (
            "X-Auth-Token: 0123456789abcdef0123456789abcdef",
            "X-Auth-Token: [REDACTED:provider_key]",
        ),
        (
            "GET /v1/items?access_token=abc%2F123def456ghi789xyz HTTP/1.1",
            "GET /v1/items?access_token=[REDACTED:provider_key] HTTP/1.1",
        ),
        (
            "REDIS_PASSWORD=3f1b2c4d-9a8e-4c7d-b6a5-0e1f2a3b4c5d",
            "REDIS_PASSWORD=[REDACTED:provider_key]",
        ),
        (
            "AccountName=acct;AccountKey=Zm9vYmFy1mF6cXV4Zm9vYmFyYmF6cXV4==;EndpointSuffix=x",
            "AccountName=acct;AccountKey=[REDACTED:provider_key];EndpointSuffix=x",
        ),
        (
            "https://a.blob.core.windows.net/c/f?sv=2022-11-02&sp=r&sig=abcdEFGH1234abcdEFGH1234%3D",
            "https://a.blob.core.windows.net/c/f?sv=2022-11-02&sp=r&sig=[REDACTED:provider_key]",
        ),
        (
            "env:\n  - name: DB_PASSWORD\n    value: \"S3cr3t!pw\"\n  - name: LOG_LEVEL\n    value: debug2x",
            "env:\n  - name: DB_PASSWORD\n    value: \"[REDACTED:provider_key]\"\n  - name: LOG_LEVEL\n    value: debug2x",
        ),
        // A tool call's arguments: JSON inside a JSON string.
        (
            r#"{"arguments": "{\"user\": \"ann\", \"password\": \"S3cret!x\"}"}"#,
            r#"{"arguments": "{\"user\": \"ann\", \"password\": \"[REDACTED:provider_key]\"}"}"#,
        ),
        // At the very start of the text.
        (
            "spring.security.oauth2.client.registration.keycloak.client-secret=Xy7pQ2rT9vLm4kNw",
            "spring.security.oauth2.client.registration.keycloak.client-secret=[REDACTED:provider_key]",
        ),
        // Labels as people paste them in chat: spaced words, bold, backticks.
        (
            "API Key: Xy7pQ2rT9vLm4kNw",
            "API Key: [REDACTED:provider_key]",
        ),
        (
            "Secret Access Key: Xy7pQ2rT9vLm4kNw",
            "Secret Access Key: [REDACTED:provider_key]",
        ),
        (
            "**Password:** Xy7pQ2rT9vLm4kNw",
            "**Password:** [REDACTED:provider_key]",
        ),
        (
            "- Password: `Xy7pQ2rT9vLm4kNw`",
            "- Password: `[REDACTED:provider_key]`",
        ),
        // Variables named for the key they hold, Rails' and Laravel's, a cookie.
        (
            "AZURE_OPENAI_KEY=0123456789abcdef0123456789abcdef",
            "AZURE_OPENAI_KEY=[REDACTED:provider_key]",
        ),
        (
            "APP_KEY=base64:Xy7pQ2rT9vLm4kNwXy7pQ2rT9vLm4kNw=",
            "APP_KEY=[REDACTED:provider_key]",
        ),
        (
            r#"ENV["SECRET_KEY_BASE"] = "9f8e7d6c5b4a3928""#,
            r#"ENV["SECRET_KEY_BASE"] = "[REDACTED:provider_key]""#,
        ),
        (
            "Cookie: sessionid=0123456789abcdef0123456789abcdef",
            "Cookie: sessionid=[REDACTED:provider_key]",
        ),
        (
            "MAPBOX_TOKEN=pk.eyJ1IjoiZXhhbXBsZSIsImEiOiJja2V4YW1wbGUifQ.abc",
            "MAPBOX_TOKEN=[REDACTED:provider_key]",
        ),
        (
            "TOTP_SECRET=JBSWY3DPEHPK3PXP",
            "TOTP_SECRET=[REDACTED:provider_key]",
        ),
        (
            r#"password: "@Xy7pQ2rT9vLm4kNw""#,
            r#"password: "[REDACTED:provider_key]""#,
        ),
        // A variable's value beside its name, in JSON, XML, HCL and flow YAML.
        (
            r#"{"name": "DB_PASSWORD", "value": "Xy7pQ2rT9vLm4kNw"}"#,
            r#"{"name": "DB_PASSWORD", "value": "[REDACTED:provider_key]"}"#,
        ),
        (
            r#"<add key="ClearTextPassword" value="Xy7pQ2rT9vLm4kNw" />"#,
            r#"<add key="ClearTextPassword" value="[REDACTED:provider_key]" />"#,
        ),
        (
            r#"{ name = "DB_PASSWORD", value = "Xy7pQ2rT9vLm4kNw" }"#,
            r#"{ name = "DB_PASSWORD", value = "[REDACTED:provider_key]" }"#,
        ),
        (
            "- {name: DB_PASSWORD, value: Xy7pQ2rT9vLm4kNw}",
            "- {name: DB_PASSWORD, value: [REDACTED:provider_key]}",
        ),
        // Flags and their values apart, and an Authorization header's other schemes.
        (
            "mysqladmin --password Xy7pQ2rT9vLm4kNw status",
            "mysqladmin --password [REDACTED:provider_key] status",
        ),
        (
            "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
            "Authorization: Token [REDACTED:provider_key]",
        ),
        (
            r#""Authorization": "SSWS 00QhXy7pQ2rT9vLm4kNw""#,
            r#""Authorization": "SSWS [REDACTED:provider_key]""#,
        ),
        // Written without `:` or `=`: XML elements, SQL, curl's user and password.
        (
            "<server>\n  <username>deploy</username>\n  <password>Xy7pQ2rT9vLm4kNw</password>\n</server>",
            "<server>\n  <username>deploy</username>\n  <password>[REDACTED:provider_key]</password>\n</server>",
        ),
        (
            "CREATE USER app WITH PASSWORD 'Xy7pQ2rT9vLm4kNw';",
            "CREATE USER app WITH PASSWORD '[REDACTED:provider_key]';",
        ),
        (
            "CREATE USER 'app'@'%' IDENTIFIED BY 'Xy7pQ2rT9vLm4kNw';",
            "CREATE USER 'app'@'%' IDENTIFIED BY '[REDACTED:provider_key]';",
        ),
        (
            "curl -u admin:Xy7pQ2rT9vLm4kNw https://jenkins.example.com/api/json",
            "curl -u admin:[REDACTED:provider_key] https://jenkins.example.com/api/json",
        ),
        (
            r#"curl --user "api:key-3ax6xnjp29jd6fds4gc373sgvjxteol0" https://api.example.net"#,
            r#"curl --user "api:[REDACTED:provider_key]" https://api.example.net"#,
        ),
        // A command's own flag for its password.
        (
            "mysql -h db -u root -pXy7pQ2rT9vLm4kNw app",
            "mysql -h db -u root -p[REDACTED:provider_key] app",
        ),
        (
            "redis-cli -h cache -a Xy7pQ2rT9vLm4kNw ping",
            "redis-cli -h cache -a [REDACTED:provider_key] ping",
        ),
        (
            "sshpass -p 'Xy7pQ2rT9vLm4kNw' ssh root@host",
            "sshpass -p '[REDACTED:provider_key]' ssh root@host",
        ),
        (
            "docker login -u deploy -p Xy7pQ2rT9vLm4kNw registry.example.com",
            "docker login -u deploy -p [REDACTED:provider_key] registry.example.com",
        ),
        (
            "ldapsearch -x -D cn=admin,dc=acme -w Xy7pQ2rT9vLm4kNw -b dc=acme",
            "ldapsearch -x -D cn=admin,dc=acme -w [REDACTED:provider_key] -b dc=acme",
        ),
        (
            "keytool -importkeystore -srckeystore a.p12 -storepass Xy7pQ2rT9vLm4kNw",
            "keytool -importkeystore -srckeystore a.p12 -storepass [REDACTED:provider_key]",
        ),
        (
            "openssl pkcs12 -export -out c.p12 -passout pass:Xy7pQ2rT9vLm4kNw",
            "openssl pkcs12 -export -out c.p12 -passout pass:[REDACTED:provider_key]",
        ),
        // A presigned URL's signature, Ansible's and WireGuard's names for secrets.
        (
            "https://b.s3.amazonaws.com/f?X-Amz-Expires=3600&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0",
            "https://b.s3.amazonaws.com/f?X-Amz-Expires=3600&X-Amz-Signature=[REDACTED:provider_key]",
        ),
        (
            "host1 ansible_become_pass=Xy7pQ2rT9vLm4kNw",
            "host1 ansible_become_pass=[REDACTED:provider_key]",
        ),
        (
            "PresharedKey = Xy7pQ2rT9vLm4kNw0K1wuURMbS0sesJEP5ak=",
            "PresharedKey = [REDACTED:provider_key]",
        ),
        // A value with `&` in it, outside a URL's query.
        (
            "DB_PASSWORD=K9#mP2$xL!q&7zR",
            "DB_PASSWORD=[REDACTED:provider_key]",
        ),
        // A setting and its value parted by blanks: `.netrc`, redis.conf, Gradle, nginx.
        (
            "machine api.github.com login octocat password Xy7pQ2rT9vLm4kNw",
            "machine api.github.com login octocat password [REDACTED:provider_key]",
        ),
        (
            "machine example.com\n  login alice\n  password s3cr3tPassw0rd!\n",
            "machine example.com\n  login alice\n  password [REDACTED:provider_key]\n",
        ),
        (
            "requirepass foobaredXy7Q\nmasterauth Xy7pQ2rT9vLm4kNw",
            "requirepass [REDACTED:provider_key]\nmasterauth [REDACTED:provider_key]",
        ),
        (
            "    storePassword \"an7Kq2PzR4\"\n    keyPassword 'Zq9-xR2vB8'",
            "    storePassword \"[REDACTED:provider_key]\"\n    keyPassword '[REDACTED:provider_key]'",
        ),
        (
            "storePassword \"an7Kq2PzR4\" // release key\nrequirepass foobaredXy7Q # for prod",
            "storePassword \"[REDACTED:provider_key]\" // release key\nrequirepass [REDACTED:provider_key] # for prod",
        ),
        (
            "\tapi_token \"Xy7pQ2rT9vLm4kNw\";",
            "\tapi_token \"[REDACTED:provider_key]\";",
        ),
        // HTTPie's and xh's `-a`, and the pair Python's HTTP clients take.
        (
            "http -a alice:Tr0ub4dor3xx example.org; xh --auth bob:Xy7pQ2rT9vLm4kNw x.org",
            "http -a alice:[REDACTED:provider_key] example.org; xh --auth bob:[REDACTED:provider_key] x.org",
        ),
        (
            r#"requests.get(url, auth=("alice", "Tr0ub4dor&3x")); session.auth = ('bob', 'Xy7pQ2rT9vLm4kNw')"#,
            r#"requests.get(url, auth=("alice", "[REDACTED:provider_key]")); session.auth = ('bob', '[REDACTED:provider_key]')"#,
        ),
        // As black formats a call, with the user in a variable, and Elasticsearch's name.
        (
            "requests.get(\n    url,\n    auth=(\n        \"alice\",\n        \"Tr0ub4dor&3x\",\n    ),\n)",
            "requests.get(\n    url,\n    auth=(\n        \"alice\",\n        \"[REDACTED:provider_key]\",\n    ),\n)",
        ),
        (
            "Elasticsearch(hosts, basic_auth=(settings.USER, 'Xy7pQ2rT9vLm4kNw'))",
            "Elasticsearch(hosts, basic_auth=(settings.USER, '[REDACTED:provider_key]'))",
        ),
        (
            "http --auth=bob:Xy7pQ2rT9vLm4kNw example.org",
            "http --auth=bob:[REDACTED:provider_key] example.org",
        ),
        (
            "s.auth = HTTPBasicAuth('alice', 'Tr0ub4dor&3x'); aiohttp.BasicAuth(\"u\", \"Xy7pQ2rT9vLm4kNw\")",
            "s.auth = HTTPBasicAuth('alice', '[REDACTED:provider_key]'); aiohttp.BasicAuth(\"u\", \"[REDACTED:provider_key]\")",
        ),
        // Telegram's bot tokens, new and old.
        (
            r#"bot = telebot.TeleBot("7012345678:AAF-8xk3mPq9ZrT2vW5yB7nD4hJ6kL1sQ0c")"#,
            r#"bot = telebot.TeleBot("[REDACTED:provider_key]")"#,
        ),
        (
            "https://api.telegram.org/bot110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe",
            "https://api.telegram.org/bot[REDACTED:provider_key]/getMe",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(masked(text), expected, "{text}");
    }
    // Key material in a kubeconfig and in a Secret.
    let pem = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB".repeat(20);
    let kubeconfig = format!("    client-key-data: {pem}\n    token: x");
    assert_eq!(
        masked(&kubeconfig),
        "    client-key-data: [REDACTED:provider_key]\n    token: x"
    );
    // Docker's config.json: base64 of `user:password`.
    let docker = r#"{"auths": {"registry.example.com": {"auth": "YWRtaW46UzNjcjN0UGFzcw=="}}}"#;
    let result = redact(docker);
    assert_eq!(
        result.text,
        r#"{"auths": {"registry.example.com": {"auth": "[REDACTED:bearer_token]"}}}"#
    );
    assert_eq!(result.found, vec![(SecretKind::BearerToken, 1)]);
}

#[test]
fn code_and_configuration_that_only_name_secrets_are_kept() {
    for text in [
        r#"api_key=os.environ["OPENAI_API_KEY"]"#,
        "client = OpenAI(api_key=api_key, base_url=url)",
        "password = request.form['password']",
        "password: str = Field(..., min_length=8)",
        "secret_key = get_random_secret_key()",
        "token = tokenizer.encode(text)",
        r#"access_token = response.json()["access_token"]"#,
        r#"client_secret: "{{ .Values.oidc.clientSecret }}""#,
        r#"{"password": {"type": "string", "minLength": 12}}"#,
        r#""max_tokens": 128000, "eos_token": "<|endoftext|>", "pad_token": "[PAD]""#,
        r#"tokenizer.eos_token = "</s>"; model.config.pad_token_id = 0"#,
        "Password: Required. Enter your password below.",
        "existingSecret: postgres-creds\nsecretName: my-tls-secret",
        "apiKey: process.env.OPENAI_API_KEY,",
        "Password: cfg.DBPassword,",
        "password: Option<String>,",
        r#""secret": true, "token": 4096, "auth": "oauth2""#,
        r#"api_key = "YOUR_API_KEY""#,
        "password: ********",
        "DB_PASSWORD=${DB_PASSWORD}",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "if password == user.password:",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-creds\n        key: password",
        "passwordFile: /etc/secrets/db-password",
        "The API key: it must be kept secret. Set OPENAI_API_KEY=... then run it.",
        "password_hash: $2b$12$KIXQJ3abcdefghijklmnopqrstuv",
        "https://example.com/search?q=sig&sig=short",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request",
        "secret: my_secret_name, api_key=apiKey, token=self.token",
        "ratio: 16:9, time: 12:30:45, url: https://example.com:8443/path",
        r#"special_tokens = {"pad_token": "<pad>", "additional_special_tokens": ["<|im_start|>"]}"#,
        // A red team's finds: TypeScript's `!` and `?.`, ARNs, shell defaults, types, YAML
        // tags, translations, identifiers, Ruby symbols, placeholders, paths, hex constants.
        "secret: process.env.NEXTAUTH_SECRET!,",
        "apiKey: config?.anthropic?.apiKey",
        r#""Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/myapp/db-AbCdEf""#,
        "- SECRET_KEY=${SECRET_KEY:?SECRET_KEY is required}",
        "JWT_SECRET=${JWT_SECRET:-dev_jwt_secret}",
        "DATABASE_URL=postgresql://postgres:${POSTGRES_PASSWORD}@db:5432/app",
        "DATABASE_URL=postgresql://user:password@localhost:5432/mydb",
        "val password: String?",
        "login(email: String!, password: String!)",
        "secretKey: Uint8Array;",
        "signing_key: Ed25519PrivateKey",
        "api_key: secrecy::SecretString",
        "encryption_key: KeyKind::Aes256",
        "db_password: !vault |",
        "api_key: !secret openweathermap_key",
        "API_KEY: !GetAtt ApiKey.Value",
        r#""password": "Contraseña", "new_password": "Re-enter", "passphrase": "Show/Hide""#,
        r#""password": "Пароль", "secret": "密码""#,
        "password=new_password2, password=pg_pass1",
        "{ password: :password_digest }",
        "STRIPE_SECRET_KEY=sk_test_...",
        r#"api_key="token-abc123""#,
        "SESSION_SECRET=replace_me_32chars_min",
        "secret: secret/data/myapp",
        "signing_key: keys/jwt-signing.pem",
        "PreSharedKey = 0x0029",
        "render_pass: shadow_pass2",
        r#""token": "0xdAC17F958D2ee523a2206206994597C13D831ec7""#,
        r#""nextPageToken": "CiAKGjBpNDd2Nmp4dzV0azJkdWtxZWZ1""#,
        "The API key: e.g. sk-... goes in the header. Your token: expires_in=3600s.",
        "token: 1st_of_month_2024",
        "use the --password flag, or --api-key $OPENAI_API_KEY",
        "<password>{COQLCE6DU6GtcS5P=}</password> <token></token> <b>password</b>",
        "curl -u admin:admin https://localhost, git push -u origin main, curl -u $USER:$PASS",
        "ALTER USER app PASSWORD NULL; the password 'is' short",
        // Other commands' `-p` and `-a`, and `mysql -p` asking for the password.
        "mysql -u root -p app; docker run -p 8080:80 nginx; ls -a Xy7pQ2rT9vLm4kNw",
        "ssh -p 2222 host; grep -w Xy7pQ2rT9vLm4kNw file",
        // A second red team's finds: quoted references and placeholders, quantities,
        // algorithms, keys that are no secrets, numbers with a type's suffix, OIDs.
        r#"export PGPASSWORD="$DB_PASS"; mysql --password="$MYSQL_PWD""#,
        r#"secret_key = "%SECRET_KEY%", value: "%REQ(x-api-key)%""#,
        r#"{"api_key": "<api-key>", "password": "{db_password}", "secret": "[FILTERED]"}"#,
        r#""password": "(hidden)", "token": "[API_KEY_0123456789]""#,
        r#"{"password": "ENC[AES256_GCM,data:Tr7o=,iv:1=,tag:x=,type:str]"}"#,
        r#"ssh_private_key = "~/.ssh/id_ed25519", SSH_KEY="/Users/Alice/Keys/id_rsa2""#,
        r#"private_key: "C:\Users\bob\.ssh\id_rsa2""#,
        "Private key: Ed25519 (or secp256k1). Encryption key: AES256. Signing key: ES256K",
        "Password: 12–64 characters. API key: 32-char hex. Secret: 256-bit random",
        "Encryption key: aes-256-gcm; password: argon2id; Signing key: RS256/ES256",
        "pub const VK_ZOOM: VIRTUAL_KEY = 251u16; const MAX_KEY: usize = 1024usize;",
        "const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';",
        "pub const DEVCONF_STABLE_SECRET: _bindgen_ty_3 = 3;",
        r#"CACHE_KEY = "users:v2"; PARTITION_KEY = "tenant#42"; HOTKEY_KEY = "Ctrl+Shift+P""#,
        "ENV GPG_KEY=7169605F62C751356D054A26A821E680E5FA6305",
        "JWT_PUBLIC_KEY=MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        "Authorization: Bearer",
        // Settings parted by blanks in prose, and what only looks like a bot token.
        "Password reset link sent.\npassword required\n  password s3cr3t and more words\ntoken expired",
        "machine learning needs a login, then a password reset",
        "auth=(user, password); auth = HTTPBasicAuth(user, pw); OAuth(\"id\", \"Xy7pQ2rT9vLm\")",
        "oauth=(\"id\", \"Xy7pQ2rT9vLm\"); auth=(1, \"Xy7pQ2rT9vLm\")",
        "curl -a ascii; 12345:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw; 110201543:AAshort",
        // A red team's: a man page's Chinese sentence, terms after a bare label, and another
        // command's `-a` on HTTPie's line.
        "passwd 口令來對其一一進行設置一般說往往比較慢。\npassword 请输入您的密码。",
        "secret TLSv1.3\npassword RFC2617\nrequirepass PKCS12",
        "password python3.11\npassword v1.2.3-rc1\npassword 12:30:45\npassword OAuth2.0\npassword sha512crypt\npassword curve25519\npassword base64url",
        "http -v example.org; rsync -a host:Backup2024 /mnt",
    ] {
        assert!(redact(text).is_clean(), "{text}");
    }
}

#[test]
fn labels_repeated_without_end_are_read_in_linear_time() {
    // Quadratic reading made a megabyte of these take minutes; in a debug build a linear read
    // of a quarter of one takes well under a second, a quadratic one minutes.
    let repeated_inside = [
        format!("{} ", ".dockerconfigjson=".repeat(900)),
        format!("{} ", "token=".repeat(40)),
    ];
    for unit in [
        // A label repeated inside one long value, each reading up to the longest value taken.
        repeated_inside[0].as_str(),
        repeated_inside[1].as_str(),
        "password=",
        "password:\"",
        "?api_key=&",
        "client-key-data:",
        "Authorization: Token ",
        "--password ",
        r#"{"name":"DB_PASSWORD","value":"#,
        // Settings parted by blanks, `.netrc`'s lines and Python's pairs.
        "password \n",
        "password ",
        "machine login password ",
        "login \"",
        "auth=(\"u\", ",
        "HTTPBasicAuth('",
        "1234567:AA",
    ] {
        let text = unit.repeat(256 * 1024 / unit.len());
        let result = redact(&text);
        assert!(result.text.len() >= text.len() / 2, "{unit}");
    }
}

#[test]
fn labelled_secrets_follow_their_kinds() {
    let text = r#"password: S3cr3t!x, "auth": "YWRtaW46UzNjcjN0UGFzcw==""#;
    let keys_only = Redactor::new(&[SecretKind::ProviderKey]).redact(text);
    assert_eq!(
        keys_only.text,
        r#"password: [REDACTED:provider_key], "auth": "YWRtaW46UzNjcjN0UGFzcw==""#
    );
    let credentials_only = Redactor::new(&[SecretKind::BearerToken]).redact(text);
    assert_eq!(
        credentials_only.text,
        r#"password: S3cr3t!x, "auth": "[REDACTED:bearer_token]""#
    );
}
