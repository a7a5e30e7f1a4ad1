//! The Redis protocol (RESP2 and RESP3) over the shared store.
//!
//! [`parse`] frames requests, [`cmd`] runs them (one file per command family), [`frame`] writes
//! the replies in the client's protocol version.

mod cmd;
mod frame;
mod parse;

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Buf, BytesMut};

use super::connection::{self, Flow, OUTPUT_HIGH_WATER};
use super::expiry::now_ms;
use super::{Node, server};
use frame::Reply;
use parse::Limits;

#[derive(Debug, Clone, Copy)]
pub(super) struct Protocol;

impl server::Protocol for Protocol {
    type Session = Session;

    const TOO_MANY_CONNECTIONS: &'static [u8] = b"-ERR max number of clients reached\r\n";

    fn session(self, node: Arc<Node>, peer: SocketAddr) -> Session {
        let max_item = node.config.max_item_size;
        // A value over the item limit must still parse, so that it gets its proper error and the
        // connection goes on; twice the limit bounds what a request can make the node buffer.
        let max_bulk = max_item.saturating_mul(2).max(parse::MAX_INLINE);
        let client = Client {
            id: node.new_client_id(),
            peer,
            name: None,
            library: None,
            library_version: None,
            resp3: false,
            authenticated: node.config.requirepass.is_none(),
        };
        Session {
            node,
            client,
            args: Vec::new(),
            limits: Limits {
                max_bulk,
                max_request: max_bulk.max(64 * 1024 * 1024),
            },
        }
    }
}

/// What the node knows about one RESP client.
#[derive(Debug)]
pub(super) struct Client {
    id: u64,
    peer: SocketAddr,
    name: Option<Vec<u8>>,
    library: Option<Vec<u8>>,
    library_version: Option<Vec<u8>>,
    resp3: bool,
    authenticated: bool,
}

#[derive(Debug)]
pub(super) struct Session {
    node: Arc<Node>,
    client: Client,
    /// Where the arguments of the request being run lie in the input (kept to reuse its buffer).
    args: Vec<Range<usize>>,
    limits: Limits,
}

impl connection::Session for Session {
    fn serve(&mut self, input: &mut BytesMut, output: &mut Vec<u8>) -> Flow {
        let now = now_ms();
        let mut commands = 0;
        // One clock read per command: each command's time runs from the end of the previous
        // one (so parsing counts too), which halves what timing costs on a pipeline.
        let mut last = Instant::now();
        let flow = loop {
            if output.len() > OUTPUT_HIGH_WATER {
                break Flow::OutputFull;
            }
            let used = match parse::parse(input, &self.limits, &mut self.args) {
                Ok(Some(used)) => used,
                Ok(None) => break Flow::NeedInput,
                Err(error) => {
                    Reply::new(output, self.client.resp3)
                        .error(&format!("ERR Protocol error: {error}"));
                    break Flow::Close;
                }
            };
            let mut after = cmd::After::Continue;
            if !self.args.is_empty() {
                let args = cmd::Args::new(input, &self.args);
                after = cmd::execute(&self.node, &mut self.client, args, output, now);
                let done = Instant::now();
                self.node
                    .metrics
                    .command_duration
                    .observe((done - last).as_secs_f64());
                last = done;
                commands += 1;
            }
            input.advance(used);
            if after == cmd::After::Close {
                break Flow::Close;
            }
        };
        self.node
            .clients
            .commands
            .fetch_add(commands, Ordering::Relaxed);
        flow
    }
}
