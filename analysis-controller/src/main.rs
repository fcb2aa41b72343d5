//! `analysis-controller` binary.

fn main() -> std::process::ExitCode {
    shared_runtime::runtime::main("analysis-controller", |args| async move {
        analysis_controller::run(args).await.map_err(|e| match e {
            analysis_controller::Error::Runtime(e) => e,
            other => shared_runtime::Error::Failed(other.to_string()),
        })
    })
}
