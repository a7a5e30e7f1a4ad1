//! Server commands: INFO, DBSIZE, FLUSHDB/FLUSHALL, CONFIG GET, COMMAND.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::{Args, Command, Ctx, Error, Keys, Outcome, all_commands, is, lookup};
use crate::node::glob;

/// The Redis version the node answers as: the commands and replies are those of Redis 7.2,
/// and some client libraries choose features by this number.
pub(super) const REDIS_VERSION: &str = "7.2.0";

pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "info",
        arity: -1,
        keys: Keys::None,
        write: false,
        run: info,
    },
    Command {
        name: "dbsize",
        arity: 1,
        keys: Keys::None,
        write: false,
        run: dbsize,
    },
    Command {
        name: "flushdb",
        arity: -1,
        keys: Keys::None,
        write: true,
        run: flush,
    },
    Command {
        name: "flushall",
        arity: -1,
        keys: Keys::None,
        write: true,
        run: flush,
    },
    Command {
        name: "config",
        arity: -2,
        keys: Keys::None,
        write: false,
        run: config,
    },
    Command {
        name: "command",
        arity: -1,
        keys: Keys::None,
        write: false,
        run: command,
    },
];

fn dbsize(ctx: &mut Ctx<'_>, _: Args<'_>) -> Outcome {
    ctx.reply.integer(ctx.node.store.stats().items as i64);
    Ok(())
}

/// `FLUSHDB [ASYNC | SYNC]`: both are synchronous here; clearing a shard is quick.
fn flush(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    match args.len() {
        1 => {}
        2 if is(args.get(1), "async") || is(args.get(1), "sync") => {}
        _ => return Err(Error::Syntax),
    }
    ctx.node.store.flush();
    ctx.reply.ok();
    Ok(())
}

const SECTIONS: [&str; 5] = ["server", "clients", "memory", "stats", "keyspace"];

/// `INFO [section ...]` with Redis's field names, so dashboards and `redis-cli info` work.
fn info(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let everything = args.len() == 1
        || args
            .from(1)
            .any(|arg| is(arg, "all") || is(arg, "everything") || is(arg, "default"));
    let wanted = |section: &str| everything || args.from(1).any(|arg| is(arg, section));
    let node = ctx.node;
    let stats = node.store.stats();
    let clients = &node.clients;
    let mut text = String::new();
    for section in SECTIONS.into_iter().filter(|section| wanted(section)) {
        let fields: Vec<(&str, String)> = match section {
            "server" => vec![
                ("redis_version", REDIS_VERSION.into()),
                ("leanstack_cache_version", crate::node::VERSION.into()),
                ("redis_mode", "standalone".into()),
                ("os", std::env::consts::OS.into()),
                ("arch_bits", "64".into()),
                ("process_id", std::process::id().to_string()),
                ("uptime_in_seconds", node.uptime_secs().to_string()),
                ("uptime_in_days", (node.uptime_secs() / 86_400).to_string()),
            ],
            "clients" => vec![
                (
                    "connected_clients",
                    clients.connected.load(Ordering::Relaxed).to_string(),
                ),
                ("maxclients", node.config.max_connections.to_string()),
            ],
            "memory" => vec![
                ("used_memory", stats.bytes.to_string()),
                ("used_memory_human", human(stats.bytes)),
                ("maxmemory", node.store.max_memory().to_string()),
                ("maxmemory_human", human(node.store.max_memory())),
                ("maxmemory_policy", "s3-fifo".into()),
            ],
            "stats" => vec![
                (
                    "total_connections_received",
                    clients.total.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "total_commands_processed",
                    clients.commands.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "rejected_connections",
                    clients.rejected.load(Ordering::Relaxed).to_string(),
                ),
                ("expired_keys", stats.expired.to_string()),
                ("evicted_keys", stats.evictions.to_string()),
                ("keyspace_hits", stats.hits.to_string()),
                ("keyspace_misses", stats.misses.to_string()),
            ],
            _ if stats.items > 0 => vec![(
                "db0",
                format!("keys={},expires={},avg_ttl=0", stats.items, stats.with_ttl),
            )],
            _ => vec![],
        };
        let mut title = section.to_owned();
        title[..1].make_ascii_uppercase();
        let _ = write!(text, "# {title}\r\n");
        for (name, value) in fields {
            let _ = write!(text, "{name}:{value}\r\n");
        }
        text.push_str("\r\n");
    }
    ctx.reply.bulk(text.trim_end().as_bytes());
    Ok(())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

/// `CONFIG GET pattern [pattern ...]`: the parameters tools ask about (redis-benchmark asks
/// for `save` and `appendonly`).
fn config(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    if !is(args.get(1), "get") {
        return Err(Error::Other(
            format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(args.get(1))
            )
            .into(),
        ));
    }
    if args.len() < 3 {
        return Err(Error::Other(
            "ERR wrong number of arguments for 'config|get' command".into(),
        ));
    }
    let config = &ctx.node.config;
    let parameters = [
        ("maxmemory", config.max_memory.to_string()),
        ("maxmemory-policy", "s3-fifo".to_owned()),
        ("maxclients", config.max_connections.to_string()),
        ("proto-max-bulk-len", config.max_item_size.to_string()),
        (
            "timeout",
            config
                .idle_timeout
                .map_or(0, |idle| idle.as_secs())
                .to_string(),
        ),
        ("databases", "1".to_owned()),
        ("save", String::new()),
        ("appendonly", "no".to_owned()),
    ];
    let matching: Vec<_> = parameters
        .iter()
        .filter(|(name, _)| {
            args.from(2)
                .any(|pattern| glob::matches(&pattern.to_ascii_lowercase(), name.as_bytes()))
        })
        .collect();
    ctx.reply.map(matching.len());
    for (name, value) in matching {
        ctx.reply.bulk(name.as_bytes());
        ctx.reply.bulk(value.as_bytes());
    }
    Ok(())
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name...`, `COMMAND LIST`, `COMMAND DOCS`: what
/// redis-cli and cluster-aware clients ask at start.
fn command(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    if args.len() == 1 {
        let commands: Vec<_> = all_commands().collect();
        ctx.reply.array(commands.len());
        for command in commands {
            describe(ctx, command);
        }
        return Ok(());
    }
    let sub = args.get(1);
    if is(sub, "count") {
        ctx.reply.integer(all_commands().count() as i64);
    } else if is(sub, "list") {
        let names: Vec<_> = all_commands().map(|command| command.name).collect();
        ctx.reply.array(names.len());
        for name in names {
            ctx.reply.bulk(name.as_bytes());
        }
    } else if is(sub, "info") {
        ctx.reply.array(args.len() - 2);
        for name in args.from(2) {
            match lookup(name) {
                Some(command) => describe(ctx, command),
                None => ctx.reply.null(),
            }
        }
    } else if is(sub, "docs") {
        ctx.reply.map(0);
    } else {
        return Err(Error::Other(
            format!(
                "ERR unknown subcommand '{}'. Try COMMAND HELP.",
                String::from_utf8_lossy(sub)
            )
            .into(),
        ));
    }
    Ok(())
}

/// One command's entry as COMMAND INFO gives it: name, arity, flags, first key, last key, step.
fn describe(ctx: &mut Ctx<'_>, command: &Command) {
    let reply = &mut ctx.reply;
    reply.array(6);
    reply.bulk(command.name.as_bytes());
    reply.integer(i64::from(command.arity));
    let flag = if command.write { "write" } else { "readonly" };
    reply.array(1);
    reply.simple(flag);
    let (first, last, step) = match command.keys {
        Keys::None => (0, 0, 0),
        Keys::First => (1, 1, 1),
        Keys::All => (1, -1, 1),
        Keys::EveryOther => (1, -1, 2),
    };
    reply.integer(first);
    reply.integer(last);
    reply.integer(step);
}
