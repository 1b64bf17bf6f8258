//! The apiserver's view of our webhooks: histograms from its `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;

use crate::TestCluster;

/// Admission webhook latency as the apiserver measures it (labels `name`, `type`,
/// `operation`, `rejected`).
pub const ADMISSION_WEBHOOK_DURATION: &str =
    "apiserver_admission_webhook_admission_duration_seconds";
/// CRD conversion webhook latency as the apiserver measures it (labels `crd_name`,
/// `from_version`, `to_version`, `succeeded`).
pub const CONVERSION_WEBHOOK_DURATION: &str = "apiserver_crd_conversion_webhook_duration_seconds";

/// One series of a Prometheus histogram, summed over the labels not grouped by.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSummary {
    /// The grouping labels and their values.
    pub labels: BTreeMap<String, String>,
    /// Number of observations.
    pub count: f64,
    /// Sum of observations (seconds).
    pub sum: f64,
    /// Cumulative buckets: (upper bound `le`, count), sorted by bound.
    pub buckets: Vec<(f64, f64)>,
}

impl HistogramSummary {
    /// Mean observation (seconds); 0 without observations.
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1): "p99 <= this".
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= rank)
            .map(|(le, _)| *le)
    }
}

/// Parses `metric`'s histogram series out of Prometheus text, grouped by `group_by` labels
/// (other labels are summed over).
pub fn histogram(text: &str, metric: &str, group_by: &[&str]) -> Vec<HistogramSummary> {
    /// The values of the grouping labels, in `group_by` order.
    type Key = Vec<(String, String)>;
    /// Per `le` label: (bound, cumulative count).
    type Buckets = BTreeMap<String, (f64, f64)>;
    let mut groups: BTreeMap<Key, HistogramSummary> = BTreeMap::new();
    let mut buckets: BTreeMap<Key, Buckets> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (suffix, rest) = match rest.find('{') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => match rest.find(' ') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => continue,
            },
        };
        if !matches!(suffix, "_bucket" | "_sum" | "_count") {
            continue;
        }
        let (labels, value) = match rest.strip_prefix('{').and_then(|r| r.rsplit_once('}')) {
            Some((labels, value)) => (parse_labels(labels), value),
            None => (Vec::new(), rest),
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let key: Vec<(String, String)> = group_by
            .iter()
            .map(|g| {
                let v = labels
                    .iter()
                    .find(|(k, _)| k == g)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                ((*g).to_string(), v)
            })
            .collect();
        let entry = groups
            .entry(key.clone())
            .or_insert_with(|| HistogramSummary {
                labels: key.iter().cloned().collect(),
                ..HistogramSummary::default()
            });
        match suffix {
            "_sum" => entry.sum += value,
            "_count" => entry.count += value,
            _ => {
                let Some(le) = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v) else {
                    continue;
                };
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::INFINITY)
                };
                let b = buckets.entry(key).or_default();
                let slot = b.entry(le.clone()).or_insert((bound, 0.0));
                slot.1 += value;
            }
        }
    }
    for (key, b) in buckets {
        if let Some(g) = groups.get_mut(&key) {
            let mut v: Vec<(f64, f64)> = b.into_values().collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            g.buckets = v;
        }
    }
    groups.into_values().collect()
}

/// Sums the samples of counter `metric` (e.g. `apiserver_request_total`) grouped by the
/// `group_by` labels (other labels are summed over). Keys hold the label values in
/// `group_by` order.
pub fn counter_sums(text: &str, metric: &str, group_by: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{').and_then(|r| r.rsplit_once('}')) {
            Some((labels, value)) => (parse_labels(labels), value),
            None if rest.starts_with(' ') => (Vec::new(), rest),
            None => continue,
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let key = group_by
            .iter()
            .map(|g| {
                labels
                    .iter()
                    .find(|(k, _)| k == g)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        *out.entry(key).or_default() += value;
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(after) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key, value));
        rest = &after[end..];
    }
    out
}

/// A table of histogram summaries: labels, count, sum, mean and bucket bounds of p50/p99.
pub fn format_summaries(title: &str, series: &[HistogramSummary]) -> String {
    let mut out = format!("{title}\n");
    if series.is_empty() {
        out.push_str("  (no observations)\n");
    }
    for s in series {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let ms = |v: Option<f64>| match v {
            Some(v) if v.is_finite() => format!("{:.0} ms", v * 1000.0),
            Some(_) => "+Inf".to_string(),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<70} count {:>5}  sum {:>8.3} s  mean {:>7.2} ms  p50 <= {:>7}  p99 <= {:>7}",
            labels.join(" "),
            s.count,
            s.sum,
            s.mean() * 1000.0,
            ms(s.quantile_upper_bound(0.5)),
            ms(s.quantile_upper_bound(0.99)),
        );
    }
    out
}

/// The apiserver-measured latencies of the admission webhooks (by name, type, operation,
/// rejected) and of the CRD conversion webhook (by CRD, versions, success).
#[derive(Debug, Clone)]
pub struct WebhookLatencies {
    /// `apiserver_admission_webhook_admission_duration_seconds`.
    pub admission: Vec<HistogramSummary>,
    /// `apiserver_crd_conversion_webhook_duration_seconds`.
    pub conversion: Vec<HistogramSummary>,
}

impl WebhookLatencies {
    /// Parses both histograms out of `/metrics` text.
    pub fn parse(text: &str) -> WebhookLatencies {
        WebhookLatencies {
            admission: histogram(
                text,
                ADMISSION_WEBHOOK_DURATION,
                &["name", "type", "operation", "rejected"],
            ),
            conversion: histogram(
                text,
                CONVERSION_WEBHOOK_DURATION,
                &["crd_name", "from_version", "to_version", "succeeded"],
            ),
        }
    }

    /// Reads the cluster's `/metrics`.
    pub async fn read(cluster: &TestCluster) -> Result<WebhookLatencies> {
        Ok(Self::parse(&cluster.metrics_text().await?))
    }

    /// Total admission calls to webhooks named `name`.
    pub fn admission_count(&self, name: &str) -> f64 {
        self.admission
            .iter()
            .filter(|s| s.labels.get("name").is_some_and(|n| n == name))
            .map(|s| s.count)
            .sum()
    }

    /// Total conversion calls.
    pub fn conversion_count(&self) -> f64 {
        self.conversion.iter().map(|s| s.count).sum()
    }
}

impl std::fmt::Display for WebhookLatencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_summaries(
            &format!("{ADMISSION_WEBHOOK_DURATION} (as the apiserver measures it)"),
            &self.admission,
        ))?;
        f.write_str(&format_summaries(
            &format!("{CONVERSION_WEBHOOK_DURATION} (as the apiserver measures it)"),
            &self.conversion,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP apiserver_admission_webhook_admission_duration_seconds x
# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="validate.nats.io",operation="CREATE",rejected="false",type="validating",le="0.005"} 3
apiserver_admission_webhook_admission_duration_seconds_bucket{name="validate.nats.io",operation="CREATE",rejected="false",type="validating",le="0.025"} 4
apiserver_admission_webhook_admission_duration_seconds_bucket{name="validate.nats.io",operation="CREATE",rejected="false",type="validating",le="+Inf"} 4
apiserver_admission_webhook_admission_duration_seconds_sum{name="validate.nats.io",operation="CREATE",rejected="false",type="validating"} 0.02
apiserver_admission_webhook_admission_duration_seconds_count{name="validate.nats.io",operation="CREATE",rejected="false",type="validating"} 4
apiserver_admission_webhook_admission_duration_seconds_count{name="default.nats.io",operation="CREATE",rejected="false",type="admit"} 2
apiserver_admission_webhook_admission_duration_seconds_sum{name="default.nats.io",operation="CREATE",rejected="false",type="admit"} 0.004
apiserver_admission_webhook_admission_duration_seconds_total_other 1
"#;

    #[test]
    fn histograms_parse_and_summarize() {
        let l = WebhookLatencies::parse(TEXT);
        assert_eq!(l.admission.len(), 2);
        assert_eq!(l.admission_count("validate.nats.io"), 4.0);
        let v = l
            .admission
            .iter()
            .find(|s| s.labels["name"] == "validate.nats.io")
            .expect("series");
        assert!((v.mean() - 0.005).abs() < 1e-9);
        assert_eq!(v.quantile_upper_bound(0.5), Some(0.005));
        assert_eq!(v.quantile_upper_bound(0.99), Some(0.025));
        assert_eq!(l.conversion_count(), 0.0);
        let shown = l.to_string();
        assert!(shown.contains("name=validate.nats.io"), "{shown}");
        assert!(shown.contains("(no observations)"), "{shown}");
    }

    #[test]
    fn counters_sum_by_label() {
        let text = "apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"POST\"} 3\n\
                    apiserver_request_total{code=\"201\",resource=\"pods\",verb=\"POST\"} 2\n\
                    apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"GET\"} 7\n\
                    apiserver_request_total_other 9\n";
        let sums = counter_sums(text, "apiserver_request_total", &["verb"]);
        assert_eq!(sums.get(&vec!["POST".to_string()]), Some(&5.0));
        assert_eq!(sums.get(&vec!["GET".to_string()]), Some(&7.0));
        assert_eq!(sums.len(), 2);
    }

    #[test]
    fn labels_with_escapes_parse() {
        let l = parse_labels(r#"a="x\"y",b="z""#);
        assert_eq!(
            l,
            vec![("a".into(), "x\"y".into()), ("b".into(), "z".into())]
        );
    }
}
