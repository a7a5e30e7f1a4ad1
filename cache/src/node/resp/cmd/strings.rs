//! String commands: GET, SET and its variants, counters, APPEND, ranges, MGET/MSET.

use std::borrow::Cow;

use super::keys::{ExpiryOption, expiry_option};
use super::{Args, Command, Ctx, Error, Keys, Outcome, integer, is};
use crate::node::resp::parse::parse_integer;
use crate::node::store::{Entry, Lookup, Write};

pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "get",
        arity: 2,
        keys: Keys::First,
        write: false,
        run: get,
    },
    Command {
        name: "set",
        arity: -3,
        keys: Keys::First,
        write: true,
        run: set,
    },
    Command {
        name: "setex",
        arity: 4,
        keys: Keys::First,
        write: true,
        run: setex,
    },
    Command {
        name: "psetex",
        arity: 4,
        keys: Keys::First,
        write: true,
        run: psetex,
    },
    Command {
        name: "setnx",
        arity: 3,
        keys: Keys::First,
        write: true,
        run: setnx,
    },
    Command {
        name: "getdel",
        arity: 2,
        keys: Keys::First,
        write: true,
        run: getdel,
    },
    Command {
        name: "getex",
        arity: -2,
        keys: Keys::First,
        write: true,
        run: getex,
    },
    Command {
        name: "getset",
        arity: 3,
        keys: Keys::First,
        write: true,
        run: getset,
    },
    Command {
        name: "mget",
        arity: -2,
        keys: Keys::All,
        write: false,
        run: mget,
    },
    Command {
        name: "mset",
        arity: -3,
        keys: Keys::EveryOther,
        write: true,
        run: mset,
    },
    Command {
        name: "msetnx",
        arity: -3,
        keys: Keys::EveryOther,
        write: true,
        run: msetnx,
    },
    Command {
        name: "incr",
        arity: 2,
        keys: Keys::First,
        write: true,
        run: incr,
    },
    Command {
        name: "decr",
        arity: 2,
        keys: Keys::First,
        write: true,
        run: decr,
    },
    Command {
        name: "incrby",
        arity: 3,
        keys: Keys::First,
        write: true,
        run: incrby,
    },
    Command {
        name: "decrby",
        arity: 3,
        keys: Keys::First,
        write: true,
        run: decrby,
    },
    Command {
        name: "incrbyfloat",
        arity: 3,
        keys: Keys::First,
        write: true,
        run: incrbyfloat,
    },
    Command {
        name: "append",
        arity: 3,
        keys: Keys::First,
        write: true,
        run: append,
    },
    Command {
        name: "strlen",
        arity: 2,
        keys: Keys::First,
        write: false,
        run: strlen,
    },
    Command {
        name: "getrange",
        arity: 4,
        keys: Keys::First,
        write: false,
        run: getrange,
    },
    Command {
        name: "setrange",
        arity: 4,
        keys: Keys::First,
        write: true,
        run: setrange,
    },
];

fn get(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let reply = &mut ctx.reply;
    // The value is copied straight from the store into the output buffer, under the shard lock.
    if ctx
        .node
        .store
        .read(args.get(1), ctx.now, |entry| reply.bulk(entry.value))
        .is_none()
    {
        reply.null();
    }
    Ok(())
}

/// A condition on the key's existence (SET NX / XX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Absent,
    Present,
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts-ms | KEEPTTL]`
fn set(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let mut condition = None;
    let mut get = false;
    let mut expiry = None;
    let mut at = 3;
    while at < args.len() {
        let option = args.get(at);
        if let Some(parsed) = expiry_option(ctx.now, args, &mut at, "set", false)? {
            if expiry.replace(parsed).is_some() {
                return Err(Error::Syntax);
            }
            continue;
        }
        if is(option, "nx") || is(option, "xx") {
            let wanted = if is(option, "nx") {
                Condition::Absent
            } else {
                Condition::Present
            };
            if condition
                .replace(wanted)
                .is_some_and(|other| other != wanted)
            {
                return Err(Error::Syntax);
            }
        } else if is(option, "get") {
            get = true;
        } else if is(option, "keepttl") {
            if expiry.replace(ExpiryOption::Keep).is_some() {
                return Err(Error::Syntax);
            }
        } else {
            return Err(Error::Syntax);
        }
        at += 1;
    }
    let (stored, old) = store_string(ctx, args.get(1), args.get(2), condition, expiry, get)?;
    match (get, old) {
        (true, Some(old)) => ctx.reply.bulk(&old),
        (true, None) => ctx.reply.null(),
        (false, _) if stored => ctx.reply.ok(),
        (false, _) => ctx.reply.null(),
    }
    Ok(())
}

/// Stores `value` if `condition` holds; whether it did, and the old value if `get`.
fn store_string(
    ctx: &Ctx<'_>,
    key: &[u8],
    value: &[u8],
    condition: Option<Condition>,
    expiry: Option<ExpiryOption>,
    get: bool,
) -> Result<(bool, Option<Vec<u8>>), Error> {
    Ok(ctx
        .node
        .store
        .update(key, ctx.now, Lookup::Write, |entry| {
            let old = entry.filter(|_| get).map(|entry| entry.value.to_vec());
            let allowed = match condition {
                None => true,
                Some(Condition::Absent) => entry.is_none(),
                Some(Condition::Present) => entry.is_some(),
            };
            if !allowed {
                return (Write::Keep, (false, old));
            }
            let expires_at = match expiry {
                None | Some(ExpiryOption::Persist) => None,
                Some(ExpiryOption::Keep) => entry.and_then(|entry| entry.expires_at),
                Some(ExpiryOption::At(at)) => Some(at),
            };
            let put = Write::Put {
                value: Cow::Borrowed(value),
                flags: 0,
                expires_at,
                cas: None,
                stale: false,
            };
            (put, (true, old))
        })?)
}

fn setex(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    set_with_ttl(ctx, args, 1000, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    set_with_ttl(ctx, args, 1, "psetex")
}

fn set_with_ttl(ctx: &mut Ctx<'_>, args: Args<'_>, unit_ms: i64, name: &'static str) -> Outcome {
    let ttl = integer(args.get(2))?;
    let at = ttl
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(ctx.now as i64))
        .filter(|_| ttl > 0)
        .ok_or(Error::InvalidExpire(name))?;
    let expiry = Some(ExpiryOption::At(at as u64));
    store_string(ctx, args.get(1), args.get(3), None, expiry, false)?;
    ctx.reply.ok();
    Ok(())
}

fn setnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let (stored, _) = store_string(
        ctx,
        args.get(1),
        args.get(2),
        Some(Condition::Absent),
        None,
        false,
    )?;
    ctx.reply.integer(i64::from(stored));
    Ok(())
}

fn getset(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let (_, old) = store_string(ctx, args.get(1), args.get(2), None, None, true)?;
    reply_value(ctx, old);
    Ok(())
}

fn reply_value(ctx: &mut Ctx<'_>, value: Option<Vec<u8>>) {
    match value {
        Some(value) => ctx.reply.bulk(&value),
        None => ctx.reply.null(),
    }
}

fn getdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let reply = &mut ctx.reply;
    let found = ctx
        .node
        .store
        .update(args.get(1), ctx.now, Lookup::Read, |entry| match entry {
            Some(entry) => {
                reply.bulk(entry.value);
                (Write::Remove, true)
            }
            None => (Write::Keep, false),
        })?;
    if !found {
        reply.null();
    }
    Ok(())
}

/// `GETEX key [EX s | PX ms | EXAT ts | PXAT ts-ms | PERSIST]`
fn getex(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let mut expiry = None;
    let mut at = 2;
    while at < args.len() {
        if let Some(parsed) = expiry_option(ctx.now, args, &mut at, "getex", true)? {
            if expiry.replace(parsed).is_some() {
                return Err(Error::Syntax);
            }
        } else {
            return Err(Error::Syntax);
        }
    }
    let reply = &mut ctx.reply;
    let found = ctx
        .node
        .store
        .update(args.get(1), ctx.now, Lookup::Read, |entry| match entry {
            Some(entry) => {
                reply.bulk(entry.value);
                let write = match expiry {
                    None | Some(ExpiryOption::Keep) => Write::Keep,
                    Some(ExpiryOption::Persist) => Write::Expire(None),
                    Some(ExpiryOption::At(at)) => Write::Expire(Some(at)),
                };
                (write, true)
            }
            None => (Write::Keep, false),
        })?;
    if !found {
        reply.null();
    }
    Ok(())
}

fn mget(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    ctx.reply.array(args.len() - 1);
    for key in args.from(1) {
        let reply = &mut ctx.reply;
        if ctx
            .node
            .store
            .read(key, ctx.now, |entry| reply.bulk(entry.value))
            .is_none()
        {
            reply.null();
        }
    }
    Ok(())
}

/// A key and its value.
type Pair<'a> = (&'a [u8], &'a [u8]);

fn pairs<'a>(args: Args<'a>, name: &'static str) -> Result<Vec<Pair<'a>>, Error> {
    if args.len().is_multiple_of(2) {
        return Err(Error::Arity(name));
    }
    let mut rest = args.from(1);
    let mut pairs = Vec::with_capacity(args.len() / 2);
    while let (Some(key), Some(value)) = (rest.next(), rest.next()) {
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn mset(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    ctx.node
        .store
        .set_many(&pairs(args, "mset")?, false, ctx.now)?;
    ctx.reply.ok();
    Ok(())
}

/// Sets all the keys if none exists, atomically (see [`crate::node::store::Store::set_many`]).
fn msetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let stored = ctx
        .node
        .store
        .set_many(&pairs(args, "msetnx")?, true, ctx.now)?;
    ctx.reply.integer(i64::from(stored));
    Ok(())
}

fn incr(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    add_integer(ctx, args.get(1), 1)
}

fn decr(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    add_integer(ctx, args.get(1), -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    add_integer(ctx, args.get(1), integer(args.get(2))?)
}

fn decrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let delta = integer(args.get(2))?;
    add_integer(
        ctx,
        args.get(1),
        delta
            .checked_neg()
            .ok_or_else(|| Error::Other("ERR decrement would overflow".into()))?,
    )
}

/// Replaces the item's value keeping its flags and TTL, as INCR and APPEND do.
fn rewrite(entry: Option<Entry<'_>>, value: Vec<u8>) -> Write<'static> {
    Write::Put {
        value: Cow::Owned(value),
        flags: entry.map_or(0, |entry| entry.flags),
        expires_at: entry.and_then(|entry| entry.expires_at),
        cas: None,
        stale: false,
    }
}

fn add_integer(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> Outcome {
    let result = ctx
        .node
        .store
        .update(key, ctx.now, Lookup::Write, |entry| {
            let current = match entry {
                Some(entry) => match parse_integer(entry.value) {
                    Some(current) => current,
                    None => return (Write::Keep, Err(Error::NotInteger)),
                },
                None => 0,
            };
            match current.checked_add(delta) {
                Some(new) => {
                    let text = itoa::Buffer::new().format(new).as_bytes().to_vec();
                    (rewrite(entry, text), Ok(new))
                }
                None => (Write::Keep, Err(Error::Overflow)),
            }
        })??;
    ctx.reply.integer(result);
    Ok(())
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let delta = super::float(args.get(2))?;
    let result = ctx
        .node
        .store
        .update(args.get(1), ctx.now, Lookup::Write, |entry| {
            let current = match entry.map(|entry| super::float(entry.value)) {
                Some(Ok(current)) => current,
                Some(Err(error)) => return (Write::Keep, Err(error)),
                None => 0.0,
            };
            let new = current + delta;
            if !new.is_finite() {
                return (
                    Write::Keep,
                    Err(Error::Other(
                        "ERR increment would produce NaN or Infinity".into(),
                    )),
                );
            }
            let text = new.to_string().into_bytes();
            (rewrite(entry, text.clone()), Ok(text))
        })??;
    ctx.reply.bulk(&result);
    Ok(())
}

fn append(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let suffix = args.get(2);
    let len = ctx
        .node
        .store
        .update(args.get(1), ctx.now, Lookup::Write, |entry| {
            let mut value = entry.map_or_else(Vec::new, |entry| {
                let mut value = Vec::with_capacity(entry.value.len() + suffix.len());
                value.extend_from_slice(entry.value);
                value
            });
            value.extend_from_slice(suffix);
            let len = value.len();
            (rewrite(entry, value), len)
        })?;
    ctx.reply.integer(len as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let len = ctx
        .node
        .store
        .read(args.get(1), ctx.now, |entry| entry.value.len())
        .unwrap_or(0);
    ctx.reply.integer(len as i64);
    Ok(())
}

fn getrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let (start, end) = (integer(args.get(2))?, integer(args.get(3))?);
    let reply = &mut ctx.reply;
    let found = ctx.node.store.read(args.get(1), ctx.now, |entry| {
        reply.bulk(byte_range(entry.value, start, end));
    });
    if found.is_none() {
        reply.bulk(b"");
    }
    Ok(())
}

/// `value[start..=end]` with Redis's negative-index rules.
fn byte_range(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = value.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return b"";
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    if start > end {
        return b"";
    }
    &value[start as usize..=end as usize]
}

fn setrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let offset = integer(args.get(2))?;
    if offset < 0 {
        return Err(Error::Other("ERR offset is out of range".into()));
    }
    let offset = offset as usize;
    let patch = args.get(3);
    if offset.saturating_add(patch.len()) > ctx.node.store.max_item_size() {
        return Err(Error::Store(crate::node::store::StoreError::TooLarge));
    }
    let len = ctx
        .node
        .store
        .update(args.get(1), ctx.now, Lookup::Write, |entry| {
            let current = entry.map_or(&[][..], |entry| entry.value);
            if patch.is_empty() {
                return (Write::Keep, current.len());
            }
            let mut value = current.to_vec();
            if value.len() < offset + patch.len() {
                value.resize(offset + patch.len(), 0);
            }
            value[offset..offset + patch.len()].copy_from_slice(patch);
            let len = value.len();
            (rewrite(entry, value), len)
        })?;
    ctx.reply.integer(len as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_follow_redis() {
        let value = b"This is a string";
        assert_eq!(byte_range(value, 0, 3), b"This");
        assert_eq!(byte_range(value, -3, -1), b"ing");
        assert_eq!(byte_range(value, 0, -1), value);
        assert_eq!(byte_range(value, 10, 100), b"string");
        assert_eq!(byte_range(value, 5, 3), b"");
        assert_eq!(byte_range(value, -1, -5), b"");
        assert_eq!(byte_range(b"", 0, -1), b"");
    }
}
