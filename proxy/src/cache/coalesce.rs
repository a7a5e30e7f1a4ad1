//! Request coalescing: of N concurrent misses on one key, one (the leader) asks the backend and
//! the others (followers) wait for its outcome. When the answer turns out uncacheable the
//! followers are released at once to make their own requests — in parallel, not one after the
//! other — and the key is remembered as uncacheable for a while so later misses do not wait at
//! all (Varnish's hit-for-miss).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long an uncacheable answer keeps later misses on its key from coalescing.
const HIT_FOR_MISS: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// The answer is in the store: look it up again.
    Stored,
    /// The answer may not be shared: make your own request.
    Uncacheable,
    /// The leader got no usable answer (or gave up): make your own request.
    Failed,
}

/// Keyed by URL, which clients choose: foldhash's maps are seeded per map, like std's, and
/// hash a URL in a fraction of SipHash's time.
#[derive(Debug, Default)]
pub struct Coalescer {
    flights: Mutex<foldhash::HashMap<String, watch::Receiver<Outcome>>>,
    uncacheable: Mutex<foldhash::HashMap<String, Instant>>,
}

/// What a request that missed should do.
#[derive(Debug)]
pub enum Role {
    /// Fetch, then report with [`Flight::finish`].
    Leader(Flight),
    /// Wait for the leader.
    Follower(watch::Receiver<Outcome>),
    /// The key recently proved uncacheable: fetch without making anyone wait.
    Alone,
}

/// The leader's duty to report; dropping it unreported tells the followers `Failed`.
#[derive(Debug)]
pub struct Flight {
    coalescer: Arc<Coalescer>,
    key: String,
    sender: watch::Sender<Outcome>,
}

impl Coalescer {
    pub fn join(self: &Arc<Self>, key: &str) -> Role {
        {
            let mut uncacheable = self.uncacheable.lock().expect("not poisoned");
            match uncacheable.get(key) {
                Some(until) if *until > Instant::now() => return Role::Alone,
                Some(_) => {
                    uncacheable.remove(key);
                }
                None => {}
            }
        }
        let mut flights = self.flights.lock().expect("not poisoned");
        if let Some(receiver) = flights.get(key) {
            return Role::Follower(receiver.clone());
        }
        let (sender, receiver) = watch::channel(Outcome::Pending);
        flights.insert(key.to_owned(), receiver);
        Role::Leader(Flight {
            coalescer: self.clone(),
            key: key.to_owned(),
            sender,
        })
    }

    /// Waits for the leader's outcome, at most `timeout` (then `Failed`).
    pub async fn wait(mut receiver: watch::Receiver<Outcome>, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, receiver.wait_for(|o| *o != Outcome::Pending)).await {
            Ok(Ok(outcome)) => *outcome,
            _ => Outcome::Failed,
        }
    }
}

impl Flight {
    pub fn finish(self, outcome: Outcome) {
        if outcome == Outcome::Uncacheable {
            let mut uncacheable = self.coalescer.uncacheable.lock().expect("not poisoned");
            let now = Instant::now();
            if uncacheable.len() > 10_000 {
                uncacheable.retain(|_, until| *until > now);
            }
            uncacheable.insert(self.key.clone(), now + HIT_FOR_MISS);
        } else if outcome == Outcome::Stored {
            self.coalescer
                .uncacheable
                .lock()
                .expect("not poisoned")
                .remove(&self.key);
        }
        self.sender.send_replace(outcome);
        // Drop runs next and removes the flight.
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.sender.send_if_modified(|outcome| {
            let pending = *outcome == Outcome::Pending;
            if pending {
                *outcome = Outcome::Failed;
            }
            pending
        });
        let mut flights = self.coalescer.flights.lock().expect("not poisoned");
        if flights
            .get(&self.key)
            .is_some_and(|receiver| receiver.same_channel(&self.sender.subscribe()))
        {
            flights.remove(&self.key);
        }
    }
}
