//! Reading a Prometheus `/metrics` page (text format, as `prometheus_client` writes it), with
//! the `prometheus-parse` crate. Everything the report needs is a sum of samples by name and
//! labels, and the difference between two scrapes.

use std::collections::BTreeMap;

/// One scrape: every sample with its labels. Histograms count by their `_count` and `_sum`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Snapshot {
    pub fn parse(text: &str) -> std::io::Result<Snapshot> {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)?;
        let samples = scrape
            .samples
            .into_iter()
            .filter_map(|sample| {
                let value = match sample.value {
                    prometheus_parse::Value::Counter(value)
                    | prometheus_parse::Value::Gauge(value)
                    | prometheus_parse::Value::Untyped(value) => value,
                    // Bucket series add nothing a load report needs beyond `_count` and `_sum`,
                    // which arrive as samples of their own.
                    prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                        return None;
                    }
                };
                let labels = sample
                    .labels
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                Some((sample.metric, labels, value))
            })
            .collect();
        Ok(Snapshot { samples })
    }

    /// Names of the sample series, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self
            .samples
            .iter()
            .map(|(name, ..)| name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter()
    }

    /// Whether any sample of `name` carries the label `label`.
    pub fn has_label(&self, name: &str, label: &str) -> bool {
        self.samples
            .iter()
            .any(|(sample, labels, _)| sample == name && labels.contains_key(label))
    }

    /// The sum of the samples of `name` whose labels include all of `matching`.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(sample, labels, _)| {
                sample == name
                    && matching.iter().all(|(label, value)| {
                        labels.get(*label).map(String::as_str) == Some(*value)
                    })
            })
            .map(|(.., value)| value)
            .sum()
    }

    /// The samples of `name` summed by the value of `label` (samples without it are left out).
    pub fn sum_by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for (sample, labels, value) in &self.samples {
            if sample == name
                && let Some(key) = labels.get(label)
            {
                *sums.entry(key.clone()).or_default() += value;
            }
        }
        sums
    }

    /// `self - before`, series by series: the counters' increase over a run. Series missing
    /// from `before` count from zero (they were created during the run).
    pub fn since(&self, before: &Snapshot) -> Snapshot {
        let samples = self
            .samples
            .iter()
            .map(|(name, labels, value)| {
                let earlier = before
                    .samples
                    .iter()
                    .find(|(other, other_labels, _)| other == name && other_labels == labels)
                    .map_or(0.0, |(.., value)| *value);
                (name.clone(), labels.clone(), value - earlier)
            })
            .collect();
        Snapshot { samples }
    }

    /// Series with a non-zero value, largest first, as `name{labels}` — what changed in a run.
    pub fn nonzero(&self) -> Vec<(String, f64)> {
        let mut rows: Vec<(String, f64)> = self
            .samples
            .iter()
            .filter(|(.., value)| *value != 0.0)
            .map(|(name, labels, value)| {
                let labels: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                let series = if labels.is_empty() {
                    name.clone()
                } else {
                    format!("{name}{{{}}}", labels.join(","))
                };
                (series, *value)
            })
            .collect();
        rows.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# HELP proxy_requests Requests by cache status.
# TYPE proxy_requests counter
proxy_requests_total{cache_status=\"HIT\"} 10
proxy_requests_total{cache_status=\"MISS\"} 5
# TYPE proxy_latency_seconds histogram
proxy_latency_seconds_bucket{le=\"0.1\"} 3
proxy_latency_seconds_bucket{le=\"+Inf\"} 4
proxy_latency_seconds_sum 0.5
proxy_latency_seconds_count 4
# EOF
";

    #[test]
    fn sums_by_label_and_subtracts_an_earlier_scrape() {
        let before = Snapshot::parse(BEFORE).unwrap();
        let after = Snapshot::parse(
            &BEFORE
                .replace("\"HIT\"} 10", "\"HIT\"} 90")
                .replace("_count 4", "_count 9"),
        )
        .unwrap();
        let run = after.since(&before);
        assert_eq!(
            run.sum_by("proxy_requests_total", "cache_status"),
            BTreeMap::from([("HIT".to_owned(), 80.0), ("MISS".to_owned(), 0.0)])
        );
        assert_eq!(run.sum("proxy_latency_seconds_count", &[]), 5.0);
        assert_eq!(
            run.sum("proxy_requests_total", &[("cache_status", "HIT")]),
            80.0
        );
        assert!(run.has_label("proxy_requests_total", "cache_status"));
        assert_eq!(
            run.nonzero(),
            [
                (
                    "proxy_requests_total{cache_status=\"HIT\"}".to_owned(),
                    80.0
                ),
                ("proxy_latency_seconds_count".to_owned(), 5.0)
            ]
        );
    }
}
