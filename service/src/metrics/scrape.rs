//! Reading a Prometheus `/metrics` page (the text exposition format, which OpenMetrics
//! extends): every sample with its labels, the sums the readers need, and the difference
//! between two scrapes. Histograms count by their `_count` and `_sum` samples.
//!
//! Label values are parsed with their quoting and escapes, so a value like
//! `route="/posts/{slug}"` — braces and all — is read whole.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} 12.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Series {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One scrape of a `/metrics` page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    series: Vec<Series>,
}

impl Page {
    /// Reads every sample line; a line that is not one (comments, `# EOF`) is skipped, and a
    /// page with lines that cannot be read is refused rather than half-read.
    pub fn parse(text: &str) -> Result<Self, String> {
        let series = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_line(line).ok_or_else(|| format!("unreadable metrics line `{line}`")))
            .collect::<Result<_, _>>()?;
        Ok(Self { series })
    }

    /// The sample names on the page, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter()
    }

    /// Whether any series of `name` carries the label `label`.
    pub fn has_label(&self, name: &str, label: &str) -> bool {
        self.series(name)
            .any(|series| series.label(label).is_some())
    }

    /// The sum of the series of `name` whose labels include all of `matching`.
    pub fn sum_matching(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.sum_where(name, |series| {
            matching
                .iter()
                .all(|(label, value)| series.label(label) == Some(*value))
        })
    }

    /// `self - before`, series by series: the counters' increase between two scrapes. Series
    /// missing from `before` count from zero (they were created in between).
    pub fn since(&self, before: &Page) -> Page {
        let series = self
            .series
            .iter()
            .map(|now| {
                let earlier = before
                    .series
                    .iter()
                    .find(|then| then.name == now.name && then.labels == now.labels)
                    .map_or(0.0, |then| then.value);
                Series {
                    value: now.value - earlier,
                    ..now.clone()
                }
            })
            .collect();
        Page { series }
    }

    /// Series with a non-zero value, largest first, as `name{labels}`: what changed.
    pub fn nonzero(&self) -> Vec<(String, f64)> {
        let mut rows: Vec<(String, f64)> = self
            .series
            .iter()
            .filter(|series| series.value != 0.0)
            .map(|series| {
                let labels: Vec<String> = series
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                let name = if labels.is_empty() {
                    series.name.clone()
                } else {
                    format!("{}{{{}}}", series.name, labels.join(","))
                };
                (name, series.value)
            })
            .collect();
        rows.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
        rows
    }

    /// The series of `name`.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |series| series.name == name)
    }

    /// The sum of every series of `name`; 0 when the family has no series yet (a counter
    /// family only shows a series once it was first incremented).
    pub fn total(&self, name: &str) -> f64 {
        self.sum_where(name, |_| true)
    }

    /// The sum of the series of `name` that `keep` accepts.
    pub fn sum_where(&self, name: &str, keep: impl Fn(&Series) -> bool) -> f64 {
        self.series(name)
            .filter(|series| keep(series))
            .map(|series| series.value)
            .sum()
    }

    /// The sums of the series of `name`, grouped by the value of `label`.
    pub fn sum_by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for series in self.series(name) {
            if let Some(group) = series.label(label) {
                *sums.entry(group.to_owned()).or_default() += series.value;
            }
        }
        sums
    }
}

fn parse_line(line: &str) -> Option<Series> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after_eq) = rest.split_once('=')?;
            let (value, after_value) = quoted(after_eq.strip_prefix('"')?)?;
            labels.push((label.trim().to_owned(), value));
            rest = after_value;
        }
    }
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The label value up to its closing quote, unescaped, and what follows the quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                escaped => value.push(escaped),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Page;

    const TEXT: &str = "# HELP proxy_requests Client requests by cache status.\n\
        # TYPE proxy_requests counter\n\
        proxy_requests_total{cache_status=\"HIT\"} 70\n\
        proxy_requests_total{cache_status=\"MISS\"} 20\n\
        proxy_requests_total{cache_status=\"STALE\"} 10\n\
        # TYPE proxy_request_duration_seconds histogram\n\
        proxy_request_duration_seconds_bucket{cache_status=\"HIT\",le=\"0.1\"} 70\n\
        proxy_request_duration_seconds_bucket{cache_status=\"HIT\",le=\"+Inf\"} 70\n\
        proxy_request_duration_seconds_sum{cache_status=\"HIT\"} 0.5\n\
        proxy_request_duration_seconds_count{cache_status=\"HIT\"} 70\n\
        # TYPE proxy_cache_store_objects gauge\n\
        proxy_cache_store_objects 12\n\
        # EOF\n";

    #[test]
    fn sums_families_by_label_and_filter() {
        let page = Page::parse(TEXT).unwrap();
        assert_eq!(page.total("proxy_requests_total"), 100.0);
        assert_eq!(
            page.sum_where("proxy_requests_total", |series| {
                series.label("cache_status") != Some("MISS")
            }),
            80.0
        );
        let by_status = page.sum_by("proxy_requests_total", "cache_status");
        assert_eq!(by_status["HIT"], 70.0);
        assert_eq!(by_status.len(), 3);
        assert_eq!(page.total("proxy_cache_store_objects"), 12.0);
        assert_eq!(page.total("proxy_request_duration_seconds_count"), 70.0);
    }

    #[test]
    fn a_family_without_series_sums_to_zero() {
        let page = Page::parse(TEXT).unwrap();
        assert_eq!(page.total("app_http_requests_total"), 0.0);
        assert!(page.sum_by("app_http_requests_total", "status").is_empty());
    }

    #[test]
    fn label_values_are_read_whole_with_braces_and_escapes() {
        let page = Page::parse(
            "app_http_requests_total{method=\"GET\",route=\"/posts/{slug}\",status=\"200\"} 40\n\
             app_http_requests_total{method=\"GET\",route=\"/\",status=\"200\"} 10 1700000000000\n\
             odd_total{note=\"a \\\"quoted\\\" } brace, comma\"} 1\n",
        )
        .unwrap();
        assert_eq!(page.total("app_http_requests_total"), 50.0);
        assert_eq!(
            page.sum_by("app_http_requests_total", "route")["/posts/{slug}"],
            40.0
        );
        assert_eq!(
            page.sum_by("odd_total", "note").keys().next().unwrap(),
            "a \"quoted\" } brace, comma"
        );
    }

    #[test]
    fn subtracts_an_earlier_scrape() {
        let before = Page::parse(TEXT).unwrap();
        let after = Page::parse(
            &TEXT
                .replace(
                    "proxy_requests_total{cache_status=\"HIT\"} 70",
                    "proxy_requests_total{cache_status=\"HIT\"} 150",
                )
                .replace(
                    "duration_seconds_count{cache_status=\"HIT\"} 70",
                    "duration_seconds_count{cache_status=\"HIT\"} 75",
                ),
        )
        .unwrap();
        let run = after.since(&before);
        assert_eq!(
            run.sum_matching("proxy_requests_total", &[("cache_status", "HIT")]),
            80.0
        );
        assert_eq!(
            run.sum_by("proxy_requests_total", "cache_status")["MISS"],
            0.0
        );
        assert_eq!(run.total("proxy_request_duration_seconds_count"), 5.0);
        assert!(run.has_label("proxy_requests_total", "cache_status"));
        assert_eq!(
            run.nonzero(),
            [
                (
                    "proxy_requests_total{cache_status=\"HIT\"}".to_owned(),
                    80.0
                ),
                (
                    "proxy_request_duration_seconds_count{cache_status=\"HIT\"}".to_owned(),
                    5.0
                )
            ]
        );
    }

    #[test]
    fn a_page_that_is_not_metrics_is_refused() {
        assert!(Page::parse("<html>not found</html>").is_err());
        assert!(Page::parse("name{label=\"unterminated} 1").is_err());
    }
}
