//! `Range: bytes=...` of a GET or HEAD of a file (RFC 9110, section 14):
//! one range, `A-B`, `A-` or `-N`, is honoured with 206; a range past the
//! end is 416; anything else (several ranges, another unit, a malformed
//! header) is ignored and the whole file sent with 200, as the RFC allows.

use std::ops::Range;

/// What a request's `Range` header asks of a file of a given size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    Whole,
    /// These bytes (never empty, within the file).
    Part(Range<u64>),
    /// No byte of the file is in the range: 416.
    Unsatisfiable,
}

/// Parses `header` (the value of `Range`, if any) against `size`.
pub fn parse(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |text: &str| -> Option<u64> {
        match !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            true => text.parse().ok(),
            false => None,
        }
    };
    if first.is_empty() {
        // `-N`: the last N bytes.
        return match (number(last), size) {
            (None, _) => RangeAsk::Whole,
            (Some(0), _) | (_, 0) => RangeAsk::Unsatisfiable,
            (Some(suffix), size) => RangeAsk::Part(size.saturating_sub(suffix)..size),
        };
    }
    let Some(start) = number(first) else {
        return RangeAsk::Whole;
    };
    // `A-` or `A-B`, B inclusive.
    let end = match last {
        "" => size,
        last => match number(last) {
            Some(end) if end >= start => end.saturating_add(1).min(size),
            _ => return RangeAsk::Whole,
        },
    };
    match start < size {
        true => RangeAsk::Part(start..end),
        false => RangeAsk::Unsatisfiable,
    }
}

/// The `Content-Range` of an answer with `part` of a file of `size`.
pub fn content_range(part: &Range<u64>, size: u64) -> String {
    assert!(part.start < part.end && part.end <= size);
    format!("bytes {}-{}/{size}", part.start, part.end - 1)
}

#[cfg(test)]
mod tests {
    use super::{RangeAsk, content_range, parse};

    #[test]
    fn one_range_in_each_form() {
        assert_eq!(parse(Some("bytes=0-99"), 1000), RangeAsk::Part(0..100));
        assert_eq!(
            parse(Some("bytes=1020-1030"), 5000),
            RangeAsk::Part(1020..1031)
        );
        assert_eq!(parse(Some("bytes=900-"), 1000), RangeAsk::Part(900..1000));
        assert_eq!(parse(Some("bytes=-100"), 1000), RangeAsk::Part(900..1000));
        assert_eq!(parse(Some("bytes=-5000"), 1000), RangeAsk::Part(0..1000));
        assert_eq!(parse(Some("bytes=0-5000"), 1000), RangeAsk::Part(0..1000));
        assert_eq!(parse(Some(" bytes= 5 - 9 "), 1000), RangeAsk::Part(5..10));
        assert_eq!(content_range(&(900..1000), 1000), "bytes 900-999/1000");
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(parse(Some("bytes=1000-"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(
            parse(Some("bytes=1000-2000"), 1000),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(parse(Some("bytes=-0"), 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), RangeAsk::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-1"), 0), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn anything_else_is_ignored() {
        for header in [
            None,
            Some("bytes=0-1,5-6"),
            Some("items=0-1"),
            Some("bytes=9-5"),
            Some("bytes=a-b"),
            Some("bytes=-"),
            Some("bytes=1-x"),
            Some("bytes=+1-2"),
            Some("bytes=99999999999999999999999-"),
            Some("bytes"),
        ] {
            assert_eq!(parse(header, 1000), RangeAsk::Whole, "{header:?}");
        }
    }

    #[test]
    fn every_part_is_within_the_file_and_not_empty() {
        let mut rng = common::rng::Rng::new(7);
        for _ in 0..20_000 {
            let size = rng.below(3000);
            let header = format!(
                "bytes={}-{}",
                if rng.below(4) == 0 {
                    String::new()
                } else {
                    rng.below(4000).to_string()
                },
                if rng.below(3) == 0 {
                    String::new()
                } else {
                    rng.below(4000).to_string()
                }
            );
            if let RangeAsk::Part(part) = parse(Some(&header), size) {
                assert!(
                    part.start < part.end && part.end <= size,
                    "{header} of {size}: {part:?}"
                );
            }
        }
    }
}
