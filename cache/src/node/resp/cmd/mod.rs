//! Running RESP commands: the command table, argument access, errors as Redis words them.

mod connection;
mod keys;
mod server;
mod strings;

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use hashbrown::HashMap;

use super::Client;
use super::frame::Reply;
use super::parse::parse_integer;
use crate::node::Node;
use crate::node::store::StoreError;

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::node) enum After {
    Continue,
    Close,
}

/// The arguments of one request, the command name first, borrowed from the input buffer.
#[derive(Debug, Clone, Copy)]
pub(in crate::node) struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    pub fn new(buf: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Self { buf, ranges }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn get(&self, index: usize) -> &'a [u8] {
        &self.buf[self.ranges[index].clone()]
    }

    /// The arguments from `from` on.
    pub fn from(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let buf = self.buf;
        self.ranges[from.min(self.ranges.len())..]
            .iter()
            .map(move |range| &buf[range.clone()])
    }
}

/// What a command runs with.
pub(super) struct Ctx<'a> {
    pub node: &'a Node,
    pub client: &'a mut Client,
    pub reply: Reply<'a>,
    /// Unix milliseconds, read once per batch of requests.
    pub now: u64,
    pub after: After,
}

/// A command's failure, replied as Redis words it (client libraries match on some of these).
#[derive(Debug)]
pub(super) enum Error {
    Arity(&'static str),
    Syntax,
    NotInteger,
    NotFloat,
    Overflow,
    InvalidExpire(&'static str),
    Store(StoreError),
    Other(Cow<'static, str>),
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl Error {
    fn message(&self) -> Cow<'static, str> {
        match self {
            Self::Arity(name) => {
                format!("ERR wrong number of arguments for '{name}' command").into()
            }
            Self::Syntax => "ERR syntax error".into(),
            Self::NotInteger => "ERR value is not an integer or out of range".into(),
            Self::NotFloat => "ERR value is not a valid float".into(),
            Self::Overflow => "ERR increment or decrement would overflow".into(),
            Self::InvalidExpire(name) => {
                format!("ERR invalid expire time in '{name}' command").into()
            }
            Self::Store(StoreError::TooLarge) => "ERR object too large for cache".into(),
            Self::Store(StoreError::OutOfMemory) => {
                "OOM command not allowed when used memory > 'maxmemory'.".into()
            }
            Self::Other(message) => message.clone(),
        }
    }
}

pub(super) type Outcome = Result<(), Error>;

/// Where a command's keys are, for COMMAND's replies.
#[derive(Debug, Clone, Copy)]
pub(super) enum Keys {
    None,
    First,
    All,
    EveryOther,
}

/// One entry of the command table.
pub(super) struct Command {
    pub name: &'static str,
    /// As Redis counts it: the command name included; negative means "at least".
    pub arity: i32,
    pub keys: Keys,
    pub write: bool,
    pub run: fn(&mut Ctx<'_>, Args<'_>) -> Outcome,
}

static TABLE: LazyLock<HashMap<&'static [u8], &'static Command>> = LazyLock::new(|| {
    [
        connection::COMMANDS,
        server::COMMANDS,
        strings::COMMANDS,
        keys::COMMANDS,
    ]
    .into_iter()
    .flatten()
    .map(|command| (command.name.as_bytes(), command))
    .collect()
});

fn all_commands() -> impl Iterator<Item = &'static Command> {
    [
        connection::COMMANDS,
        server::COMMANDS,
        strings::COMMANDS,
        keys::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut lower = [0u8; 24];
    let lower = lower.get_mut(..name.len())?;
    for (to, from) in lower.iter_mut().zip(name) {
        *to = from.to_ascii_lowercase();
    }
    TABLE.get(&*lower).copied()
}

/// Runs the request in `args`, writing its reply to `output`.
pub(super) fn execute(
    node: &Node,
    client: &mut Client,
    args: Args<'_>,
    output: &mut Vec<u8>,
    now: u64,
) -> After {
    let mut ctx = Ctx {
        node,
        reply: Reply::new(output, client.resp3),
        client,
        now,
        after: After::Continue,
    };
    let name = args.get(0);
    let Some(command) = lookup(name) else {
        ctx.reply.error(&unknown_command(args));
        return After::Continue;
    };
    if !ctx.client.authenticated && !matches!(command.name, "auth" | "hello" | "quit") {
        ctx.reply.error("NOAUTH Authentication required.");
        return After::Continue;
    }
    let arity_ok = match command.arity {
        exact @ 0.. => args.len() == exact as usize,
        at_least => args.len() >= at_least.unsigned_abs() as usize,
    };
    let outcome = if arity_ok {
        (command.run)(&mut ctx, args)
    } else {
        Err(Error::Arity(command.name))
    };
    if let Err(error) = outcome {
        ctx.reply.error(&error.message());
    }
    ctx.after
}

fn unknown_command(args: Args<'_>) -> String {
    let mut message = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(args.get(0))
    );
    for arg in args.from(1).take(20) {
        message.push_str(&format!("'{}' ", String::from_utf8_lossy(arg)));
    }
    message
}

/// An integer argument.
pub(super) fn integer(arg: &[u8]) -> Result<i64, Error> {
    parse_integer(arg).ok_or(Error::NotInteger)
}

/// A float argument, as Redis accepts them (no NaN).
pub(super) fn float(arg: &[u8]) -> Result<f64, Error> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|text| !text.is_empty() && !text.starts_with(char::is_whitespace))
        .and_then(|text| text.parse::<f64>().ok())
        .filter(|value| !value.is_nan())
        .ok_or(Error::NotFloat)
}

/// Whether `arg` is the option `name` (case-insensitive).
pub(super) fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_unique_lowercase_name() {
        let names: Vec<_> = all_commands().map(|c| c.name).collect();
        assert_eq!(TABLE.len(), names.len());
        assert!(
            names
                .iter()
                .all(|n| n.len() <= 24 && *n == n.to_lowercase())
        );
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"nosuchcommand-with-a-long-name").is_none());
    }
}
