//! The command line end to end, for what needs no cluster: `version`, `completion`, `lint`, and
//! how bad arguments are reported (one `Error: ...` line on stderr, non-zero exit, no panic).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use kubectl_argo_rollouts::{ExitStatus, Io, run};

struct Output {
    status: ExitStatus,
    out: String,
    err: String,
}

async fn kar(args: &[&str]) -> Output {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        stdout_is_terminal: false,
    };
    let argv = std::iter::once("kubectl-argo-rollouts").chain(args.iter().copied());
    let status = run(argv, &mut io).await;
    Output {
        status,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// Asserts a single `Error: ...` line on stderr and returns its text.
fn single_error_line(o: &Output) -> &str {
    let lines: Vec<&str> = o.err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got {:?}", o.err);
    lines[0]
        .strip_prefix("Error: ")
        .unwrap_or_else(|| panic!("no `Error: ` prefix: {:?}", o.err))
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kar-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: mock-server
spec:
  replicas: 5
  selector:
    matchLabels:
      app: mock-server
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 40
      - pause: {duration: 30s}
      - setWeight: 100
      canaryService: mock-server-canary
      stableService: mock-server-stable
  template:
    metadata:
      labels:
        app: mock-server
    spec:
      containers:
      - name: mock-server
        image: ghcr.io/ssup2/mock-go-server:1.0.0
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: mock-server-stable
spec:
  selector:
    app: mock-server
  ports:
  - port: 8080
    targetPort: 8080
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  metrics:
  - name: success-rate
    interval: 30s
    count: 3
    successCondition: result >= 0.95
    failureLimit: 2
    provider:
      prometheus:
        address: http://prometheus.istio-system.svc.cluster.local:9090
        query: scalar(1)
"#;

#[tokio::test]
async fn version() {
    let o = kar(&["version", "--short"]).await;
    assert_eq!(o.status, ExitStatus::Success);
    assert_eq!(
        o.out,
        format!("kubectl-argo-rollouts: v{}\n", env!("CARGO_PKG_VERSION"))
    );
    let o = kar(&["version"]).await;
    assert!(o.out.contains("\n  Platform: "), "{}", o.out);
}

#[tokio::test]
async fn completion_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let o = kar(&["completion", shell]).await;
        assert_eq!(o.status, ExitStatus::Success, "{shell}: {}", o.err);
        assert!(o.out.contains("kubectl-argo-rollouts"), "{shell}");
        assert!(o.out.contains("promote"), "{shell}");
    }
}

#[tokio::test]
async fn lint_accepts_a_valid_multi_document_file() {
    let path = temp_file("valid.yaml", ROLLOUT);
    let o = kar(&["lint", "-f", path.to_str().unwrap()]).await;
    assert_eq!(
        (o.status, o.out.as_str(), o.err.as_str()),
        (ExitStatus::Success, "", "")
    );
}

#[tokio::test]
async fn lint_names_the_field_of_a_wrong_type() {
    let path = temp_file(
        "wrong-type.yaml",
        &ROLLOUT.replace("replicas: 5", "replicas: \"abc\""),
    );
    let o = kar(&["lint", "-f", path.to_str().unwrap()]).await;
    assert_eq!(o.status, ExitStatus::Failure);
    let err = single_error_line(&o);
    assert!(
        err.starts_with("Rollout \"mock-server\": spec.replicas: invalid type: string \"abc\""),
        "{err}"
    );
    assert!(o.out.contains("spec.replicas"), "{}", o.out);
}

#[tokio::test]
async fn lint_reports_spec_rules_and_unknown_fields() {
    let bad = ROLLOUT
        .replace("      - setWeight: 40", "      - setWeight: 140")
        .replace("    failureLimit: 2", "    failureLimit: 2\n    failureLimitt: 3");
    let path = temp_file("invalid.yaml", &bad);
    let o = kar(&["lint", "-f", path.to_str().unwrap()]).await;
    assert_eq!(o.status, ExitStatus::Failure);
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.out);
    assert!(
        lines[0].starts_with("Rollout \"mock-server\": spec.strategy.canary.steps[2].setWeight"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "AnalysisTemplate \"success-rate\": spec.metrics[0].failureLimitt: unknown field \"failureLimitt\""
    );
    assert!(single_error_line(&o).ends_with("(and 1 more)"));
}

#[tokio::test]
async fn lint_file_errors() {
    let o = kar(&["lint", "-f", "/nonexistent/rollout.yaml"]).await;
    assert_eq!(o.status, ExitStatus::Failure);
    assert!(single_error_line(&o).starts_with("unable to read /nonexistent/rollout.yaml"));
    let path = temp_file("broken.yaml", "kind: Rollout\nspec: [unclosed\n");
    let o = kar(&["lint", "-f", path.to_str().unwrap()]).await;
    let err = single_error_line(&o);
    assert!(
        err.starts_with("error parsing ") && err.ends_with("line 2 column 7: unclosed bracket '['"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_arguments_are_one_line() {
    for args in [
        &["get", "rollout"][..],
        &["get", "rollout", "x", "--bogus"],
        &["promote"],
        &["set", "image", "x", "no-equals-sign"],
        &["wait", "x", "--for", "done"],
        &["status", "x", "--timeout", "soon"],
        &["restart", "x", "--in", "later"],
        &["completion", "tcsh"],
        &["frobnicate"],
    ] {
        let o = kar(args).await;
        assert_eq!(o.status, ExitStatus::Usage, "{args:?}: {}", o.err);
        assert_eq!(o.status.code(), 2);
        single_error_line(&o);
        assert!(o.out.is_empty(), "{args:?}");
    }
    let o = kar(&["get"]).await;
    assert_eq!(
        single_error_line(&o),
        "a subcommand is required; usage: kubectl-argo-rollouts get [OPTIONS] <COMMAND>"
    );
    let o = kar(&["set", "image", "x", "no-equals-sign"]).await;
    assert!(
        single_error_line(&o).contains("expected CONTAINER=IMAGE"),
        "{}",
        o.err
    );
}

#[tokio::test]
async fn create_analysisrun_argument_errors() {
    for (args, message) in [
        (
            &["create", "analysisrun"][..],
            "the following required arguments were not provided: <--from <TEMPLATE>|--from-cluster-template <TEMPLATE>|--from-file <FILE>>",
        ),
        (
            &["create", "ar", "--from", "a", "--from-cluster-template", "b"],
            "the argument '--from <TEMPLATE>' cannot be used with '--from-cluster-template <TEMPLATE>'",
        ),
        (
            &["create", "ar", "--from", "a", "--from-file", "t.yaml"],
            "the argument '--from <TEMPLATE>' cannot be used with '--from-file <FILE>'",
        ),
        (
            &[
                "create",
                "ar",
                "--from",
                "a",
                "--name",
                "r",
                "--generate-name",
                "r-",
            ],
            "the argument '--name <NAME>' cannot be used with '--generate-name <GENERATE_NAME>'",
        ),
        (
            &["create", "ar", "--from", "a", "-a", "service"],
            "invalid value 'service' for '--argument <NAME=VALUE>': arguments must be in the form NAME=VALUE",
        ),
        (
            &["create", "ar", "--from", "a", "--argument", "=canary"],
            "invalid value '=canary' for '--argument <NAME=VALUE>': arguments must be in the form NAME=VALUE",
        ),
        (
            &["create", "ar", "--from", ""],
            "a value is required for '--from <TEMPLATE>' but none was supplied",
        ),
        (
            &["create", "-f", "x.yaml", "analysisrun", "--from", "a"],
            "the subcommand 'analysisrun' cannot be used with '--filename <FILES>'",
        ),
    ] {
        let o = kar(args).await;
        assert_eq!(o.status, ExitStatus::Usage, "{args:?}: {}", o.err);
        assert_eq!(single_error_line(&o), message, "{args:?}");
        assert!(o.out.is_empty(), "{args:?}");
    }
    // `create` without a subcommand still wants files.
    let o = kar(&["create"]).await;
    assert_eq!(
        single_error_line(&o),
        "the following required arguments were not provided: --filename <FILES>"
    );
}

#[tokio::test]
async fn create_analysisrun_help_and_completion() {
    let o = kar(&["create", "--help"]).await;
    assert!(o.out.contains("analysisrun  Create an AnalysisRun"), "{}", o.out);
    let o = kar(&["create", "ar", "--help"]).await;
    assert_eq!(o.status, ExitStatus::Success);
    for flag in [
        "--from <TEMPLATE>",
        "--from-cluster-template <TEMPLATE>",
        "--from-file <FILE>",
        "--global",
        "--name <NAME>",
        "--generate-name <GENERATE_NAME>",
        "--instance-id <INSTANCE_ID>",
        "-a, --argument <NAME=VALUE>",
    ] {
        assert!(o.out.contains(flag), "{flag} missing:\n{}", o.out);
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = kar(&["completion", shell]).await;
        assert_eq!(o.status, ExitStatus::Success, "{shell}");
        assert!(o.out.contains("analysisrun"), "{shell}");
        assert!(o.out.contains("from-cluster-template"), "{shell}");
    }
}

#[tokio::test]
async fn help_goes_to_stdout() {
    let o = kar(&["--help"]).await;
    assert_eq!(o.status, ExitStatus::Success);
    for command in [
        "get",
        "list",
        "status",
        "promote",
        "abort",
        "retry",
        "undo",
        "pause",
        "restart",
        "terminate",
        "set",
        "lint",
        "wait",
    ] {
        assert!(
            o.out.contains(&format!("\n  {command} ")),
            "{command} missing from help:\n{}",
            o.out
        );
    }
    let o = kar(&["promote", "--help"]).await;
    assert!(o.out.contains("--full"));
}

#[tokio::test]
async fn missing_kubeconfig_is_one_line() {
    let o = kar(&["--kubeconfig", "/nonexistent/kubeconfig", "get", "rollout", "x"]).await;
    assert_eq!(o.status, ExitStatus::Failure);
    assert!(
        single_error_line(&o).starts_with("error loading kubeconfig"),
        "{}",
        o.err
    );
}
