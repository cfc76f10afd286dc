//! Kubernetes resource quantities (`2`, `500m`, `16Gi`, `1e3`), read as the API server reads
//! them.

/// A Kubernetes quantity: a signed decimal number and a suffix, binary (`Ki`…`Ei`), decimal
/// (`n`, `u`, `m`, `k`, `M`…`E`) or an exponent (`e3`, `E-2`). `None` for anything else. As
/// the API server does, a number with no digits is 0 (`Gi`, `-`, `.`), and one too large for
/// an `f64` is read as the largest.
pub fn parse(text: &str) -> Option<f64> {
    if text.is_empty() {
        return None;
    }
    let (sign, unsigned) = match text.as_bytes().first()? {
        b'-' => (-1.0, &text[1..]),
        b'+' => (1.0, &text[1..]),
        _ => (1.0, text),
    };
    let split = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(split);
    if number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = if number.bytes().any(|b| b.is_ascii_digit()) {
        number.parse().ok()?
    } else {
        0.0
    };
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse::<i32>().ok()?)
        }
    };
    if value == 0.0 {
        return Some(0.0);
    }
    Some(sign * (value * scale).min(f64::MAX))
}

/// Whether `value` counts as a whole number for the API server, which first rounds it up to
/// thousandths (`2.9999999999` is 3).
pub fn is_whole(value: f64) -> bool {
    (value * 1000.0).ceil() % 1000.0 == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_as_kubernetes_reads_them() {
        let read = |text| parse(text);
        assert_eq!(read("2"), Some(2.0));
        assert_eq!(read("500m"), Some(0.5));
        assert_eq!(read("1.5"), Some(1.5));
        assert_eq!(read(".5"), Some(0.5));
        assert_eq!(read("+3"), Some(3.0));
        assert_eq!(read("-1"), Some(-1.0));
        assert_eq!(read("16Gi"), Some(16.0 * 1024f64.powi(3)));
        assert_eq!(read("2k"), Some(2000.0));
        assert_eq!(read("1e3"), Some(1000.0));
        assert_eq!(read("12E-1"), Some(1.2000000000000002));
        assert_eq!(read("1E"), Some(1e18));
        assert_eq!(read("1e400"), Some(f64::MAX), "too large for f64");
        assert_eq!(read("0e999"), Some(0.0));
        // No digits reads as 0, an empty template value before a unit included.
        for zero in ["Gi", "-", "+", ".", "m", "1e-400"] {
            assert_eq!(read(zero).map(f64::abs), Some(0.0), "{zero:?}");
        }
        assert!(is_whole(3.0) && is_whole(2.9999999999) && is_whole(0.0));
        assert!(!is_whole(1.5) && !is_whole(0.0001));
        for bad in [
            "",
            "abc",
            "two",
            "1.2.3",
            "1 Gi",
            "1gi",
            "1KiB",
            "1e",
            "1e+",
            "+-1",
            "1e99999999999",
        ] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }
}
