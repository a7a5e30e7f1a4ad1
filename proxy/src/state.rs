//! What every request shares: the current policy (swapped whole on reload), the cache store,
//! the coalescer and the metrics.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::cache::Store;
use crate::cache::coalesce::Coalescer;
use crate::config::{Config, RouteSettings};
use crate::metrics::Metrics;
use crate::upstream::Pool;

/// A configuration with its pools running.
#[derive(Debug)]
pub struct Policy {
    pub config: Config,
    pub pools: HashMap<String, Arc<Pool>>,
}

impl Policy {
    /// Starts the pools of `config`. Pools whose settings did not change are carried over from
    /// `previous`, keeping their connections and their backends' health.
    pub async fn start(config: Config, previous: Option<&Policy>) -> Self {
        let mut pools = HashMap::new();
        for (name, settings) in &config.pools {
            let kept = previous
                .and_then(|p| p.pools.get(name))
                .filter(|pool| pool.settings == *settings);
            let pool = match kept {
                Some(pool) => pool.clone(),
                None => Pool::start(name, settings.clone()).await,
            };
            pools.insert(name.clone(), pool);
        }
        Self { config, pools }
    }

    /// The first route matching `host` (without port) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteSettings> {
        self.config.routes.iter().find(|route| {
            route
                .host
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(host))
                && path.starts_with(&route.path_prefix)
        })
    }
}

#[derive(Debug)]
pub struct Shared {
    policy: RwLock<Arc<Policy>>,
    pub store: Store,
    pub coalescer: Arc<Coalescer>,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(policy: Policy) -> Self {
        let metrics = Metrics::new();
        let cache = &policy.config.cache;
        let store = Store::new(
            cache.max_memory,
            cache.max_object_size,
            metrics.evictions.clone(),
        );
        Self {
            policy: RwLock::new(Arc::new(policy)),
            store,
            coalescer: Arc::default(),
            metrics,
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("not poisoned").clone()
    }

    pub fn replace_policy(&self, policy: Policy) {
        *self.policy.write().expect("not poisoned") = Arc::new(policy);
    }
}
