//! Where the numbers come from.

use sqlx::PgPool;

/// The services the live view reads. Every part is optional: a tier with no source is simply
/// not drawn, and a source that does not answer is drawn as down.
///
/// The app instances and the doorbell are found through the proxy (its `/status` lists the
/// backends of every pool), so scaling the apps needs no change here.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The proxy's admin listener, e.g. `http://proxy:9080`.
    pub proxy_admin: Option<String>,
    /// The name of the proxy pool whose backends are the app instances.
    pub app_pool: String,
    /// The name of the proxy pool whose backend is the doorbell.
    pub doorbell_pool: String,
    /// App instances to read besides those the proxy lists (`http://app-1:3000`); for a stack
    /// without a proxy.
    pub apps: Vec<String>,
    /// The doorbell's base URL when the proxy does not list it.
    pub doorbell: Option<String>,
    /// The cache nodes' RESP addresses, `host:port`, as the apps are given them. When empty,
    /// the nodes the apps' cache pools report using.
    pub cache_nodes: Vec<String>,
    /// The blog's database.
    pub database: Option<PgPool>,
}

impl Default for Sources {
    /// No sources yet, with the pool names of `deploy/proxy.toml` (`app`, `doorbell`).
    fn default() -> Self {
        Self {
            proxy_admin: None,
            app_pool: "app".to_owned(),
            doorbell_pool: "doorbell".to_owned(),
            apps: Vec::new(),
            doorbell: None,
            cache_nodes: Vec::new(),
            database: None,
        }
    }
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn proxy_admin(mut self, url: impl Into<String>) -> Self {
        self.proxy_admin = Some(url.into());
        self
    }

    pub fn cache_nodes<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.cache_nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    pub fn database(mut self, pool: PgPool) -> Self {
        self.database = Some(pool);
        self
    }

    pub fn apps<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.apps = urls.into_iter().map(Into::into).collect();
        self
    }

    pub fn doorbell(mut self, url: impl Into<String>) -> Self {
        self.doorbell = Some(url.into());
        self
    }
}
