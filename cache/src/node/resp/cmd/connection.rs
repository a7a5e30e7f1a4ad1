//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT.

use subtle::ConstantTimeEq;

use super::{After, Args, Command, Ctx, Error, Keys, Outcome, integer, is};

pub(super) const COMMANDS: &[Command] = &[
    Command {
        name: "ping",
        arity: -1,
        keys: Keys::None,
        write: false,
        run: ping,
    },
    Command {
        name: "echo",
        arity: 2,
        keys: Keys::None,
        write: false,
        run: echo,
    },
    Command {
        name: "quit",
        arity: -1,
        keys: Keys::None,
        write: false,
        run: quit,
    },
    Command {
        name: "select",
        arity: 2,
        keys: Keys::None,
        write: false,
        run: select,
    },
    Command {
        name: "auth",
        arity: -2,
        keys: Keys::None,
        write: false,
        run: auth,
    },
    Command {
        name: "hello",
        arity: -1,
        keys: Keys::None,
        write: false,
        run: hello,
    },
    Command {
        name: "client",
        arity: -2,
        keys: Keys::None,
        write: false,
        run: client,
    },
];

fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    match args.len() {
        1 => ctx.reply.simple("PONG"),
        2 => ctx.reply.bulk(args.get(1)),
        _ => return Err(Error::Arity("ping")),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    ctx.reply.bulk(args.get(1));
    Ok(())
}

fn quit(ctx: &mut Ctx<'_>, _: Args<'_>) -> Outcome {
    ctx.reply.ok();
    ctx.after = After::Close;
    Ok(())
}

/// There is one database, 0, as in Redis Cluster.
fn select(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    match integer(args.get(1))? {
        0 => ctx.reply.ok(),
        _ => return Err(Error::Other("ERR DB index is out of range".into())),
    }
    Ok(())
}

fn auth(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let (user, password) = match args.len() {
        2 => (&b"default"[..], args.get(1)),
        3 => (args.get(1), args.get(2)),
        _ => return Err(Error::Syntax),
    };
    check_password(ctx, user, password)?;
    ctx.reply.ok();
    Ok(())
}

fn check_password(ctx: &mut Ctx<'_>, user: &[u8], password: &[u8]) -> Outcome {
    let Some(expected) = &ctx.node.config.requirepass else {
        return Err(Error::Other(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
                .into(),
        ));
    };
    let matches: bool = expected.as_bytes().ct_eq(password).into();
    if user != b"default" || !matches {
        return Err(Error::Other(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ));
    }
    ctx.client.authenticated = true;
    Ok(())
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
fn hello(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let mut resp3 = ctx.client.resp3;
    if args.len() > 1 {
        resp3 = match integer(args.get(1)) {
            Ok(2) => false,
            Ok(3) => true,
            Ok(_) => return Err(Error::Other("NOPROTO unsupported protocol version".into())),
            Err(_) => {
                return Err(Error::Other(
                    "ERR Protocol version is not an integer or out of range".into(),
                ));
            }
        };
    }
    let mut name = None;
    let mut at = 2;
    while at < args.len() {
        let option = args.get(at);
        if is(option, "auth") && at + 2 < args.len() {
            check_password(ctx, args.get(at + 1), args.get(at + 2))?;
            at += 3;
        } else if is(option, "setname") && at + 1 < args.len() {
            name = Some(valid_name(args.get(at + 1))?);
            at += 2;
        } else {
            return Err(Error::Other(
                format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(option)
                )
                .into(),
            ));
        }
    }
    if !ctx.client.authenticated {
        return Err(Error::Other(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        ));
    }
    if let Some(name) = name {
        ctx.client.name = Some(name.to_vec());
    }
    ctx.client.resp3 = resp3;
    // The reply is in the version just chosen.
    ctx.reply.set_resp3(resp3);
    let reply = &mut ctx.reply;
    reply.map(7);
    reply.bulk(b"server");
    reply.bulk(b"redis");
    reply.bulk(b"version");
    reply.bulk(super::server::REDIS_VERSION.as_bytes());
    reply.bulk(b"proto");
    reply.integer(if resp3 { 3 } else { 2 });
    reply.bulk(b"id");
    reply.integer(ctx.client.id as i64);
    reply.bulk(b"mode");
    reply.bulk(b"standalone");
    reply.bulk(b"role");
    reply.bulk(b"master");
    reply.bulk(b"modules");
    reply.array(0);
    Ok(())
}

/// Client names are shown on one line of CLIENT LIST, so Redis allows no spaces in them.
fn valid_name(name: &[u8]) -> Result<&[u8], Error> {
    if name.iter().all(|&byte| (b'!'..=b'~').contains(&byte)) {
        Ok(name)
    } else {
        Err(Error::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ))
    }
}

fn client(ctx: &mut Ctx<'_>, args: Args<'_>) -> Outcome {
    let sub = args.get(1);
    let arity = |expected: usize| {
        if args.len() == expected {
            Ok(())
        } else {
            Err(Error::Other(
                format!(
                    "ERR wrong number of arguments for 'client|{}' command",
                    String::from_utf8_lossy(sub).to_lowercase()
                )
                .into(),
            ))
        }
    };
    if is(sub, "id") {
        arity(2)?;
        ctx.reply.integer(ctx.client.id as i64);
    } else if is(sub, "setname") {
        arity(3)?;
        let name = valid_name(args.get(2))?;
        ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
        ctx.reply.ok();
    } else if is(sub, "getname") {
        arity(2)?;
        match &ctx.client.name {
            Some(name) => ctx.reply.bulk(name),
            None => ctx.reply.null(),
        }
    } else if is(sub, "setinfo") {
        arity(4)?;
        let value = valid_name(args.get(3))?.to_vec();
        if is(args.get(2), "lib-name") {
            ctx.client.library = Some(value);
        } else if is(args.get(2), "lib-ver") {
            ctx.client.library_version = Some(value);
        } else {
            return Err(Error::Other(
                format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(args.get(2))
                )
                .into(),
            ));
        }
        ctx.reply.ok();
    } else if is(sub, "info") {
        arity(2)?;
        let line = client_info(ctx);
        ctx.reply.bulk(line.as_bytes());
    } else {
        return Err(Error::Other(
            format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(sub)
            )
            .into(),
        ));
    }
    Ok(())
}

fn client_info(ctx: &Ctx<'_>) -> String {
    let client = &ctx.client;
    let text = |value: &Option<Vec<u8>>| {
        value
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    format!(
        "id={} addr={} name={} db=0 lib-name={} lib-ver={} resp={}\n",
        client.id,
        client.peer,
        text(&client.name),
        text(&client.library),
        text(&client.library_version),
        if client.resp3 { 3 } else { 2 },
    )
}
