//! Parsing RESP requests: arrays of bulk strings (what every client library sends) and inline
//! commands (what a person types into `telnet`).
//!
//! The parser never allocates for what a request *claims*: it returns `Ok(None)` until the
//! bytes have arrived, and refuses lengths over the limits before any buffer grows, so a bulk
//! that claims 4 GiB costs nothing but an error reply.

use std::ops::Range;

/// The most arguments one request may have (Redis's limit).
pub(crate) const MAX_ARGS: usize = 1024 * 1024;

/// The longest inline command, or length line, before the request is refused (Redis's limit).
pub(crate) const MAX_INLINE: usize = 64 * 1024;

/// How large requests may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest single argument.
    pub max_bulk: usize,
    /// The most bytes all the arguments of one request may add up to.
    pub max_request: usize,
}

/// A request the parser cannot frame: the connection's framing is lost, so it is answered with
/// `-ERR Protocol error: …` and closed, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("invalid multibulk length")]
    MultibulkLength,
    #[error("invalid bulk length")]
    BulkLength,
    #[error("expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    #[error("too big inline request")]
    InlineTooBig,
    #[error("too big mbulk count string")]
    CountTooBig,
    #[error("too big bulk count string")]
    BulkCountTooBig,
    #[error("bulk string not terminated by CRLF")]
    BulkTerminator,
    #[error("request larger than the node accepts")]
    RequestTooLarge,
}

/// Parses the request at the start of `buf`.
///
/// Returns `Ok(None)` while it is incomplete, else the number of bytes it took, with `args` set
/// to where each argument lies in `buf` (no arguments for a blank line or an empty array, which
/// are skipped).
pub(crate) fn parse(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_array(buf, limits, args),
        Some(_) => parse_inline(buf, args),
    }
}

fn parse_array(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some((count, mut at)) = length_line(buf, 1, ProtocolError::CountTooBig)? else {
        return Ok(None);
    };
    let count = match count {
        Some(count) if count > MAX_ARGS as i64 => return Err(ProtocolError::MultibulkLength),
        Some(count) if count <= 0 => return Ok(Some(at)),
        Some(count) => count as usize,
        None => return Err(ProtocolError::MultibulkLength),
    };
    let mut total = 0usize;
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError::ExpectedBulk(other)),
        }
        let Some((len, data_start)) = length_line(buf, at + 1, ProtocolError::BulkCountTooBig)?
        else {
            return Ok(None);
        };
        let len = match len {
            Some(len) if len >= 0 && len as u64 <= limits.max_bulk as u64 => len as usize,
            _ => return Err(ProtocolError::BulkLength),
        };
        total += len;
        if total > limits.max_request {
            return Err(ProtocolError::RequestTooLarge);
        }
        let data_end = data_start + len;
        if buf.len() < data_end + 2 {
            return Ok(None);
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return Err(ProtocolError::BulkTerminator);
        }
        args.push(data_start..data_end);
        at = data_end + 2;
    }
    Ok(Some(at))
}

/// Reads the integer on the line that starts at `buf[from]`, up to its CRLF. `Ok(None)` when
/// the line has not fully arrived; `Some((None, _))` when it is not an integer.
fn length_line(
    buf: &[u8],
    from: usize,
    too_long: ProtocolError,
) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    let rest = &buf[from.min(buf.len())..];
    let Some(cr) = rest.iter().position(|&byte| byte == b'\r') else {
        return if rest.len() > MAX_INLINE {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    if cr > MAX_INLINE {
        return Err(too_long);
    }
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((parse_integer(&rest[..cr]), from + cr + 2))),
        Some(_) => Ok(Some((None, from + cr + 2))),
    }
}

/// A decimal integer the way Redis writes them: an optional `-`, digits, no leading zeros.
pub(crate) fn parse_integer(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && text.len() > 1) {
        return None;
    }
    // Accumulated on the negative side, which reaches one further (i64::MIN).
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_sub(i64::from(digit - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

fn parse_inline(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&byte| byte == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError::InlineTooBig)
        } else {
            Ok(None)
        };
    };
    if newline > MAX_INLINE {
        return Err(ProtocolError::InlineTooBig);
    }
    let line = &buf[..newline];
    let mut start = None;
    for (at, &byte) in line.iter().enumerate() {
        let blank = byte.is_ascii_whitespace();
        match (start, blank) {
            (None, false) => start = Some(at),
            (Some(from), true) => {
                args.push(from..at);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        args.push(from..line.len());
    }
    Ok(Some(newline + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_bulk: 1024,
        max_request: 4096,
    };

    /// The arguments of a parsed request and the bytes it used.
    type Parsed = Option<(Vec<Vec<u8>>, usize)>;

    fn parse_all(buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let mut ranges = Vec::new();
        Ok(parse(buf, &LIMITS, &mut ranges)?.map(|used| {
            (
                ranges.iter().map(|r| buf[r.clone()].to_vec()).collect(),
                used,
            )
        }))
    }

    #[test]
    fn arrays_of_bulk_strings() {
        let (args, used) = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n+extra")
            .unwrap()
            .unwrap();
        assert_eq!(args, vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(used, 20);
    }

    #[test]
    fn binary_and_empty_arguments() {
        let (args, _) = parse_all(b"*2\r\n$0\r\n\r\n$2\r\n\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(args, vec![b"".to_vec(), b"\r\n".to_vec()]);
    }

    #[test]
    fn inline_commands() {
        let (args, used) = parse_all(b"SET  a b\r\nGET a\r\n").unwrap().unwrap();
        assert_eq!(args, vec![b"SET".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(used, 10);
        assert_eq!(parse_all(b"\r\n").unwrap().unwrap(), (vec![], 2));
    }

    #[test]
    fn incomplete_requests_wait_for_more() {
        for partial in [
            &b"*"[..],
            b"*2\r",
            b"*2\r\n$3\r\nGE",
            b"*2\r\n$3\r\nGET\r\n",
            b"*2\r\n$3\r\nGET\r\n$1\r\nk",
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r",
            b"PING",
        ] {
            assert_eq!(parse_all(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn a_huge_claimed_length_is_refused_at_once() {
        assert_eq!(
            parse_all(b"*1\r\n$4294967296\r\n"),
            Err(ProtocolError::BulkLength)
        );
        assert_eq!(
            parse_all(b"*99999999999\r\n"),
            Err(ProtocolError::MultibulkLength)
        );
        assert_eq!(
            parse_all(b"*5\r\n$1000\r\n"),
            Ok(None),
            "within the limits it waits"
        );
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(
            parse_all(b"*1\r\n+OK\r\n"),
            Err(ProtocolError::ExpectedBulk(b'+'))
        );
        assert_eq!(parse_all(b"*x\r\n"), Err(ProtocolError::MultibulkLength));
        assert_eq!(parse_all(b"*1\r\n$-1\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(
            parse_all(b"*1\r\n$1\r\nabc"),
            Err(ProtocolError::BulkTerminator)
        );
        assert_eq!(
            parse_all(&vec![b'a'; MAX_INLINE + 2]),
            Err(ProtocolError::InlineTooBig)
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"01",
            b"+1",
            b" 1",
            b"9223372036854775808",
            b"1a",
            b"-0",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    fn request() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6).prop_map(|args| {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(&arg);
                out.extend_from_slice(b"\r\n");
            }
            out
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_all(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_prefix_never_panic(
            prefix in prop::sample::select(vec!["*", "*3\r\n", "*2\r\n$", "*1\r\n$5\r\n", "$"]),
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = prefix.as_bytes().to_vec();
            buf.extend_from_slice(&bytes);
            let _ = parse_all(&buf);
        }

        #[test]
        fn every_prefix_of_a_request_is_incomplete_and_the_whole_parses(req in request()) {
            let whole = parse_all(&req).unwrap().unwrap();
            prop_assert_eq!(whole.1, req.len());
            for cut in 0..req.len() {
                prop_assert_eq!(parse_all(&req[..cut]), Ok(None));
            }
        }

        #[test]
        fn pipelined_requests_parse_one_after_another(reqs in prop::collection::vec(request(), 1..5)) {
            let joined = reqs.concat();
            let mut at = 0;
            for req in &reqs {
                let (args, used) = parse_all(&joined[at..]).unwrap().unwrap();
                prop_assert_eq!(Some((args, used)), parse_all(req).unwrap());
                at += used;
            }
            prop_assert_eq!(at, joined.len());
        }
    }
}
