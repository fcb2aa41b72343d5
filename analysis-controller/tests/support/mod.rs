//! Test support shared by the analysis controller's integration tests, kept in the e2e library
//! (one copy for both): local HTTP servers (`e2e::http_server`) and a real Prometheus server
//! scraping a small exporter whose counters the test controls (`e2e::prometheus`).
#![allow(unused_imports)] // each test crate uses a different part of the support

pub use e2e::http_server as http;
pub use e2e::prometheus;
