//! Base64 decoding, standard and URL-safe alphabets alike, for the guards that look inside
//! encoded text (an injection payload, an HTTP Basic credential).

/// The bytes `run` encodes, read up to its first `=`; `None` if it holds a character of
/// neither alphabet.
pub(crate) fn decode(run: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(run.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in run.iter().take_while(|b| **b != b'=') {
        buffer = (buffer << 6) | u32::from(sextet(byte)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(bytes)
}

fn sextet(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn both_alphabets_decode_and_padding_ends_the_run() {
        assert_eq!(
            decode(b"YWRtaW46aHVudGVyMg==").as_deref(),
            Some(&b"admin:hunter2"[..])
        );
        assert_eq!(decode(b"-_-_").as_deref(), Some(&[0xfb, 0xff, 0xbf][..]));
        assert_eq!(decode(b"+/+/").as_deref(), Some(&[0xfb, 0xff, 0xbf][..]));
        assert_eq!(decode(b"QQ==trailing").as_deref(), Some(&b"A"[..]));
        assert_eq!(decode(b"not base64!"), None);
    }
}
