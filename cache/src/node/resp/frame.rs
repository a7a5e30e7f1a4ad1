//! Writing RESP replies, in the version the client chose with HELLO.
//!
//! RESP3 differs from RESP2 in the types a reply may use: a real null instead of a null bulk
//! string, maps instead of flat arrays of pairs. Commands write through [`Reply`] and need not
//! know which version they speak.

/// A reply being written to the connection's output buffer.
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    out: &'a mut Vec<u8>,
    resp3: bool,
}

impl<'a> Reply<'a> {
    pub fn new(out: &'a mut Vec<u8>, resp3: bool) -> Self {
        Self { out, resp3 }
    }

    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string; `text` must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.line(b'+', text.as_bytes());
    }

    /// An error; `message` starts with its code (`ERR`, `WRONGPASS`…).
    pub fn error(&mut self, message: &str) {
        // An error is one line: a message echoing user input must not break the framing.
        self.out.push(b'-');
        self.out.extend(
            message
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn integer(&mut self, value: i64) {
        self.line(b':', itoa::Buffer::new().format(value).as_bytes());
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.line(b'$', itoa::Buffer::new().format(data.len()).as_bytes());
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn null(&mut self) {
        self.out
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    pub fn array(&mut self, len: usize) {
        self.line(b'*', itoa::Buffer::new().format(len).as_bytes());
    }

    /// A map of `pairs` entries: each is then written as a key followed by a value.
    pub fn map(&mut self, pairs: usize) {
        if self.resp3 {
            self.line(b'%', itoa::Buffer::new().format(pairs).as_bytes());
        } else {
            self.array(pairs * 2);
        }
    }

    /// Switches versions (HELLO answers in the version it chose).
    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
    }

    fn line(&mut self, kind: u8, text: &[u8]) {
        self.out.push(kind);
        self.out.extend_from_slice(text);
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::Reply;

    fn written(resp3: bool, write: impl FnOnce(&mut Reply<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut Reply::new(&mut out, resp3));
        out
    }

    #[test]
    fn versions_differ_in_null_and_maps() {
        assert_eq!(written(false, |r| r.null()), b"$-1\r\n");
        assert_eq!(written(true, |r| r.null()), b"_\r\n");
        assert_eq!(written(false, |r| r.map(2)), b"*4\r\n");
        assert_eq!(written(true, |r| r.map(2)), b"%2\r\n");
    }

    #[test]
    fn errors_stay_on_one_line() {
        assert_eq!(written(false, |r| r.error("ERR a\r\nb")), b"-ERR a  b\r\n");
    }
}
