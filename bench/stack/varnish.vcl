# Varnish in the proxy's place: deploy/proxy.toml's policy for the blog, written in VCL.
# bench/stack.sh puts the three app backends (with the same /healthz probe) where @BACKENDS@ is.
vcl 4.1;

import directors;
import std;

@BACKENDS@

sub vcl_recv {
    # Varnish's stock directors have no least-outstanding balancer: round robin over the apps.
    set req.backend_hint = apps.backend();
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # bypass_cookies = ["leanstack_session"]: logged-in readers skip the cache…
    if (req.http.Cookie ~ "(^|;)\s*leanstack_session=") {
        return (pass);
    }
    # …strip_cookies = true: everyone else shares one anonymous copy.
    unset req.http.Cookie;
    # drop_query = ["utm_*", "fbclid", "gclid"] and sort_query = true: one key per page.
    set req.url = regsuball(req.url, "(?<=[?&])(utm_[^=&]*|fbclid|gclid)(=[^&]*)?(&|$)", "");
    set req.url = regsub(req.url, "[?&]$", "");
    set req.url = std.querysort(req.url);
    # Skip the built-in vcl_recv, which would pass any request still carrying a cookie.
    return (hash);
}

sub vcl_backend_response {
    # The lifetime is the app's s-maxage (Varnish honours it before max-age);
    # default_grace = "30s" when the answer gives no stale-while-revalidate.
    if (!beresp.http.Cache-Control ~ "stale-while-revalidate") {
        set beresp.grace = 30s;
    }
}

sub vcl_deliver {
    # The load generator reads X-Cache as it reads our proxy's.
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
