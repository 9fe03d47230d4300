//! The one big-endian codec of Harbour's binary formats: the batch wire
//! format, the storage segment records, the naming journal and the blob
//! listing all write their integers with `Put` and read them with `Reader`.
//! Reading never panics on short input: it says `Short`, and each format
//! decides what a short record means (torn tail, truncated batch, damage).

use std::fmt;

/// Appends big-endian integers and byte strings.
pub trait Put {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_bytes(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The input ended before the value did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Short;

/// Reads big-endian values off the front of a byte slice.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let bytes = self.bytes(N)?;
        Ok(bytes.try_into().expect("bytes(N) is N long"))
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], Short> {
        if self.bytes.len() < len {
            return Err(Short);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Short> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        self.array().map(u64::from_be_bytes)
    }

    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the input ends early")
    }
}

impl std::error::Error for Short {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{Put, Reader, Short};

    #[test]
    fn values_round_trip_big_endian() {
        let mut out = Vec::new();
        out.put_u8(0xab);
        out.put_u16(0x0102);
        out.put_u32(0x0304_0506);
        out.put_u64(0x0708_090a_0b0c_0d0e);
        out.put_bytes(b"xy");
        assert_eq!(
            out,
            [
                0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, b'x', b'y'
            ]
        );
        let mut reader = Reader::new(&out);
        assert_eq!(reader.u8().unwrap(), 0xab);
        assert_eq!(reader.u16().unwrap(), 0x0102);
        assert_eq!(reader.u32().unwrap(), 0x0304_0506);
        assert_eq!(reader.u64().unwrap(), 0x0708_090a_0b0c_0d0e);
        assert_eq!(reader.bytes(2).unwrap(), b"xy");
        assert!(reader.is_empty());
    }

    #[test]
    fn short_input_is_an_error_and_consumes_nothing() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.u32(), Err(Short));
        assert_eq!(reader.rest(), [1, 2, 3]);
        assert_eq!(reader.u16().unwrap(), 0x0102);
        assert_eq!(reader.bytes(2), Err(Short));
    }
}
