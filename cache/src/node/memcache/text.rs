//! The classic memcached text commands.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use super::{Ctx, Step, data_block, expiry, number, valid_key};
use crate::node::store::{Lookup, StoreError, Write};

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format";

/// The memcached version this node's protocol matches (clients use it to detect meta command
/// support), and the node's own.
const VERSION_LINE: &str = concat!("VERSION 1.6.0-leanstack-", env!("CARGO_PKG_VERSION"));

/// The most tokens a non-`get` command may have (memcached's limit).
const MAX_TOKENS: usize = 8;

pub(super) fn execute<'a>(
    ctx: &mut Ctx<'_>,
    command: &[u8],
    mut tokens: impl Iterator<Item = &'a [u8]>,
    after: &[u8],
) -> Step {
    match command {
        b"get" => retrieve(ctx, tokens, false, None),
        b"gets" => retrieve(ctx, tokens, true, None),
        b"gat" | b"gats" => match tokens.next().and_then(number::<i64>) {
            Some(exptime) => retrieve(ctx, tokens, command == b"gats", Some(exptime)),
            None => error(ctx, BAD_FORMAT),
        },
        _ => {
            let mut args = [&b""[..]; MAX_TOKENS];
            let mut count = 0;
            for token in tokens {
                if count == MAX_TOKENS {
                    return error(ctx, BAD_FORMAT);
                }
                args[count] = token;
                count += 1;
            }
            let args = &args[..count];
            match command {
                b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                    storage(ctx, command, args, after)
                }
                b"delete" => delete(ctx, args),
                b"incr" | b"decr" => arithmetic(ctx, command == b"incr", args),
                b"touch" => touch(ctx, args),
                b"flush_all" => flush_all(ctx, args),
                // Like memcached 1.6, whose meta protocol this node speaks: extra arguments
                // are ignored.
                b"version" => {
                    ctx.line(VERSION_LINE.as_bytes());
                    done()
                }
                // Verbosity only affects memcached's own logging; the level is accepted and
                // ignored (this node logs through RUST_LOG). As in memcached 1.6, `noreply`
                // alone is silent.
                b"verbosity" => match args {
                    [b"noreply"] | [_, b"noreply"] => done(),
                    [_] | [_, _] => reply(ctx, false, b"OK"),
                    _ => error(ctx, b"ERROR"),
                },
                b"stats" => stats(ctx, args),
                b"quit" => Step::Close,
                _ => error(ctx, b"ERROR"),
            }
        }
    }
}

fn done() -> Step {
    Step::Done { data: 0 }
}

fn error(ctx: &mut Ctx<'_>, message: &[u8]) -> Step {
    ctx.line(message);
    done()
}

fn reply(ctx: &mut Ctx<'_>, noreply: bool, message: &[u8]) -> Step {
    if !noreply {
        ctx.line(message);
    }
    done()
}

/// `get|gets <key>*`, `gat|gats <exptime> <key>*`
fn retrieve<'a>(
    ctx: &mut Ctx<'_>,
    keys: impl Iterator<Item = &'a [u8]>,
    with_cas: bool,
    touch: Option<i64>,
) -> Step {
    let now = ctx.now;
    let new_expiry = touch.map(|exptime| expiry(exptime, now));
    let mut any = false;
    for key in keys {
        any = true;
        if !valid_key(key) {
            return error(ctx, BAD_FORMAT);
        }
        let out = &mut *ctx.out;
        let _ = ctx.node.store.update(key, now, Lookup::Read, |entry| {
            let Some(entry) = entry else {
                return (Write::Keep, ());
            };
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(key);
            out.push(b' ');
            out.extend_from_slice(itoa::Buffer::new().format(entry.flags).as_bytes());
            out.push(b' ');
            out.extend_from_slice(itoa::Buffer::new().format(entry.value.len()).as_bytes());
            if with_cas {
                out.push(b' ');
                out.extend_from_slice(itoa::Buffer::new().format(entry.cas).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(entry.value);
            out.extend_from_slice(b"\r\n");
            match new_expiry {
                Some(expires_at) => (Write::Expire(expires_at), ()),
                None => (Write::Keep, ()),
            }
        });
    }
    if !any {
        return error(ctx, b"ERROR");
    }
    ctx.line(b"END");
    done()
}

/// `<set|add|replace|append|prepend> <key> <flags> <exptime> <bytes> [noreply]`, and
/// `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]`.
fn storage(ctx: &mut Ctx<'_>, command: &[u8], args: &[&[u8]], after: &[u8]) -> Step {
    let is_cas = command == b"cas";
    let fixed = if is_cas { 5 } else { 4 };
    // As memcached: a last token other than `noreply` is ignored.
    let noreply = match args.len() {
        n if n == fixed => false,
        n if n == fixed + 1 => args[fixed] == b"noreply",
        _ => return error(ctx, BAD_FORMAT),
    };
    let (Some(flags), Some(exptime), Some(len)) = (
        number::<u32>(args[1]),
        number::<i64>(args[2]),
        number::<i64>(args[3]),
    ) else {
        return error(ctx, BAD_FORMAT);
    };
    let compare = if is_cas {
        match number::<u64>(args[4]) {
            Some(cas) => Some(cas),
            None => return error(ctx, BAD_FORMAT),
        }
    } else {
        None
    };
    let key = args[0];
    if !valid_key(key) || len < 0 {
        return error(ctx, BAD_FORMAT);
    }
    let len = len as usize;
    if key.len().saturating_add(len) > ctx.node.store.max_item_size() {
        // As memcached does: a failed set must not leave the old value to be read as current.
        if command == b"set" {
            ctx.node.store.remove(key, ctx.now);
        }
        ctx.line(b"SERVER_ERROR object too large for cache");
        return Step::Skip {
            data: len.saturating_add(2),
        };
    }
    let (data, used) = match data_block(after, len) {
        None => return Step::NeedData,
        Some(Err(used)) => {
            ctx.line(b"CLIENT_ERROR bad data chunk");
            return Step::Done { data: used };
        }
        Some(Ok(block)) => block,
    };
    let expires_at = expiry(exptime, ctx.now);
    let outcome = ctx.node.store.update(key, ctx.now, Lookup::Write, |entry| {
        let put = |value| Write::Put {
            value,
            flags,
            expires_at,
            cas: None,
            stale: false,
        };
        match (command, entry) {
            (b"set", _) | (b"add", None) => (put(Cow::Borrowed(data)), &b"STORED"[..]),
            (b"replace", Some(_)) => (put(Cow::Borrowed(data)), b"STORED"),
            (b"cas", None) => (Write::Keep, b"NOT_FOUND"),
            (b"cas", Some(entry)) if Some(entry.cas) != compare => (Write::Keep, b"EXISTS"),
            (b"cas", Some(_)) => (put(Cow::Borrowed(data)), b"STORED"),
            (b"append" | b"prepend", Some(entry)) => {
                let mut value = Vec::with_capacity(entry.value.len() + data.len());
                let (first, second) = if command == b"append" {
                    (entry.value, data)
                } else {
                    (data, entry.value)
                };
                value.extend_from_slice(first);
                value.extend_from_slice(second);
                // Appending keeps the item's flags and exptime.
                let write = Write::Put {
                    value: Cow::Owned(value),
                    flags: entry.flags,
                    expires_at: entry.expires_at,
                    cas: None,
                    stale: false,
                };
                (write, b"STORED")
            }
            _ => (Write::Keep, b"NOT_STORED"),
        }
    });
    match outcome {
        Ok(message) if !noreply => ctx.line(message),
        Ok(_) => {}
        Err(error) => ctx.line(server_error(error)),
    }
    Step::Done { data: used }
}

pub(super) fn server_error(error: StoreError) -> &'static [u8] {
    match error {
        StoreError::TooLarge => b"SERVER_ERROR object too large for cache",
        StoreError::OutOfMemory => b"SERVER_ERROR out of memory storing object",
    }
}

/// `delete <key> [0] [noreply]`
fn delete(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Step {
    let (key, noreply) = match args {
        [key] | [key, b"0"] => (key, false),
        [key, b"noreply"] | [key, b"0", b"noreply"] => (key, true),
        _ => {
            return error(
                ctx,
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
            );
        }
    };
    if !valid_key(key) {
        return error(ctx, BAD_FORMAT);
    }
    let deleted = ctx.node.store.remove(key, ctx.now);
    reply(
        ctx,
        noreply,
        if deleted { b"DELETED" } else { b"NOT_FOUND" },
    )
}

/// `incr|decr <key> <value> [noreply]`: unsigned 64-bit; incr wraps, decr stops at 0.
fn arithmetic(ctx: &mut Ctx<'_>, increment: bool, args: &[&[u8]]) -> Step {
    let (key, delta, noreply) = match args {
        [key, delta] => (key, delta, false),
        [key, delta, b"noreply"] => (key, delta, true),
        _ => return error(ctx, BAD_FORMAT),
    };
    if !valid_key(key) {
        return error(ctx, BAD_FORMAT);
    }
    let Some(delta) = number::<u64>(delta) else {
        return error(ctx, b"CLIENT_ERROR invalid numeric delta argument");
    };
    match apply_delta(ctx, key, increment, delta, None) {
        Ok(Some(value)) => reply(ctx, noreply, itoa::Buffer::new().format(value).as_bytes()),
        Ok(None) => reply(ctx, noreply, b"NOT_FOUND"),
        Err(message) => error(ctx, message),
    }
}

/// Adds `delta` to the number stored under `key`, keeping its flags and TTL, giving it `cas`
/// (or a new CAS); `Ok(None)` when the key is missing.
pub(super) fn apply_delta(
    ctx: &Ctx<'_>,
    key: &[u8],
    increment: bool,
    delta: u64,
    cas: Option<u64>,
) -> Result<Option<u64>, &'static [u8]> {
    ctx.node
        .store
        .update(key, ctx.now, Lookup::Write, |entry| {
            let Some(entry) = entry else {
                return (Write::Keep, Ok(None));
            };
            let Some(current) = number::<u64>(entry.value) else {
                return (
                    Write::Keep,
                    Err(&b"CLIENT_ERROR cannot increment or decrement non-numeric value"[..]),
                );
            };
            let new = if increment {
                current.wrapping_add(delta)
            } else {
                current.saturating_sub(delta)
            };
            let write = Write::Put {
                value: Cow::Owned(itoa::Buffer::new().format(new).as_bytes().to_vec()),
                flags: entry.flags,
                expires_at: entry.expires_at,
                cas,
                stale: false,
            };
            (write, Ok(Some(new)))
        })
        .unwrap_or_else(|error| Err(server_error(error)))
}

/// `touch <key> <exptime> [noreply]`
fn touch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Step {
    let (key, exptime, noreply) = match args {
        [key, exptime] => (key, exptime, false),
        [key, exptime, b"noreply"] => (key, exptime, true),
        _ => return error(ctx, BAD_FORMAT),
    };
    let Some(exptime) = number::<i64>(exptime).filter(|_| valid_key(key)) else {
        return error(ctx, BAD_FORMAT);
    };
    let expires_at = expiry(exptime, ctx.now);
    let touched = ctx
        .node
        .store
        .update(key, ctx.now, Lookup::Write, |entry| match entry {
            Some(_) => (Write::Expire(expires_at), true),
            None => (Write::Keep, false),
        })
        .unwrap_or(false);
    reply(
        ctx,
        noreply,
        if touched { b"TOUCHED" } else { b"NOT_FOUND" },
    )
}

/// `flush_all [delay] [noreply]`
fn flush_all(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Step {
    let (delay, noreply) = match args {
        [] => (Some(0), false),
        [b"noreply"] => (Some(0), true),
        [delay] => (number::<i64>(delay), false),
        [delay, b"noreply"] => (number::<i64>(delay), true),
        _ => (None, false),
    };
    match delay {
        Some(delay) if delay > 0 => match expiry(delay, ctx.now) {
            Some(at) => ctx.node.store.flush_later(at),
            None => ctx.node.store.flush(),
        },
        Some(_) => ctx.node.store.flush(),
        None => return error(ctx, BAD_FORMAT),
    }
    reply(ctx, noreply, b"OK")
}

/// `stats`, `stats settings`, `stats items`, `stats slabs`.
fn stats(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Step {
    let node = ctx.node;
    let store = node.store.stats();
    let clients = &node.clients;
    let fields: Vec<(&str, String)> = match args {
        [] => vec![
            ("pid", std::process::id().to_string()),
            ("uptime", node.uptime_secs().to_string()),
            ("time", (ctx.now / 1000).to_string()),
            ("version", super::super::VERSION.to_string()),
            ("pointer_size", "64".into()),
            (
                "curr_connections",
                clients.connected.load(Ordering::Relaxed).to_string(),
            ),
            (
                "total_connections",
                clients.total.load(Ordering::Relaxed).to_string(),
            ),
            (
                "rejected_connections",
                clients.rejected.load(Ordering::Relaxed).to_string(),
            ),
            ("cmd_get", (store.hits + store.misses).to_string()),
            ("cmd_set", store.total_items.to_string()),
            ("get_hits", store.hits.to_string()),
            ("get_misses", store.misses.to_string()),
            ("get_expired", store.expired.to_string()),
            ("curr_items", store.items.to_string()),
            ("total_items", store.total_items.to_string()),
            ("bytes", store.bytes.to_string()),
            ("limit_maxbytes", node.store.max_memory().to_string()),
            ("evictions", store.evictions.to_string()),
            ("expired_unfetched", store.expired.to_string()),
            (
                "threads",
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .to_string(),
            ),
        ],
        [b"settings"] => vec![
            ("maxbytes", node.store.max_memory().to_string()),
            ("maxconns", node.config.max_connections.to_string()),
            ("item_size_max", node.store.max_item_size().to_string()),
            ("evictions", "on".into()),
            ("eviction_policy", "s3-fifo".into()),
            (
                "idle_timeout",
                node.config
                    .idle_timeout
                    .map_or(0, |idle| idle.as_secs())
                    .to_string(),
            ),
        ],
        // One "slab class" holds every item: the store allocates each item to its size.
        [b"items"] if store.items > 0 => vec![
            ("items:1:number", store.items.to_string()),
            ("items:1:evicted", store.evictions.to_string()),
            ("items:1:expired_unfetched", store.expired.to_string()),
        ],
        [b"items"] => vec![],
        [b"slabs"] => vec![
            ("active_slabs", u64::from(store.items > 0).to_string()),
            ("total_malloced", store.bytes.to_string()),
        ],
        _ => return error(ctx, b"ERROR"),
    };
    for (name, value) in fields {
        ctx.line(format!("STAT {name} {value}").as_bytes());
    }
    ctx.line(b"END");
    done()
}
