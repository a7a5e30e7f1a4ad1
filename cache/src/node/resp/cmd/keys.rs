//! Key commands: DEL, EXISTS, TOUCH, the EXPIRE family, TTL, PERSIST, TYPE, SCAN, KEYS.

use super::{Args, Command, Ctx, Error, Keys, Outcome, integer, is};
use crate::node::glob;
use crate::node::store::{Lookup, Write};

pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "del",
        arity: -2,
        keys: Keys::All,
        write: true,
        run: del,
    },
    Command {
        name: "unlink",
        arity: -2,
        keys: Keys::All,
        write: true,
        run: del,
    },
    Command {
        name: "exists",
        arity: -2,
        keys: Keys::All,
        write: false,
        run: exists,
    },
    Command {
        name: "touch",
        arity: -2,
        keys: Keys::All,
        write: false,
        run: touch,
    },
    Command {
        name: "expire",
        arity: -3,
        keys: Keys::First,
        write: true,
        run: expire,
    },
    Command {
        name: "pexpire",
        arity: -3,
        keys: Keys::First,
        write: true,
        run: pexpire,
    },
    Command {
        name: "expireat",
        arity: -3,
        keys: Keys::First,
        write: true,
        run: expireat,
    },
    Command {
        name: "pexpireat",
        arity: -3,
        keys: Keys::First,
        write: true,
        run: pexpireat,
    },
    Command {
        name: "ttl",
        arity: 2,
        keys: Keys::First,
        write: false,
        run: ttl,
    },
    Command {
        name: "pttl",
        arity: 2,
        keys: Keys::First,
        write: false,
        run: pttl,
    },
    Command {
        name: "persist",
        arity: 2,
        keys: Keys::First,
        write: true,
        run: persist,
    },
    Command {
        name: "type",
        arity: 2,
        keys: Keys::First,
        write: false,
        run: type_of,
    },
    Command {
        name: "scan",
        arity: -2,
        keys: Keys::None,
        write: false,
        run: scan,
    },
    Command {
        name: "keys",
        arity: 2,
        keys: Keys::None,
        write: false,
        run: keys,
    },
];

/// What a command's expiry option asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExpiryOption {
    /// Expire at this Unix millisecond.
    At(u64),
    /// Keep the current TTL (SET KEEPTTL).
    Keep,
    /// Remove the TTL (GETEX PERSIST).
    Persist,
}

/// Parses `EX s | PX ms | EXAT ts | PXAT ts-ms` (and `PERSIST` when allowed) at `args[*at]`,
/// moving `at` past it; `None` when the argument is none of these.
pub(super) fn expiry_option(
    now: u64,
    args: Args<'_>,
    at: &mut usize,
    command: &'static str,
    allow_persist: bool,
) -> Result<Option<ExpiryOption>, Error> {
    let option = args.get(*at);
    if allow_persist && is(option, "persist") {
        *at += 1;
        return Ok(Some(ExpiryOption::Persist));
    }
    let (unit_ms, absolute) = if is(option, "ex") {
        (1000, false)
    } else if is(option, "px") {
        (1, false)
    } else if is(option, "exat") {
        (1000, true)
    } else if is(option, "pxat") {
        (1, true)
    } else {
        return Ok(None);
    };
    if *at + 1 >= args.len() {
        return Err(Error::Syntax);
    }
    let amount = integer(args.get(*at + 1))?;
    if amount <= 0 {
        return Err(Error::InvalidExpire(command));
    }
    let when = deadline(now, amount, unit_ms, absolute).ok_or(Error::InvalidExpire(command))?;
    *at += 2;
    Ok(Some(ExpiryOption::At(when.max(0) as u64)))
}

/// The Unix millisecond an expiry argument names; `None` on overflow.
fn deadline(now: u64, amount: i64, unit_ms: i64, absolute: bool) -> Option<i64> {
    let ms = amount.checked_mul(unit_ms)?;
    if absolute {
        Some(ms)
    } else {
        ms.checked_add(now as i64)
    }
}

fn del(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let removed = args
        .from(1)
        .filter(|key| ctx.node.store.remove(key, ctx.now))
        .count();
    ctx.reply.integer(removed as i64);
    Ok(())
}

fn exists(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let found = args
        .from(1)
        .filter(|key| ctx.node.store.contains(key, ctx.now))
        .count();
    ctx.reply.integer(found as i64);
    Ok(())
}

/// Counts the keys that exist; looking them up is what marks them as used for eviction.
fn touch(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    exists(ctx, args)
}

fn expire(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    set_expiry(ctx, args, 1000, false, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    set_expiry(ctx, args, 1, false, "pexpire")
}

fn expireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    set_expiry(ctx, args, 1000, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    set_expiry(ctx, args, 1, true, "pexpireat")
}

/// `EXPIRE key time [NX | XX | GT | LT]` and its variants.
fn set_expiry(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    unit_ms: i64,
    absolute: bool,
    command: &'static str,
) -> Outcome {
    let amount = integer(args.get(2))?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in args.from(3) {
        if is(option, "nx") {
            nx = true;
        } else if is(option, "xx") {
            xx = true;
        } else if is(option, "gt") {
            gt = true;
        } else if is(option, "lt") {
            lt = true;
        } else {
            return Err(Error::Other(
                format!("ERR Unsupported option {}", String::from_utf8_lossy(option)).into(),
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Error::Other(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if gt && lt {
        return Err(Error::Other(
            "ERR GT and LT options at the same time are not compatible".into(),
        ));
    }
    let when = deadline(ctx.now, amount, unit_ms, absolute).ok_or(Error::InvalidExpire(command))?;
    let now = ctx.now;
    let changed = ctx
        .node
        .store
        .update(args.get(1), now, Lookup::Write, |entry| {
            let Some(entry) = entry else {
                return (Write::Keep, false);
            };
            // A key without a TTL counts as expiring never, i.e. later than any time.
            let allowed = match entry.expires_at {
                Some(current) => {
                    let current = current as i64;
                    !(nx || (gt && when <= current) || (lt && when >= current))
                }
                None => !xx && !gt,
            };
            if !allowed {
                (Write::Keep, false)
            } else if when <= now as i64 {
                (Write::Remove, true)
            } else {
                (Write::Expire(Some(when as u64)), true)
            }
        })
        .unwrap_or(false);
    ctx.reply.integer(i64::from(changed));
    Ok(())
}

/// -2 for a missing key, -1 for one without a TTL, else the milliseconds left.
fn remaining_ms(ctx: &Ctx<'_>, key: &[u8]) -> i64 {
    let now = ctx.now;
    ctx.node
        .store
        .update(key, now, Lookup::Write, |entry| {
            let ttl = match entry {
                None => -2,
                Some(entry) => entry
                    .expires_at
                    .map_or(-1, |at| at.saturating_sub(now) as i64),
            };
            (Write::Keep, ttl)
        })
        .unwrap_or(-2)
}

fn ttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let ms = remaining_ms(ctx, args.get(1));
    ctx.reply
        .integer(if ms < 0 { ms } else { (ms + 500) / 1000 });
    Ok(())
}

fn pttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let ms = remaining_ms(ctx, args.get(1));
    ctx.reply.integer(ms);
    Ok(())
}

fn persist(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let changed = ctx
        .node
        .store
        .update(args.get(1), ctx.now, Lookup::Write, |entry| {
            match entry.and_then(|entry| entry.expires_at) {
                Some(_) => (Write::Expire(None), true),
                None => (Write::Keep, false),
            }
        })
        .unwrap_or(false);
    ctx.reply.integer(i64::from(changed));
    Ok(())
}

/// Every value is a string: the node is a cache, not a data-structure server.
fn type_of(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let exists = ctx.node.store.contains(args.get(1), ctx.now);
    ctx.reply.simple(if exists { "string" } else { "none" });
    Ok(())
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
fn scan(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let cursor = std::str::from_utf8(args.get(1))
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| Error::Other("ERR invalid cursor".into()))?;
    let mut pattern = None;
    let mut count = 10;
    let mut only_strings = true;
    let mut at = 2;
    while at < args.len() {
        let option = args.get(at);
        if at + 1 >= args.len() {
            return Err(Error::Syntax);
        }
        let value = args.get(at + 1);
        if is(option, "match") {
            pattern = Some(value);
        } else if is(option, "count") {
            count = usize::try_from(integer(value)?)
                .ok()
                .filter(|&count| count >= 1)
                .ok_or(Error::Syntax)?;
        } else if is(option, "type") {
            only_strings = is(value, "string");
        } else {
            return Err(Error::Syntax);
        }
        at += 2;
    }
    let mut found = Vec::new();
    let next = ctx.node.store.scan(cursor, count, ctx.now, |key| {
        if only_strings && pattern.is_none_or(|pattern| glob::matches(pattern, key)) {
            found.push(key.to_vec());
        }
    });
    ctx.reply.array(2);
    ctx.reply.bulk(next.to_string().as_bytes());
    ctx.reply.array(found.len());
    for key in found {
        ctx.reply.bulk(&key);
    }
    Ok(())
}

fn keys(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let pattern = args.get(1);
    let mut found = Vec::new();
    let mut cursor = 0;
    loop {
        cursor = ctx.node.store.scan(cursor, 4096, ctx.now, |key| {
            if glob::matches(pattern, key) {
                found.push(key.to_vec());
            }
        });
        if cursor == 0 {
            break;
        }
    }
    ctx.reply.array(found.len());
    for key in found {
        ctx.reply.bulk(&key);
    }
    Ok(())
}
