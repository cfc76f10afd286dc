//! Kubernetes resource quantities (`2`, `500m`, `16Gi`, `1e3`), read as the API server reads
//! them.

use std::cmp::Ordering;

/// A Kubernetes quantity: a signed decimal number and a suffix, binary (`Ki`…`Ei`), decimal
/// (`n`, `u`, `m`, `k`, `M`…`E`) or an exponent (`e3`, `E-2`). `None` for anything else. As
/// the API server does, a number with no digits is 0 (`Gi`, `-`, `.`), and one too large for
/// an `f64` is read as the largest.
pub fn parse(text: &str) -> Option<f64> {
    let (negative, number, suffix) = split(text)?;
    if number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = if number.bytes().any(|b| b.is_ascii_digit()) {
        number.parse().ok()?
    } else {
        0.0
    };
    let (power_of_ten, power_of_two) = scale(suffix)?;
    if value == 0.0 {
        return Some(0.0);
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let scaled = value * 10f64.powi(power_of_ten) * 2f64.powi(power_of_two.cast_signed());
    Some(sign * scaled.min(f64::MAX))
}

/// A quantity's sign (true when negative), number and suffix: `-1.5Gi` is `(true, "1.5",
/// "Gi")`. `None` for an empty text.
fn split(text: &str) -> Option<(bool, &str, &str)> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let at = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(at);
    Some((negative, number, suffix))
}

/// A suffix's scale as a power of ten and a power of two; `None` for one no quantity has.
fn scale(suffix: &str) -> Option<(i32, u32)> {
    Some(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        // `e3`, `E-2`: digits only, after an optional sign.
        exponent => (exponent.strip_prefix(['e', 'E'])?.parse().ok()?, 0),
    })
}

/// How the quantities `a` and `b` compare; `None` when either is not one. Exact where their
/// values fit in 128 bits as decimals (`700m` equals `0.7`, which as `f64`s it exceeds), as
/// `f64`s beyond.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (Exact::read(a), Exact::read(b))
        && let Some(order) = a.compare(&b)
    {
        return Some(order);
    }
    parse(a)?.partial_cmp(&parse(b)?)
}

/// A quantity's value as `coefficient × 10^exponent`: every quantity is a decimal, the binary
/// suffixes being whole powers of two.
struct Exact {
    coefficient: i128,
    exponent: i32,
}

impl Exact {
    /// The value of `text`, when it is a quantity and fits.
    fn read(text: &str) -> Option<Exact> {
        let (negative, number, suffix) = split(text)?;
        let (mut coefficient, mut exponent, mut point) = (0i128, 0i32, false);
        for byte in number.bytes() {
            if byte == b'.' {
                if point {
                    return None;
                }
                point = true;
                continue;
            }
            coefficient = coefficient
                .checked_mul(10)?
                .checked_add(i128::from(byte - b'0'))?;
            exponent -= i32::from(point);
        }
        let (power_of_ten, power_of_two) = scale(suffix)?;
        let coefficient = coefficient.checked_mul(1i128 << power_of_two)?;
        Some(Exact {
            coefficient: if negative { -coefficient } else { coefficient },
            exponent: exponent.checked_add(power_of_ten)?,
        })
    }

    /// How this compares with `other`, when both fit at the smaller exponent.
    fn compare(&self, other: &Exact) -> Option<Ordering> {
        let exponent = self.exponent.min(other.exponent);
        let scaled = |q: &Exact| {
            let shift = u32::try_from(q.exponent.checked_sub(exponent)?).ok()?;
            q.coefficient.checked_mul(10i128.checked_pow(shift)?)
        };
        Some(scaled(self)?.cmp(&scaled(other)?))
    }
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
        // Compared exactly: as f64s, 700m is more than 0.7 and 9m more than 0.009.
        for (a, b) in [
            ("700m", "0.7"),
            ("9m", ".009"),
            ("1Gi", "1024Mi"),
            ("1.5Ki", "1536"),
            ("1e3", "1k"),
            ("100n", "0.1u"),
            ("0", "-0"),
            ("Gi", "0"),
        ] {
            assert_eq!(compare(a, b), Some(Ordering::Equal), "{a} {b}");
        }
        assert_eq!(compare("1001m", "1"), Some(Ordering::Greater));
        assert_eq!(compare("-1", "1n"), Some(Ordering::Less));
        assert_eq!(
            compare("1Ei", "1152921504606846975"),
            Some(Ordering::Greater)
        );
        // Past 128 bits, as numbers.
        assert_eq!(compare("1e400", "1"), Some(Ordering::Greater));
        assert_eq!(compare("1e-30", "1e30"), Some(Ordering::Less));
        assert_eq!(compare("abc", "1"), None);
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
