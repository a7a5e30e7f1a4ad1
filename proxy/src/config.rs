//! The policy file: what squid.conf or a VCL file says, kept to a short TOML a person can read.
//!
//! The file is parsed into the `*File` structs (serde, unknown keys refused so a typo is an
//! error rather than a silently ignored rule), then validated into [`Config`], whose fields are
//! ready to use: durations, sizes, compiled regexes and CIDRs. [`Config::describe`] prints the
//! effective policy in plain words for `proxy --check`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to serve clients, unless the command line says otherwise.
    pub listen: Option<SocketAddr>,
    /// Where to serve /metrics, /status and purges, unless the command line says otherwise.
    pub admin_listen: Option<SocketAddr>,
    pub cache: CacheSettings,
    pub limits: Limits,
    pub admin: AdminSettings,
    pub pools: BTreeMap<String, PoolSettings>,
    /// Tried in order; the first whose host and path prefix match takes the request.
    pub routes: Vec<RouteSettings>,
}

/// The shared cache.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Bytes the store may hold (bodies, headers and bookkeeping) before it evicts.
    pub max_memory: u64,
    /// Larger responses are streamed through without being buffered or stored.
    pub max_object_size: u64,
    /// How long a stale object may be served while it is refreshed in the background, when the
    /// response does not say (`stale-while-revalidate`).
    pub default_grace: Duration,
    /// How long a stale object may be served when every backend fails, when the response does
    /// not say (`stale-if-error`).
    pub stale_if_error: Duration,
    /// How long concurrent misses wait for the one backend request they share.
    pub coalesce_timeout: Duration,
}

/// Limits on what clients may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line plus headers; more is answered 431.
    pub max_header_bytes: usize,
    /// Request target; longer is answered 414.
    pub max_uri_bytes: usize,
    /// A client must send its whole request head within this time.
    pub header_read_timeout: Duration,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Peers allowed to purge; others get 403.
    pub allow: Vec<IpNet>,
}

/// A named group of backends that serve the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// `host:port` entries; names are re-resolved every `dns_refresh`, so a scaled-up service
    /// whose DNS name lists more addresses gains backends.
    pub backends: Vec<String>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// From sending the request to receiving the response head.
    pub first_byte_timeout: Duration,
    /// How long a kept-alive backend connection may sit unused, and how long a backend may go
    /// silent in the middle of a response body.
    pub idle_timeout: Duration,
    pub dns_refresh: Duration,
    pub health: Option<HealthSettings>,
    /// Consecutive connect errors or 5xx answers that take a backend out of rotation.
    pub eject_after: u32,
    /// Without active health checks, how long an ejected backend stays out.
    pub eject_for: Duration,
}

/// How a pool picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    RoundRobin,
    LeastOutstanding,
}

/// Active health checks of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a backend back.
    pub rise: u32,
    /// Consecutive failures that take it out.
    pub fall: u32,
}

/// Which requests go to which pool, and the caching policy for them.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// Matches the Host header (without port), case-insensitively; `None` matches any host.
    pub host: Option<String>,
    pub path_prefix: String,
    pub pool: String,
    /// Whether GET/HEAD answers on this route may be cached at all.
    pub cache: bool,
    /// A request carrying any of these cookies skips the cache (typically a session cookie).
    pub bypass_cookies: Vec<String>,
    /// Remove the Cookie header from cacheable requests, so the backend answers the anonymous
    /// version that every visitor may share.
    pub strip_cookies: bool,
    /// Query parameters removed before the cache key is made and the request is forwarded;
    /// a trailing `*` matches a prefix (`utm_*`).
    pub drop_query: Vec<String>,
    /// Sort the remaining query parameters, so `?b=1&a=2` and `?a=2&b=1` share an object.
    pub sort_query: bool,
    pub rewrites: Vec<Rewrite>,
    /// Freshness lifetime imposed on cacheable answers, overriding what the backend said.
    pub ttl: Option<Duration>,
}

/// A regex URL rewrite applied to path and query.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub pattern: Regex,
    pub replacement: String,
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    server: ServerFile,
    #[serde(default)]
    cache: CacheFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    admin: AdminFile,
    #[serde(default)]
    pools: BTreeMap<String, PoolFile>,
    #[serde(default)]
    routes: Vec<RouteFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: Option<String>,
    admin_listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    max_memory: Option<String>,
    max_object_size: Option<String>,
    default_grace: Option<String>,
    stale_if_error: Option<String>,
    coalesce_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_header_bytes: Option<String>,
    max_uri_bytes: Option<String>,
    header_read_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    backends: Vec<String>,
    balance: Option<Balance>,
    connect_timeout: Option<String>,
    first_byte_timeout: Option<String>,
    idle_timeout: Option<String>,
    dns_refresh: Option<String>,
    health: Option<HealthFile>,
    eject_after: Option<u32>,
    eject_for: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    path: String,
    interval: Option<String>,
    timeout: Option<String>,
    rise: Option<u32>,
    fall: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    host: Option<String>,
    #[serde(default = "root")]
    path_prefix: String,
    pool: String,
    #[serde(default = "yes")]
    cache: bool,
    #[serde(default)]
    bypass_cookies: Vec<String>,
    #[serde(default)]
    strip_cookies: bool,
    #[serde(default)]
    drop_query: Vec<String>,
    #[serde(default)]
    sort_query: bool,
    #[serde(default)]
    rewrite: Vec<RewriteFile>,
    ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteFile {
    from: String,
    to: String,
}

fn root() -> String {
    "/".into()
}

fn yes() -> bool {
    true
}

// ---- defaults, in one place ----------------------------------------------------------------

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_memory: 256 << 20,
            max_object_size: 1 << 20,
            default_grace: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(300),
            coalesce_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 32 << 10,
            max_uri_bytes: 8 << 10,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            allow: vec![
                "127.0.0.0/8".parse().expect("a valid CIDR"),
                "::1/128".parse().expect("a valid CIDR"),
            ],
        }
    }
}

impl PoolSettings {
    /// A pool with the default timeouts and balancing.
    pub fn new(backends: Vec<String>) -> Self {
        Self {
            backends,
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            dns_refresh: Duration::from_secs(5),
            health: None,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
        }
    }
}

impl RouteSettings {
    /// A catch-all route to `pool` with the RFC defaults and no extra policy.
    pub fn catch_all(pool: &str) -> Self {
        Self {
            host: None,
            path_prefix: "/".into(),
            pool: pool.into(),
            cache: true,
            bypass_cookies: Vec::new(),
            strip_cookies: false,
            drop_query: Vec::new(),
            sort_query: false,
            rewrites: Vec::new(),
            ttl: None,
        }
    }
}

impl Config {
    /// No file, like `varnishd -b`: one pool of `backends`, every path routed to it, the RFC
    /// defaults for caching.
    pub fn for_backends(backends: Vec<String>) -> Self {
        Self {
            listen: None,
            admin_listen: None,
            cache: CacheSettings::default(),
            limits: Limits::default(),
            admin: AdminSettings::default(),
            pools: BTreeMap::from([("default".to_owned(), PoolSettings::new(backends))]),
            routes: vec![RouteSettings::catch_all("default")],
        }
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        text.parse()
    }

    /// The effective policy in plain words, for `proxy --check`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "Cache:");
        let c = &self.cache;
        let _ = writeln!(
            w,
            "  holds up to {} in memory; objects over {} are streamed through and not stored.",
            bytes(c.max_memory),
            bytes(c.max_object_size)
        );
        let _ = writeln!(
            w,
            "  freshness comes from s-maxage, max-age, Expires, else the RFC 9111 heuristic (10% of the \
             time since Last-Modified) for the status codes that allow it."
        );
        let _ = writeln!(
            w,
            "  a stale object is served for {} while it is refreshed in the background, and for {} \
             when every backend fails, unless the response says otherwise or forbids it \
             (must-revalidate, proxy-revalidate, s-maxage).",
            secs(c.default_grace),
            secs(c.stale_if_error)
        );
        let _ = writeln!(
            w,
            "  concurrent misses on one object share one backend request and wait up to {} for it.",
            secs(c.coalesce_timeout)
        );
        let _ = writeln!(
            w,
            "  never stored: no-store, private, Set-Cookie, Vary: *, answers to requests with \
             Authorization unless the answer is public, s-maxage or must-revalidate."
        );
        let _ = writeln!(w, "Pools:");
        for (name, pool) in &self.pools {
            let balance = match pool.balance {
                Balance::RoundRobin => "round robin",
                Balance::LeastOutstanding => "least outstanding requests",
            };
            let _ = writeln!(
                w,
                "  {name}: {} ({balance}; DNS names re-resolved every {}).",
                pool.backends.join(", "),
                secs(pool.dns_refresh)
            );
            let _ = writeln!(
                w,
                "    timeouts: connect {}, first byte {}, idle {}; an idempotent request that cannot \
                 connect or gets no answer is retried once on another backend.",
                secs(pool.connect_timeout),
                secs(pool.first_byte_timeout),
                secs(pool.idle_timeout)
            );
            match &pool.health {
                Some(h) => {
                    let _ = writeln!(
                        w,
                        "    health: GET {} every {} (timeout {}); down after {} failures, up after {} \
                         successes; also down after {} connect errors or 5xx in a row.",
                        h.path,
                        secs(h.interval),
                        secs(h.timeout),
                        h.fall,
                        h.rise,
                        pool.eject_after
                    );
                }
                None => {
                    let _ = writeln!(
                        w,
                        "    health: no active checks; a backend is left out for {} after {} connect \
                         errors or 5xx in a row.",
                        secs(pool.eject_for),
                        pool.eject_after
                    );
                }
            }
        }
        let _ = writeln!(w, "Routes (first match wins):");
        for route in &self.routes {
            let host = route.host.as_deref().unwrap_or("any host");
            let _ = writeln!(
                w,
                "  {host}, path {}* -> pool {}",
                route.path_prefix, route.pool
            );
            if !route.cache {
                let _ = writeln!(w, "    not cached: every request is passed to the backend.");
                continue;
            }
            if !route.bypass_cookies.is_empty() {
                let _ = writeln!(
                    w,
                    "    skips the cache when the request has cookie {}.",
                    route.bypass_cookies.join(" or ")
                );
            }
            if route.strip_cookies {
                let _ = writeln!(
                    w,
                    "    other requests have their cookies removed, so everyone shares one copy."
                );
            }
            if !route.drop_query.is_empty() {
                let _ = writeln!(
                    w,
                    "    drops query parameters {}.",
                    route.drop_query.join(", ")
                );
            }
            if route.sort_query {
                let _ = writeln!(w, "    sorts query parameters.");
            }
            for rewrite in &route.rewrites {
                let _ = writeln!(
                    w,
                    "    rewrites {} to {}.",
                    rewrite.pattern.as_str(),
                    rewrite.replacement
                );
            }
            if let Some(ttl) = route.ttl {
                let _ = writeln!(
                    w,
                    "    cacheable answers are kept fresh for {}, whatever the backend says.",
                    secs(ttl)
                );
            }
        }
        if !self
            .routes
            .iter()
            .any(|r| r.host.is_none() && r.path_prefix == "/")
        {
            let _ = writeln!(w, "  anything else: 404, no route.");
        }
        let allow: Vec<String> = self.admin.allow.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            w,
            "Admin: PURGE and POST /purge (Surrogate-Key tags) allowed from {}; others get 403.",
            allow.join(", ")
        );
        out
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text)?;
        Self::validate(file)
    }
}

impl Config {
    fn validate(file: File) -> Result<Self, ConfigError> {
        let mut cache = CacheSettings::default();
        let f = file.cache;
        set(
            &mut cache.max_memory,
            f.max_memory,
            "cache.max_memory",
            size,
        )?;
        set(
            &mut cache.max_object_size,
            f.max_object_size,
            "cache.max_object_size",
            size,
        )?;
        set(
            &mut cache.default_grace,
            f.default_grace,
            "cache.default_grace",
            duration,
        )?;
        set(
            &mut cache.stale_if_error,
            f.stale_if_error,
            "cache.stale_if_error",
            duration,
        )?;
        set(
            &mut cache.coalesce_timeout,
            f.coalesce_timeout,
            "cache.coalesce_timeout",
            duration,
        )?;
        if cache.max_object_size > cache.max_memory {
            return Err(invalid(
                "cache.max_object_size is larger than cache.max_memory",
            ));
        }

        let mut limits = Limits::default();
        let f = file.limits;
        let mut header_bytes = limits.max_header_bytes as u64;
        set(
            &mut header_bytes,
            f.max_header_bytes,
            "limits.max_header_bytes",
            size,
        )?;
        let mut uri_bytes = limits.max_uri_bytes as u64;
        set(
            &mut uri_bytes,
            f.max_uri_bytes,
            "limits.max_uri_bytes",
            size,
        )?;
        // hyper's read buffer cannot be smaller than 8 KiB.
        limits.max_header_bytes = usize::try_from(header_bytes.max(8192))
            .map_err(|_| invalid("limits.max_header_bytes is too large"))?;
        limits.max_uri_bytes =
            usize::try_from(uri_bytes).map_err(|_| invalid("limits.max_uri_bytes is too large"))?;
        set(
            &mut limits.header_read_timeout,
            f.header_read_timeout,
            "limits.header_read_timeout",
            duration,
        )?;

        let mut admin = AdminSettings::default();
        if !file.admin.allow.is_empty() {
            admin.allow = file
                .admin
                .allow
                .iter()
                .map(|cidr| cidr_or_ip(cidr))
                .collect::<Result<_, _>>()?;
        }

        if file.pools.is_empty() {
            return Err(invalid(
                "no [pools.NAME] defined: there is nowhere to send requests",
            ));
        }
        let mut pools = BTreeMap::new();
        for (name, f) in file.pools {
            pools.insert(name.clone(), pool(&name, f)?);
        }

        let routes = if file.routes.is_empty() {
            if pools.len() != 1 {
                return Err(invalid(
                    "no [[routes]] defined and more than one pool: say which pool serves what",
                ));
            }
            let only = pools.keys().next().expect("one pool");
            vec![RouteSettings::catch_all(only)]
        } else {
            file.routes
                .into_iter()
                .enumerate()
                .map(|(index, f)| route(index, f, &pools))
                .collect::<Result<_, _>>()?
        };

        let address = |value: Option<String>, key: &str| {
            value
                .map(|text| {
                    text.parse::<SocketAddr>()
                        .map_err(|e| invalid(format!("{key} = {text:?}: {e}")))
                })
                .transpose()
        };
        Ok(Self {
            listen: address(file.server.listen, "server.listen")?,
            admin_listen: address(file.server.admin_listen, "server.admin_listen")?,
            cache,
            limits,
            admin,
            pools,
            routes,
        })
    }
}

fn pool(name: &str, f: PoolFile) -> Result<PoolSettings, ConfigError> {
    if f.backends.is_empty() {
        return Err(invalid(format!("pools.{name}.backends is empty")));
    }
    for backend in &f.backends {
        let (host, port) = backend.rsplit_once(':').ok_or_else(|| {
            invalid(format!(
                "pools.{name}: backend {backend:?} must be host:port"
            ))
        })?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(invalid(format!(
                "pools.{name}: backend {backend:?} must be host:port"
            )));
        }
    }
    let mut p = PoolSettings::new(f.backends);
    if let Some(balance) = f.balance {
        p.balance = balance;
    }
    let key = |field: &str| format!("pools.{name}.{field}");
    set(
        &mut p.connect_timeout,
        f.connect_timeout,
        &key("connect_timeout"),
        duration,
    )?;
    set(
        &mut p.first_byte_timeout,
        f.first_byte_timeout,
        &key("first_byte_timeout"),
        duration,
    )?;
    set(
        &mut p.idle_timeout,
        f.idle_timeout,
        &key("idle_timeout"),
        duration,
    )?;
    set(
        &mut p.dns_refresh,
        f.dns_refresh,
        &key("dns_refresh"),
        duration,
    )?;
    set(&mut p.eject_for, f.eject_for, &key("eject_for"), duration)?;
    if let Some(n) = f.eject_after {
        if n == 0 {
            return Err(invalid(format!(
                "{} must be at least 1",
                key("eject_after")
            )));
        }
        p.eject_after = n;
    }
    if let Some(h) = f.health {
        if !h.path.starts_with('/') {
            return Err(invalid(format!("{} must start with /", key("health.path"))));
        }
        let mut health = HealthSettings {
            path: h.path,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: h.rise.unwrap_or(2),
            fall: h.fall.unwrap_or(3),
        };
        set(
            &mut health.interval,
            h.interval,
            &key("health.interval"),
            duration,
        )?;
        set(
            &mut health.timeout,
            h.timeout,
            &key("health.timeout"),
            duration,
        )?;
        if health.rise == 0 || health.fall == 0 {
            return Err(invalid(format!(
                "{} and fall must be at least 1",
                key("health.rise")
            )));
        }
        p.health = Some(health);
    }
    Ok(p)
}

fn route(
    index: usize,
    f: RouteFile,
    pools: &BTreeMap<String, PoolSettings>,
) -> Result<RouteSettings, ConfigError> {
    let at = format!("routes[{index}]");
    if !pools.contains_key(&f.pool) {
        return Err(invalid(format!(
            "{at}: pool {:?} is not defined (defined: {})",
            f.pool,
            pools.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    if !f.path_prefix.starts_with('/') {
        return Err(invalid(format!("{at}.path_prefix must start with /")));
    }
    let rewrites = f
        .rewrite
        .into_iter()
        .map(|r| {
            Regex::new(&r.from)
                .map(|pattern| Rewrite {
                    pattern,
                    replacement: r.to,
                })
                .map_err(|e| invalid(format!("{at}.rewrite {:?}: {e}", r.from)))
        })
        .collect::<Result<_, _>>()?;
    let ttl = f
        .ttl
        .map(|text| duration(&text).map_err(|e| invalid(format!("{at}.ttl: {e}"))))
        .transpose()?;
    Ok(RouteSettings {
        host: f.host.map(|h| h.to_ascii_lowercase()),
        path_prefix: f.path_prefix,
        pool: f.pool,
        cache: f.cache,
        bypass_cookies: f.bypass_cookies,
        strip_cookies: f.strip_cookies,
        drop_query: f.drop_query,
        sort_query: f.sort_query,
        rewrites,
        ttl,
    })
}

/// Overwrites `target` with the parsed `value` when the file gave one.
fn set<T>(
    target: &mut T,
    value: Option<String>,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<(), ConfigError> {
    if let Some(text) = value {
        *target = parse(&text).map_err(|e| invalid(format!("{key} = {text:?}: {e}")))?;
    }
    Ok(())
}

fn cidr_or_ip(text: &str) -> Result<IpNet, ConfigError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            invalid(format!(
                "admin.allow: {text:?} is not a CIDR or an IP address"
            ))
        })
}

/// `"500ms"`, `"2s"`, `"5m"`, `"1h"`, `"1d"`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("needs a unit: ms, s, m, h or d")?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| "not a number")?;
    let millis = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(number.saturating_mul(millis)))
}

/// `"512"`, `"64KiB"`, `"256MiB"`, `"1GiB"` (KB/MB/GB are read as the binary units too).
pub fn size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| "not a number")?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown unit {other:?}: use B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| "too large".to_owned())
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("2").is_err());
        assert!(duration("2y").is_err());
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("1MB"), Ok(1 << 20));
        assert_eq!(size("100"), Ok(100));
        assert!(size("lots").is_err());
    }

    #[test]
    fn refuses_route_to_unknown_pool_and_unknown_keys() {
        let error = "[pools.app]\nbackends=[\"a:1\"]\n[[routes]]\npool=\"nope\"\n"
            .parse::<Config>()
            .unwrap_err();
        assert!(
            error.to_string().contains("\"nope\" is not defined"),
            "{error}"
        );
        let error = "[pools.app]\nbackends=[\"a:1\"]\nbalanse=\"round_robin\"\n"
            .parse::<Config>()
            .unwrap_err();
        assert!(error.to_string().contains("balanse"), "{error}");
        let error = "[pools.app]\nbackends=[\"a\"]\n"
            .parse::<Config>()
            .unwrap_err();
        assert!(error.to_string().contains("host:port"), "{error}");
    }
}
