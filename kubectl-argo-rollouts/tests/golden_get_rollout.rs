//! Golden tests of the `get rollout` renderer against real Argo Rollouts output.
//!
//! Each `tests/golden/<scenario>.yaml` holds the objects (Rollout, ReplicaSets, Pods,
//! AnalysisRuns, Experiments) reproducing the cluster state of one `kubectl argo rollouts get
//! rollout mock-server` transcript of the seed document, plus a `GoldenClock` document with the
//! time the transcript was taken. `tests/golden/<scenario>.txt` is that transcript, copied
//! verbatim. The renderer must print it line for line, ages included.
//!
//! Trailing spaces: Go's tab writer pads every cell but the last of a row, so the Rollout row
//! ends with the padded AGE cell and each `# revision:N` row is padded through the AGE column,
//! i.e. as long as the Rollout row. The Undo/Abort, analysis and experiment transcripts show
//! exactly that and are compared byte for byte. In the Blue/Green and Canary-success
//! transcripts the revision rows carry 10 and 7 extra trailing spaces, and the last line of
//! `canary_success_5` lost its trailing padding; no rule of the tab writer produces either (they
//! look like edits of the document), so those scenarios compare lines with trailing spaces
//! trimmed — and still check the revision-row rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use kubectl_argo_rollouts::render::{
    experiment::render_experiment_objects, rollout::render_rollout_objects, tabwriter::display_width,
};
use serde_json::Value;
use shared_types::{analysis::AnalysisRun, experiment::Experiment, rollout::Rollout};

struct Fixture {
    now: Timestamp,
    rollout: Option<Rollout>,
    replica_sets: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    analysis_runs: Vec<AnalysisRun>,
    experiments: Vec<Experiment>,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

fn load(scenario: &str) -> Fixture {
    let path = golden_dir().join(format!("{scenario}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fixture = Fixture {
        now: Timestamp::UNIX_EPOCH,
        rollout: None,
        replica_sets: vec![],
        pods: vec![],
        analysis_runs: vec![],
        experiments: vec![],
    };
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let context = format!("{}: {kind} {}", path.display(), doc["metadata"]["name"]);
        match kind.as_str() {
            "GoldenClock" => fixture.now = doc["now"].as_str().unwrap().parse().unwrap(),
            "Rollout" => fixture.rollout = Some(serde_json::from_value(doc).expect(&context)),
            "ReplicaSet" => fixture
                .replica_sets
                .push(serde_json::from_value(doc).expect(&context)),
            "Pod" => fixture.pods.push(serde_json::from_value(doc).expect(&context)),
            "AnalysisRun" => fixture
                .analysis_runs
                .push(serde_json::from_value(doc).expect(&context)),
            "Experiment" => fixture
                .experiments
                .push(serde_json::from_value(doc).expect(&context)),
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        }
    }
    fixture
}

fn render(f: &Fixture, color: bool) -> String {
    let rollout = f.rollout.as_ref().expect("fixture has a Rollout");
    render_rollout_objects(
        rollout,
        &f.replica_sets,
        &f.pods,
        &f.analysis_runs,
        &f.experiments,
        f.now,
        color,
    )
}

fn expected(name: &str) -> String {
    let path = golden_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// How trailing spaces of the transcript are compared.
#[derive(Clone, Copy, PartialEq)]
enum Padding {
    /// Byte for byte.
    Exact,
    /// The transcript's trailing spaces were edited (see the module comment): trimmed.
    SeedEdited,
}

fn assert_lines(scenario: &str, actual: &str, expected: &str, padding: Padding) {
    let actual_lines: Vec<&str> = actual.lines().collect();
    let expected_lines: Vec<&str> = expected.lines().collect();
    for (i, (a, e)) in actual_lines.iter().zip(&expected_lines).enumerate() {
        let (a, e) = match padding {
            Padding::Exact => (*a, *e),
            Padding::SeedEdited => (a.trim_end(), e.trim_end()),
        };
        assert_eq!(
            a,
            e,
            "{scenario}: line {} differs\n--- actual ---\n{actual}\n--- expected ---\n{expected}",
            i + 1
        );
    }
    assert_eq!(
        actual_lines.len(),
        expected_lines.len(),
        "{scenario}: line count differs\n--- actual ---\n{actual}\n--- expected ---\n{expected}"
    );
    if padding == Padding::Exact {
        assert_eq!(actual, expected, "{scenario}: output differs (line endings?)");
    }
}

/// The tab-writer rule for revision rows: as wide as the Rollout row (both end with the padded
/// AGE column).
fn assert_revision_rows_padded(scenario: &str, actual: &str) {
    let rollout_row = actual.lines().find(|l| l.starts_with("⟳ ")).expect("rollout row");
    for line in actual.lines().filter(|l| l.contains("# revision:")) {
        assert_eq!(
            display_width(line),
            display_width(rollout_row),
            "{scenario}: {line:?}"
        );
    }
}

fn check(scenario: &str, padding: Padding) {
    let fixture = load(scenario);
    let actual = render(&fixture, false);
    assert_lines(scenario, &actual, &expected(&format!("{scenario}.txt")), padding);
    assert_revision_rows_padded(scenario, &actual);
}

#[test]
fn blue_green_transcripts() {
    for n in 1..=4 {
        check(&format!("bluegreen_{n}"), Padding::SeedEdited);
    }
}

#[test]
fn canary_success_transcripts() {
    for n in 1..=5 {
        check(&format!("canary_success_{n}"), Padding::SeedEdited);
    }
}

#[test]
fn undo_abort_transcripts() {
    for n in 1..=6 {
        check(&format!("undo_abort_{n}"), Padding::Exact);
    }
}

#[test]
fn analysis_runs_in_the_tree() {
    // Two AnalysisRuns of one revision (`✖ 3` and `✔ 2,✖ 1`) and a scale-down delay.
    check("analysis_promoted", Padding::Exact);
}

#[test]
fn experiment_in_the_tree() {
    // An Experiment with its own ReplicaSets, Pods and AnalysisRun, and `Σ:` image tags.
    check("experiment_running", Padding::Exact);
}

#[test]
fn get_experiment_view() {
    // Not in the transcripts: Argo's `get experiment` layout (header, then the experiment's
    // subtree as in `get rollout`), rendered from the experiment of `experiment_running`.
    let f = load("experiment_running");
    let actual = render_experiment_objects(
        &f.experiments[0],
        &f.replica_sets,
        &f.pods,
        &f.analysis_runs,
        f.now,
        false,
    );
    assert_lines(
        "get_experiment",
        &actual,
        &expected("experiment_running.get_experiment.txt"),
        Padding::Exact,
    );
}

/// Removes ANSI escape sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn colours_do_not_move_columns() {
    for scenario in [
        "bluegreen_3",
        "undo_abort_6",
        "analysis_promoted",
        "experiment_running",
    ] {
        let f = load(scenario);
        let plain = render(&f, false);
        let coloured = render(&f, true);
        assert_ne!(plain, coloured);
        assert_eq!(strip_ansi(&coloured), plain, "{scenario}");
    }
    let coloured = render(&load("bluegreen_2"), true);
    // Argo wraps even uncoloured icons (code 0) and colours ReplicaSet names by their role.
    assert!(
        coloured.contains("Status:          \x1b[0m॥\x1b[0m Paused\n"),
        "{coloured}"
    );
    assert!(
        coloured.contains("(\x1b[32mstable\x1b[0m, \x1b[32mactive\x1b[0m)"),
        "{coloured}"
    );
    assert!(
        coloured.contains("\x1b[94mmock-server-7c6fcfb847\x1b[0m"),
        "{coloured}"
    );
    assert!(
        coloured.contains("\x1b[32m\x1b[32mmock-server-6579c6cc98\x1b[0m\x1b[0m"),
        "stable+active colour the name twice: {coloured}"
    );
}
