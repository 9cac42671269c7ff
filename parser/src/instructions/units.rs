//! Go's `time.ParseDuration` and docker's `units.RAMInBytes`, for
//! HEALTHCHECK intervals and tmpfs mount sizes.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::{opt, recognize};
use nom::multi::many1;
use nom::sequence::pair;
use nom::{IResult, Parser};

/// One `<number><unit>` term of a Go duration.
fn term(input: &str) -> IResult<&str, (&str, &str)> {
    let number = recognize(pair(
        take_while(|c: char| c.is_ascii_digit()),
        opt(pair(tag("."), take_while(|c: char| c.is_ascii_digit()))),
    ));
    let unit = alt((
        tag("ns"),
        tag("us"),
        tag("µs"),
        tag("μs"),
        tag("ms"),
        tag("s"),
        tag("m"),
        tag("h"),
    ));
    pair(number, unit).parse(input)
}

fn unit_nanos(unit: &str) -> u128 {
    match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        _ => 3_600_000_000_000,
    }
}

/// Parses a Go duration string (`1h30m`, `1.5s`, `300ms`, `0`) into
/// nanoseconds. Negative durations are returned as negative.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err(bad());
    }
    let (rest, terms) = many1(term).parse(body).map_err(|_| bad())?;
    if !rest.is_empty() {
        // Go names the unknown unit when one is there.
        let unit: String = rest
            .chars()
            .take_while(|c| !c.is_ascii_digit() && *c != '.')
            .collect();
        if !unit.is_empty() && rest.starts_with(|c: char| !c.is_ascii_digit() && c != '.') {
            return Err(format!("time: unknown unit {unit:?} in duration {s:?}"));
        }
        return Err(bad());
    }
    let mut total: u128 = 0;
    for (number, unit) in terms {
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let scale = unit_nanos(unit);
        let int_v: u128 = if int.is_empty() {
            0
        } else {
            int.parse::<u128>().map_err(|_| bad())?
        };
        let mut v = int_v.checked_mul(scale).ok_or_else(bad)?;
        let mut div = 1u128;
        let mut frac_v = 0u128;
        for d in frac.bytes().take(30) {
            frac_v = frac_v * 10 + u128::from(d - b'0');
            div *= 10;
        }
        v += frac_v * scale / div;
        total = total.checked_add(v).ok_or_else(bad)?;
        if total > i64::MAX as u128 {
            return Err(bad());
        }
    }
    let total = total as i64;
    Ok(if neg { -total } else { total })
}

/// Parses a size like docker's `units.RAMInBytes`: `64m`, `1.5GiB`, `1024`
/// (binary multiples, case-insensitive, optional `i` and `b`).
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    fn number(input: &str) -> IResult<&str, &str> {
        recognize(pair(
            take_while1(|c: char| c.is_ascii_digit()),
            nom::multi::many0(pair(tag("."), take_while1(|c: char| c.is_ascii_digit()))),
        ))
        .parse(input)
    }
    let (rest, num) = number(s).map_err(|_| bad())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let mult: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mult != 1.0 {
        chars.next();
    }
    if matches!(chars.peek(), Some('i' | 'I')) {
        chars.next();
    }
    if matches!(chars.peek(), Some('b' | 'B')) {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let v = n * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration(".5ms"), Ok(500_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_go_duration("300µs"), Ok(300_000));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("99999999999h").is_err());
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("1024"), Ok(1024));
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(1536 << 20));
        assert_eq!(ram_in_bytes("2 kb"), Ok(2048));
        assert!(ram_in_bytes("12x").is_err());
        assert!(ram_in_bytes("m").is_err());
    }
}
