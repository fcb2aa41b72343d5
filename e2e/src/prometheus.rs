//! A real Prometheus server for tests: [`Exporter`] serves counters the test controls on
//! `/metrics`, [`Prometheus::start`] runs the `prometheus` binary (Debian package, or
//! `$PROMETHEUS_BIN`) on a free loopback port with a temporary TSDB and a 1 s scrape of the
//! given targets, and [`Prometheus::wait_until_scraped`] waits until every target is `up`.
//!
//! Counters are either set to a value ([`Exporter::set`], [`Exporter::set_istio_requests`]) or
//! made to grow at a rate ([`Exporter::set_rate`], [`Exporter::set_istio_request_rates`]), which
//! is what queries over `rate(...[1m])` (the seed's AnalysisTemplates) need.
//!
//! ```ignore
//! let exporter = Exporter::start().await;
//! exporter.set_istio_request_rates("mock-server-canary", "mock-server", 0.1, 0.9); // 10% ok
//! let prometheus = Prometheus::start(&[exporter.addr()]).await?;
//! prometheus.wait_until_scraped(Duration::from_secs(30)).await?;
//! // point an AnalysisTemplate at prometheus.url() ...
//! prometheus.stop().await;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use axum::routing::get;
use serde_json::Value;

use crate::http_server;

/// Where the Prometheus binary is: `$PROMETHEUS_BIN`, else `/usr/bin/prometheus`.
pub fn prometheus_bin() -> PathBuf {
    std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"))
}

/// One counter: `base` at `since`, growing by `per_second`.
#[derive(Clone, Debug)]
struct Counter {
    name: String,
    base: f64,
    since: Instant,
    per_second: f64,
}

impl Counter {
    fn value(&self, now: Instant) -> f64 {
        self.base + self.per_second * now.saturating_duration_since(self.since).as_secs_f64()
    }
}

/// Series served on `/metrics`: `name{labels}` → counter.
type Series = Arc<Mutex<BTreeMap<String, Counter>>>;

/// A tiny metrics exporter on a loopback port: counters whose values the test sets.
pub struct Exporter {
    addr: SocketAddr,
    series: Series,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Starts serving `/metrics` (empty until [`Exporter::set`] or [`Exporter::set_rate`]).
    #[allow(clippy::expect_used)] // binding 127.0.0.1:0 only fails on a broken host: fail loudly
    pub async fn start() -> Exporter {
        let series: Series = Arc::default();
        let shared = series.clone();
        let router = axum::Router::new().route(
            "/metrics",
            get(move || {
                let series = shared.clone();
                async move { render(&series) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Exporter { addr, series, task }
    }

    /// The exporter's address (a scrape target).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the counter `name{labels}` to `value`, constant from now on (label values are
    /// escaped).
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.update(name, labels, |_| (value, 0.0));
    }

    /// Makes the counter `name{labels}` grow by `per_second` from its current value (0 for a new
    /// series), so `rate(name{labels}[...])` becomes `per_second` once Prometheus has scraped a
    /// few times.
    pub fn set_rate(&self, name: &str, labels: &[(&str, &str)], per_second: f64) {
        self.update(name, labels, |current| (current, per_second));
    }

    fn update(&self, name: &str, labels: &[(&str, &str)], new: impl FnOnce(f64) -> (f64, f64)) {
        let key = series_key(name, labels);
        let now = Instant::now();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let current = series.get(&key).map(|c| c.value(now)).unwrap_or(0.0);
        let (base, per_second) = new(current);
        series.insert(
            key,
            Counter {
                name: name.to_string(),
                base,
                since: now,
                per_second,
            },
        );
    }

    /// Sets the Istio request counters the seed's analysis templates query:
    /// `istio_requests_total{destination_service_name, destination_workload, response_code}`
    /// with `ok` requests answered 200 and `failed` answered 500.
    pub fn set_istio_requests(&self, service: &str, workload: &str, ok: f64, failed: f64) {
        for (code, value) in [("200", ok), ("500", failed)] {
            self.set(
                "istio_requests_total",
                &istio_labels(service, workload, code),
                value,
            );
        }
    }

    /// Like [`Exporter::set_istio_requests`], as rates: from now on `ok_per_second` requests a
    /// second are answered 200 and `failed_per_second` 500, so the success ratio over a
    /// `rate(...[1m])` window moves towards `ok / (ok + failed)`.
    pub fn set_istio_request_rates(
        &self,
        service: &str,
        workload: &str,
        ok_per_second: f64,
        failed_per_second: f64,
    ) {
        for (code, rate) in [("200", ok_per_second), ("500", failed_per_second)] {
            self.set_rate(
                "istio_requests_total",
                &istio_labels(service, workload, code),
                rate,
            );
        }
    }
}

fn istio_labels<'a>(service: &'a str, workload: &'a str, code: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("destination_service_name", service),
        ("destination_workload", workload),
        ("response_code", code),
    ]
}

fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{name}{{{}}}", labels.join(","))
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn render(series: &Series) -> String {
    let series = series.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut out = String::new();
    let mut typed = std::collections::BTreeSet::new();
    for (key, counter) in series.iter() {
        if typed.insert(counter.name.clone()) {
            out.push_str(&format!("# TYPE {} counter\n", counter.name));
        }
        out.push_str(&format!("{key} {}\n", counter.value(now)));
    }
    out
}

/// A running Prometheus server; killed (and its data removed) by [`Prometheus::stop`] or on
/// drop.
pub struct Prometheus {
    child: Option<tokio::process::Child>,
    port: u16,
    dir: PathBuf,
    targets: usize,
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second and waits until it is ready.
    pub async fn start(targets: &[SocketAddr]) -> Result<Prometheus> {
        let mut last_error = anyhow!("not started");
        // A free port can be taken between choosing and binding it: try a few.
        for _ in 0..3 {
            match Self::start_once(targets).await {
                Ok(p) => return Ok(p),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    async fn start_once(targets: &[SocketAddr]) -> Result<Prometheus> {
        let bin = prometheus_bin();
        if !bin.exists() {
            bail!(
                "{} not found (install the Debian package prometheus or set PROMETHEUS_BIN)",
                bin.display()
            );
        }
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "argo-rs-prometheus-{}-{n}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        ));
        std::fs::create_dir_all(dir.join("data")).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("prometheus.yml"), config_yaml(targets))?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let port = crate::free_port()?;
        let child = tokio::process::Command::new(&bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut prometheus = Prometheus {
            child: Some(child),
            port,
            dir,
            targets: targets.len(),
        };
        match prometheus.wait_ready(Duration::from_secs(30)).await {
            Ok(()) => Ok(prometheus),
            Err(e) => {
                let log = prometheus.log_tail();
                prometheus.stop().await;
                Err(e.context(format!("--- prometheus log ---\n{log}")))
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The temporary directory holding the config, the TSDB and `prometheus.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of Prometheus' log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let client = http_server::client()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("prometheus exited at start: {status}");
            }
            let ready = client
                .get(format!("{}/-/ready", self.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&ready, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("prometheus not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every scrape target has been scraped successfully (`up == 1` for all).
    pub async fn wait_until_scraped(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let up = self.query("up").await.unwrap_or_default();
            if up.len() >= self.targets && up.iter().all(|v| *v == 1.0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "targets not scraped after {timeout:?} (up = {up:?})\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `query` returns a single sample equal to `value` (e.g. after the exporter's
    /// counters changed and the next scrape must pick them up).
    pub async fn wait_for_value(&self, query: &str, value: f64, timeout: Duration) -> Result<()> {
        self.wait_until(query, timeout, |got| {
            got.len() == 1 && (got[0] - value).abs() < 1e-9
        })
        .await
        .map(|_| ())
    }

    /// Waits until the samples `query` returns satisfy `check`; returns them.
    pub async fn wait_until(
        &self,
        query: &str,
        timeout: Duration,
        check: impl Fn(&[f64]) -> bool,
    ) -> Result<Vec<f64>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.query(query).await;
            if let Ok(values) = &got
                && check(values)
            {
                return Ok(values.clone());
            }
            if Instant::now() > deadline {
                bail!("{query} is {got:?} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query: the sample values of a vector, or the one value of a scalar
    /// (`NaN` and `±Inf` included).
    pub async fn query(&self, query: &str) -> Result<Vec<f64>> {
        let response = http_server::client()?
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", query)])
            .timeout(Duration::from_secs(2))
            .send()
            .await?;
        let body: Value = response.json().await?;
        if body["status"] != "success" {
            bail!("query {query} failed: {body}");
        }
        let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
        let data = &body["data"];
        Ok(match data["resultType"].as_str() {
            Some("scalar") => number(&data["result"][1]).into_iter().collect(),
            _ => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| number(&s["value"][1]))
                .collect(),
        })
    }

    /// Kills Prometheus, waits for it to exit and removes its data. Queries to [`Prometheus::url`]
    /// are refused from then on.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_yaml(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: test-exporter\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The seed templates' query, as the e2e tests use it: the ratio follows the request rates,
    /// and a switch to a high rate shows within a few scrapes despite the `[1m]` window.
    #[tokio::test]
    async fn rates_drive_the_success_ratio_of_a_real_prometheus() {
        let exporter = Exporter::start().await;
        exporter.set_istio_request_rates("svc", "wl", 0.1, 0.9);
        exporter.set("static_total", &[("a", "b\"c")], 42.0);
        let prometheus = Prometheus::start(&[exporter.addr()]).await.unwrap();
        prometheus
            .wait_until_scraped(Duration::from_secs(30))
            .await
            .unwrap();
        prometheus
            .wait_for_value("static_total", 42.0, Duration::from_secs(10))
            .await
            .unwrap();
        let ratio = "scalar(sum(rate(istio_requests_total{destination_service_name=\"svc\",response_code=~\"2..\"}[1m])) \
                     / sum(rate(istio_requests_total{destination_service_name=\"svc\"}[1m])))";
        prometheus
            .wait_until(ratio, Duration::from_secs(15), |v| {
                v.len() == 1 && (v[0] - 0.1).abs() < 0.01
            })
            .await
            .unwrap();
        exporter.set_istio_request_rates("svc", "wl", 10_000.0, 0.0);
        let switched = Instant::now();
        prometheus
            .wait_until(ratio, Duration::from_secs(10), |v| v.len() == 1 && v[0] >= 0.95)
            .await
            .unwrap();
        assert!(
            switched.elapsed() < Duration::from_secs(4),
            "{:?}",
            switched.elapsed()
        );
        // Counters never go down when the rate changes.
        let total = prometheus.query("sum(istio_requests_total)").await.unwrap();
        assert!(total[0] > 0.0, "{total:?}");
    }
}
