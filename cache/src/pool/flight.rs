//! Single-flight: of all the callers in this process that miss the same key at the same time,
//! one (the leader) runs the loader; the others wait for its result.
//!
//! The leader runs the loader itself (so the loader need not be `'static`), publishes the
//! result on a `watch` channel, and removes the flight when its guard drops. If the leader is
//! cancelled before publishing, the channel closes unpublished and a waiter takes over as leader.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

type Outcome<T, E> = Option<Result<Option<T>, E>>;
type Sender<T, E> = watch::Sender<Outcome<T, E>>;

#[derive(Debug, Default)]
pub(super) struct Flights {
    in_flight: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

/// What a caller that missed `key` should do.
pub(super) enum Role<'a, T, E> {
    /// Run the loader, then [`Leader::publish`].
    Leader(Leader<'a, T, E>),
    /// Wait for the leader with [`wait`].
    Follower(watch::Receiver<Outcome<T, E>>),
    /// Someone is loading this key as another type: load independently.
    Alone,
}

pub(super) struct Leader<'a, T, E> {
    flights: &'a Flights,
    key: String,
    sender: Arc<Sender<T, E>>,
}

impl Flights {
    pub(super) fn join<T, E>(&self, key: &str) -> Role<'_, T, E>
    where
        T: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let mut in_flight = self.lock();
        if let Some(existing) = in_flight.get(key) {
            return match Arc::clone(existing).downcast::<Sender<T, E>>() {
                Ok(sender) => Role::Follower(sender.subscribe()),
                Err(_) => Role::Alone,
            };
        }
        let sender = Arc::new(watch::Sender::new(None));
        in_flight.insert(key.to_owned(), sender.clone());
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            sender,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn Any + Send + Sync>>> {
        // A map of channels stays consistent even if a holder panicked.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T, E> Leader<'_, T, E> {
    /// Hands the result to every follower, present and arriving until this guard drops.
    pub(super) fn publish(&self, outcome: Result<Option<T>, E>) {
        self.sender.send_replace(Some(outcome));
    }
}

impl<T, E> Drop for Leader<'_, T, E> {
    fn drop(&mut self) {
        let mut in_flight = self.flights.lock();
        let ours = in_flight
            .get(&self.key)
            .is_some_and(|entry| std::ptr::addr_eq(Arc::as_ptr(entry), Arc::as_ptr(&self.sender)));
        if ours {
            in_flight.remove(&self.key);
        }
    }
}

/// The leader's result, or `None` if the leader gave up without one.
pub(super) async fn wait<T: Clone, E: Clone>(
    mut receiver: watch::Receiver<Outcome<T, E>>,
) -> Option<Result<Option<T>, E>> {
    receiver
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|outcome| outcome.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_result() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join::<u32, ()>("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join::<u32, ()>("k") else {
            panic!("second caller follows")
        };
        leader.publish(Ok(Some(7)));
        assert_eq!(wait(rx).await, Some(Ok(Some(7))));
        drop(leader);
        assert!(matches!(flights.join::<u32, ()>("k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_cancelled_leader_releases_its_followers() {
        let flights = Flights::default();
        let leader = flights.join::<u32, ()>("k");
        let Role::Follower(rx) = flights.join::<u32, ()>("k") else {
            panic!("second caller follows")
        };
        drop(leader);
        assert_eq!(wait(rx).await, None);
    }

    #[tokio::test]
    async fn another_type_loads_alone() {
        let flights = Flights::default();
        let _leader = flights.join::<u32, ()>("k");
        assert!(matches!(flights.join::<String, ()>("k"), Role::Alone));
    }
}
