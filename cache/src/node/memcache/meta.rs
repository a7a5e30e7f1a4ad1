//! The meta commands: `mg` (get), `ms` (set), `md` (delete), `ma` (arithmetic), `mn` (no-op)
//! and `me` (debug), each a key followed by one-letter flags, some with a token (`T30`, `O123`).
//!
//! Return flags are written in the order the request gave them, then `Z`/`X`/`W` (see [`get`]),
//! in memcached's order. `E` (client-chosen CAS) works on `ms`, `md` and `ma`.
//! `u` (don't bump) is accepted, but every read still counts for eviction and for `h`.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::text::{apply_delta, server_error};
use super::{Ctx, MAX_KEY, Step, data_block, expiry, number, valid_key};
use crate::node::store::{Entry, Lookup, Write};

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format";
const INVALID_FLAG: &[u8] = b"CLIENT_ERROR invalid flag";

/// The most flags one request may carry.
const MAX_FLAGS: usize = 24;

/// A request's flags: each a letter and the token glued to it (empty for most).
struct Flags<'a> {
    list: Vec<(u8, &'a [u8])>,
}

impl<'a> Flags<'a> {
    fn parse(
        tokens: impl Iterator<Item = &'a [u8]>,
        allowed: &[u8],
    ) -> Result<Self, &'static [u8]> {
        let mut list: Vec<(u8, &[u8])> = Vec::new();
        for token in tokens {
            let (&flag, value) = token.split_first().ok_or(BAD_FORMAT)?;
            if !allowed.contains(&flag) {
                return Err(INVALID_FLAG);
            }
            if list.iter().any(|(seen, _)| *seen == flag) {
                return Err(b"CLIENT_ERROR duplicate flag");
            }
            if list.len() == MAX_FLAGS {
                return Err(BAD_FORMAT);
            }
            list.push((flag, value));
        }
        Ok(Self { list })
    }

    fn has(&self, flag: u8) -> bool {
        self.list.iter().any(|(seen, _)| *seen == flag)
    }

    fn token(&self, flag: u8) -> Option<&'a [u8]> {
        self.list
            .iter()
            .find(|(seen, _)| *seen == flag)
            .map(|(_, value)| *value)
    }

    /// The numeric token of `flag`: `Ok(None)` if the flag is absent, `Err` if it is malformed.
    fn number<T: std::str::FromStr>(&self, flag: u8) -> Result<Option<T>, &'static [u8]> {
        self.token(flag)
            .map(|value| number(value).ok_or(BAD_FORMAT))
            .transpose()
    }
}

/// The key of a meta request: as sent (for the `k` return flag) and as stored (decoded when
/// the `b` flag says it is base64).
struct Key<'a> {
    sent: &'a [u8],
    stored: Cow<'a, [u8]>,
}

fn key<'a>(token: Option<&'a [u8]>, flags: &Flags<'_>) -> Result<Key<'a>, &'static [u8]> {
    let sent = token.ok_or(BAD_FORMAT)?;
    let stored = if flags.has(b'b') {
        let decoded = BASE64
            .decode(sent)
            .map_err(|_| &b"CLIENT_ERROR error decoding key"[..])?;
        if decoded.is_empty() || decoded.len() > MAX_KEY {
            return Err(BAD_FORMAT);
        }
        Cow::Owned(decoded)
    } else if valid_key(sent) {
        Cow::Borrowed(sent)
    } else {
        return Err(BAD_FORMAT);
    };
    Ok(Key { sent, stored })
}

pub(super) fn execute<'a>(
    ctx: &mut Ctx<'_>,
    command: &[u8],
    mut tokens: impl Iterator<Item = &'a [u8]>,
    after: &[u8],
) -> Step {
    let result = match command {
        b"mn" => {
            ctx.line(b"MN");
            Ok(Step::Done { data: 0 })
        }
        b"mg" => get(ctx, tokens),
        b"ms" => {
            let key_token = tokens.next();
            let len = tokens.next();
            set(ctx, key_token, len, tokens, after)
        }
        b"md" => delete(ctx, tokens),
        b"ma" => arithmetic(ctx, tokens),
        b"me" => debug(ctx, tokens),
        _ => Err(&b"ERROR"[..]),
    };
    result.unwrap_or_else(|message| {
        ctx.line(message);
        Step::Done { data: 0 }
    })
}

/// What the return flags report about an item.
struct Item {
    cas: u64,
    flags: u32,
    size: usize,
    /// Seconds left, -1 for none.
    ttl: i64,
    fetched: bool,
    idle_secs: u64,
    /// This reader won the right to recompute the item (`W`).
    win: bool,
    /// The item is stale (`X`).
    stale: bool,
    /// Another reader already won (`Z`).
    win_sent: bool,
}

impl Item {
    /// The item's return flags, without `W`/`X`/`Z`: those are mg's alone (memcached sends
    /// them with nothing else), and [`get`] sets them.
    fn of(entry: &Entry<'_>, now: u64) -> Self {
        Self {
            cas: entry.cas,
            flags: entry.flags,
            size: entry.value.len(),
            ttl: ttl_secs(entry.expires_at, now),
            fetched: entry.fetched,
            idle_secs: (now / 1000).saturating_sub(entry.last_access),
            win: false,
            stale: false,
            win_sent: false,
        }
    }
}

fn ttl_secs(expires_at: Option<u64>, now: u64) -> i64 {
    expires_at.map_or(-1, |at| at.saturating_sub(now).div_ceil(1000) as i64)
}

/// Writes ` <flag><value>` for each requested return flag, in request order.
fn return_flags(out: &mut Vec<u8>, flags: &Flags<'_>, key: &Key<'_>, item: Option<&Item>) {
    let number = |out: &mut Vec<u8>, flag: u8, value: i64| {
        out.push(b' ');
        out.push(flag);
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    };
    for &(flag, token) in &flags.list {
        match (flag, item) {
            (b'O', _) => {
                out.push(b' ');
                out.push(b'O');
                out.extend_from_slice(token);
            }
            (b'k', _) => {
                out.extend_from_slice(b" k");
                out.extend_from_slice(key.sent);
            }
            (b'b', _) if flags.has(b'k') => out.extend_from_slice(b" b"),
            (b'c', Some(item)) => {
                out.extend_from_slice(b" c");
                out.extend_from_slice(itoa::Buffer::new().format(item.cas).as_bytes());
            }
            (b'f', Some(item)) => number(out, b'f', i64::from(item.flags)),
            (b's', Some(item)) => number(out, b's', item.size as i64),
            (b't', Some(item)) => number(out, b't', item.ttl),
            (b'h', Some(item)) => number(out, b'h', i64::from(item.fetched)),
            (b'l', Some(item)) => number(out, b'l', item.idle_secs as i64),
            _ => {}
        }
    }
    if let Some(item) = item {
        for (set, flag) in [
            (item.win_sent, &b" Z"[..]),
            (item.stale, b" X"),
            (item.win, b" W"),
        ] {
            if set {
                out.extend_from_slice(flag);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `mg <key> <flags>*`
///
/// Stale-while-revalidate: the first client to read an item marked stale (`md … I`), or one
/// whose TTL is below the `R` token, gets the `W` flag ("you won: recompute it"); later
/// readers get `Z` ("someone is on it") and keep being served the old value. With `N`, a miss
/// creates an empty placeholder and its reader wins.
fn get<'a>(
    ctx: &mut Ctx<'_>,
    mut tokens: impl Iterator<Item = &'a [u8]>,
) -> Result<Step, &'static [u8]> {
    let key_token = tokens.next();
    let flags = Flags::parse(tokens, b"bcfhklNOqRstTuv")?;
    let key = key(key_token, &flags)?;
    let touch = flags
        .number::<i64>(b'T')?
        .map(|exptime| expiry(exptime, ctx.now));
    let vivify = flags.number::<i64>(b'N')?;
    let recache_below = flags.number::<i64>(b'R')?;
    let now = ctx.now;
    let store = &ctx.node.store;
    let out = &mut *ctx.out;
    let answer = |out: &mut Vec<u8>, value: &[u8], item: &Item| {
        if flags.has(b'v') {
            out.extend_from_slice(b"VA ");
            out.extend_from_slice(itoa::Buffer::new().format(value.len()).as_bytes());
            return_flags(out, &flags, &key, Some(item));
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(b"HD");
            return_flags(out, &flags, &key, Some(item));
        }
    };
    let found = store
        .update(&key.stored, now, Lookup::Read, |entry| {
            let Some(entry) = entry else {
                return match vivify {
                    Some(exptime) => (
                        Write::Vivify {
                            expires_at: expiry(exptime, now),
                        },
                        Found::Vivified,
                    ),
                    None => (Write::Keep, Found::Miss),
                };
            };
            let mut item = Item::of(&entry, now);
            if let Some(expires_at) = touch {
                item.ttl = ttl_secs(expires_at, now);
            }
            let due =
                entry.stale || recache_below.is_some_and(|below| item.ttl >= 0 && item.ttl < below);
            item.win = due && !entry.win_sent;
            item.stale = entry.stale;
            item.win_sent = entry.win_sent;
            answer(out, entry.value, &item);
            let write = match (item.win, touch) {
                (true, expires_at) => Write::Mark {
                    stale: false,
                    win_sent: true,
                    expires_at,
                    cas: None,
                },
                (false, Some(expires_at)) => Write::Expire(expires_at),
                (false, None) => Write::Keep,
            };
            (write, Found::Hit)
        })
        .map_err(server_error)?;
    match found {
        Found::Hit => {}
        Found::Vivified => {
            let item = store
                .update(&key.stored, now, Lookup::Write, |entry| {
                    (Write::Keep, entry.map(|entry| Item::of(&entry, now)))
                })
                .unwrap_or(None);
            if let Some(item) = item {
                answer(out, &[], &Item { win: true, ..item });
            }
        }
        Found::Miss if flags.has(b'q') => {}
        Found::Miss => {
            out.extend_from_slice(b"EN");
            return_flags(out, &flags, &key, None);
        }
    }
    Ok(Step::Done { data: 0 })
}

/// What a meta get found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Hit,
    Miss,
    /// A miss that created a placeholder (`N`).
    Vivified,
}

/// How `ms` stores, from its `M` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
}

/// `ms <key> <datalen> <flags>*` followed by the data block.
fn set<'a>(
    ctx: &mut Ctx<'_>,
    key_token: Option<&'a [u8]>,
    len: Option<&'a [u8]>,
    tokens: impl Iterator<Item = &'a [u8]>,
    after: &[u8],
) -> Result<Step, &'static [u8]> {
    let len = len.and_then(number::<usize>).ok_or(BAD_FORMAT)?;
    // Once the length is known, a refused request's data block is skipped (as memcached
    // does), so that it is not read as commands.
    set_block(ctx, key_token, len, tokens, after).or_else(|message| {
        ctx.line(message);
        Ok(Step::Skip {
            data: len.saturating_add(2),
        })
    })
}

fn set_block<'a>(
    ctx: &mut Ctx<'_>,
    key_token: Option<&'a [u8]>,
    len: usize,
    tokens: impl Iterator<Item = &'a [u8]>,
    after: &[u8],
) -> Result<Step, &'static [u8]> {
    let flags = Flags::parse(tokens, b"bcCEFIkMNOqST")?;
    let key = key(key_token, &flags)?;
    if key.stored.len().saturating_add(len) > ctx.node.store.max_item_size() {
        ctx.line(b"SERVER_ERROR object too large for cache");
        return Ok(Step::Skip {
            data: len.saturating_add(2),
        });
    }
    let (data, used) = match data_block(after, len) {
        None => return Ok(Step::NeedData),
        Some(Err(used)) => {
            ctx.line(b"CLIENT_ERROR bad data chunk");
            return Ok(Step::Done { data: used });
        }
        Some(Ok(block)) => block,
    };
    let mode = match flags.token(b'M') {
        None | Some(b"S" | b"s") => Mode::Set,
        Some(b"E" | b"e") => Mode::Add,
        Some(b"R" | b"r") => Mode::Replace,
        Some(b"A" | b"a") => Mode::Append,
        Some(b"P" | b"p") => Mode::Prepend,
        Some(_) => return Err(b"CLIENT_ERROR invalid mode for ms M token"),
    };
    let client_flags = flags.number::<u32>(b'F')?.unwrap_or(0);
    let compare = flags.number::<u64>(b'C')?;
    let ttl = flags.number::<i64>(b'T')?.unwrap_or(0);
    let vivify = flags.number::<i64>(b'N')?;
    let new_cas = flags.number::<u64>(b'E')?;
    let invalidate = flags.has(b'I');
    let now = ctx.now;
    let outcome = ctx
        .node
        .store
        .update(&key.stored, now, Lookup::Write, |entry| {
            let put = |value, flags, expires_at| Write::Put {
                value,
                flags,
                expires_at,
                cas: new_cas,
                stale: false,
            };
            let fresh = put(Cow::Borrowed(data), client_flags, expiry(ttl, now));
            match (mode, entry) {
                // Add ignores a CAS, as memcached's does.
                (Mode::Add, Some(_)) => (Write::Keep, &b"NS"[..]),
                (Mode::Add, None) => (fresh, b"HD"),
                // `I` with a CAS older than the item's, in set or replace mode (memcached's
                // "cas" store): a writer that lost a race still stores its value, but marked
                // stale, under the item's TTL, so that a reader recomputes it.
                (Mode::Set | Mode::Replace, Some(entry))
                    if invalidate && compare.is_some_and(|cas| cas < entry.cas) =>
                {
                    let write = Write::Put {
                        value: Cow::Borrowed(data),
                        flags: client_flags,
                        expires_at: entry.expires_at,
                        cas: new_cas,
                        stale: true,
                    };
                    (write, b"HD")
                }
                (_, Some(entry)) if compare.is_some_and(|cas| cas != entry.cas) => {
                    (Write::Keep, b"EX")
                }
                (_, None) if compare.is_some() => (Write::Keep, b"NF"),
                (Mode::Set, _) | (Mode::Replace, Some(_)) => (fresh, b"HD"),
                (Mode::Append | Mode::Prepend, Some(entry)) => {
                    let (first, second) = if mode == Mode::Append {
                        (entry.value, data)
                    } else {
                        (data, entry.value)
                    };
                    let value = Cow::Owned([first, second].concat());
                    (put(value, entry.flags, entry.expires_at), b"HD")
                }
                (Mode::Append | Mode::Prepend, None) if vivify.is_some() => {
                    let expires_at = vivify.and_then(|exptime| expiry(exptime, now));
                    (put(Cow::Borrowed(data), client_flags, expires_at), b"HD")
                }
                _ => (Write::Keep, b"NS"),
            }
        });
    let code = outcome.map_err(server_error)?;
    if code == b"HD" && flags.has(b'q') {
        return Ok(Step::Done { data: used });
    }
    let item = if flags.has(b'c') {
        ctx.node
            .store
            .update(&key.stored, now, Lookup::Write, |entry| {
                (Write::Keep, entry.map(|entry| Item::of(&entry, now)))
            })
            .unwrap_or(None)
    } else {
        None
    };
    ctx.out.extend_from_slice(code);
    return_flags(ctx.out, &flags, &key, item.as_ref());
    Ok(Step::Done { data: used })
}

/// `md <key> <flags>*`
fn delete<'a>(
    ctx: &mut Ctx<'_>,
    mut tokens: impl Iterator<Item = &'a [u8]>,
) -> Result<Step, &'static [u8]> {
    let key_token = tokens.next();
    let flags = Flags::parse(tokens, b"bCEIkOqTx")?;
    let key = key(key_token, &flags)?;
    let compare = flags.number::<u64>(b'C')?;
    let new_cas = flags.number::<u64>(b'E')?;
    let keep_item = flags.has(b'x');
    let invalidate = flags.has(b'I');
    let ttl = flags.number::<i64>(b'T')?;
    let now = ctx.now;
    let code = ctx
        .node
        .store
        .update(&key.stored, now, Lookup::Write, |entry| match entry {
            None => (Write::Keep, &b"NF"[..]),
            Some(entry) if compare.is_some_and(|cas| cas != entry.cas) => (Write::Keep, b"EX"),
            // `I`: keep serving it, marked stale, until someone recomputes it.
            Some(_) if invalidate => {
                let write = Write::Mark {
                    stale: true,
                    win_sent: false,
                    expires_at: ttl.map(|exptime| expiry(exptime, now)),
                    cas: new_cas,
                };
                (write, b"HD")
            }
            // `x`: drop the value but keep the item and its flags.
            Some(entry) if keep_item => {
                let write = Write::Put {
                    value: Cow::Borrowed(&[]),
                    flags: entry.flags,
                    expires_at: entry.expires_at,
                    cas: new_cas,
                    stale: false,
                };
                (write, b"HD")
            }
            Some(_) => (Write::Remove, b"HD"),
        })
        .map_err(server_error)?;
    if !(flags.has(b'q') && (code == b"HD" || code == b"NF")) {
        ctx.out.extend_from_slice(code);
        return_flags(ctx.out, &flags, &key, None);
    }
    Ok(Step::Done { data: 0 })
}

/// `ma <key> <flags>*`
fn arithmetic<'a>(
    ctx: &mut Ctx<'_>,
    mut tokens: impl Iterator<Item = &'a [u8]>,
) -> Result<Step, &'static [u8]> {
    let key_token = tokens.next();
    let flags = Flags::parse(tokens, b"bcCDEJkMNOqtTv")?;
    let key = key(key_token, &flags)?;
    let increment = match flags.token(b'M') {
        None | Some(b"I" | b"i" | b"+") => true,
        Some(b"D" | b"d" | b"-") => false,
        Some(_) => return Err(b"CLIENT_ERROR invalid mode for ma M token"),
    };
    let delta = flags.number::<u64>(b'D')?.unwrap_or(1);
    let initial = flags.number::<u64>(b'J')?.unwrap_or(0);
    let vivify = flags.number::<i64>(b'N')?;
    let touch = flags.number::<i64>(b'T')?;
    let compare = flags.number::<u64>(b'C')?;
    let new_cas = flags.number::<u64>(b'E')?;
    let now = ctx.now;
    let store = &ctx.node.store;
    // Checks CAS and creates the counter on a vivifying miss; `Ok(false)` for NF, `Err` for EX.
    let prepared = store
        .update(&key.stored, now, Lookup::Write, |entry| {
            match (entry, vivify) {
                (Some(entry), _) if compare.is_some_and(|cas| cas != entry.cas) => {
                    (Write::Keep, Err(&b"EX"[..]))
                }
                (Some(_), _) => (Write::Keep, Ok(true)),
                (None, Some(exptime)) => {
                    let value = Cow::Owned(initial.to_string().into_bytes());
                    let write = Write::Put {
                        value,
                        flags: 0,
                        expires_at: expiry(exptime, now),
                        cas: new_cas,
                        stale: false,
                    };
                    (write, Ok(false))
                }
                (None, None) => (Write::Keep, Err(b"NF")),
            }
        })
        .map_err(server_error)?;
    let value = match prepared {
        Ok(true) => apply_delta(ctx, &key.stored, increment, delta, new_cas)?,
        Ok(false) => Some(initial),
        Err(code) => {
            if !(code == b"NF" && flags.has(b'q')) {
                ctx.out.extend_from_slice(code);
                return_flags(ctx.out, &flags, &key, None);
            }
            return Ok(Step::Done { data: 0 });
        }
    };
    let Some(value) = value else {
        if !flags.has(b'q') {
            ctx.out.extend_from_slice(b"NF");
            return_flags(ctx.out, &flags, &key, None);
        }
        return Ok(Step::Done { data: 0 });
    };
    let item = store
        .update(&key.stored, now, Lookup::Write, |entry| {
            let Some(entry) = entry else {
                return (Write::Keep, None);
            };
            let item = Item::of(&entry, now);
            match touch {
                Some(exptime) => {
                    let expires_at = expiry(exptime, now);
                    let item = Item {
                        ttl: ttl_secs(expires_at, now),
                        ..item
                    };
                    (Write::Expire(expires_at), Some(item))
                }
                None => (Write::Keep, Some(item)),
            }
        })
        .unwrap_or(None);
    let text = itoa::Buffer::new().format(value).as_bytes().to_vec();
    if flags.has(b'v') {
        ctx.out.extend_from_slice(b"VA ");
        ctx.out
            .extend_from_slice(itoa::Buffer::new().format(text.len()).as_bytes());
        return_flags(ctx.out, &flags, &key, item.as_ref());
        ctx.line(&text);
    } else if !flags.has(b'q') {
        ctx.out.extend_from_slice(b"HD");
        return_flags(ctx.out, &flags, &key, item.as_ref());
    }
    Ok(Step::Done { data: 0 })
}

/// `me <key> [b]`: what memcached shows about an item, for debugging.
fn debug<'a>(
    ctx: &mut Ctx<'_>,
    mut tokens: impl Iterator<Item = &'a [u8]>,
) -> Result<Step, &'static [u8]> {
    let key_token = tokens.next();
    let flags = Flags::parse(tokens, b"b")?;
    let key = key(key_token, &flags)?;
    let now = ctx.now;
    let item = ctx
        .node
        .store
        .update(&key.stored, now, Lookup::Write, |entry| {
            (Write::Keep, entry.map(|entry| Item::of(&entry, now)))
        })
        .unwrap_or(None);
    match item {
        Some(item) => {
            let line = format!(
                "ME {} exp={} la={} cas={} fetch={} cls=1 size={}",
                String::from_utf8_lossy(key.sent),
                item.ttl,
                item.idle_secs,
                item.cas,
                if item.fetched { "yes" } else { "no" },
                key.stored.len() + item.size,
            );
            ctx.line(line.as_bytes());
        }
        None => ctx.line(b"EN"),
    }
    Ok(Step::Done { data: 0 })
}
