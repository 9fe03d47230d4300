#![allow(clippy::unwrap_used)]

use super::{FileName, NameError};
use crate::limits::FILE_NAME_BYTES_MAX;

fn check_name(name: &str, expected: Result<(), NameError>) {
    let actual = FileName::parse(name).map(|parsed| assert_eq!(parsed.as_str(), name));
    assert_eq!(actual, expected, "name {name:?}");
}

#[test]
fn accepts_ordinary_names() {
    check_name("a.txt", Ok(()));
    check_name("dir/sub/file name with spaces", Ok(()));
    check_name("ünïcødé/文件.bin", Ok(()));
    check_name("100%25 literal percent", Ok(()));
    check_name("...", Ok(()));
    check_name(".hidden/..x/x..", Ok(()));
    check_name(&"n".repeat(FILE_NAME_BYTES_MAX), Ok(()));
}

#[test]
fn refuses_what_the_spec_forbids() {
    check_name("", Err(NameError::Empty));
    check_name(
        &"n".repeat(FILE_NAME_BYTES_MAX + 1),
        Err(NameError::TooLong {
            len_bytes: FILE_NAME_BYTES_MAX + 1,
        }),
    );
    check_name("a\nb", Err(NameError::ControlCharacter));
    check_name("a\u{0}b", Err(NameError::ControlCharacter));
    check_name("a\u{7f}", Err(NameError::ControlCharacter));
    check_name("a\u{85}", Err(NameError::ControlCharacter));
    check_name("/etc/passwd", Err(NameError::LeadingSlash));
    check_name("a//b", Err(NameError::EmptySegment));
    check_name("a/", Err(NameError::EmptySegment));
    check_name(".", Err(NameError::DotSegment));
    check_name("..", Err(NameError::DotSegment));
    check_name("a/./b", Err(NameError::DotSegment));
    check_name("a/../b", Err(NameError::DotSegment));
    check_name("a/..", Err(NameError::DotSegment));
}
