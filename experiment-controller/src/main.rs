//! `experiment-controller` binary.

fn main() -> std::process::ExitCode {
    shared_runtime::runtime::main("experiment-controller", |args| async move {
        experiment_controller::run(args).await.map_err(|e| match e {
            experiment_controller::Error::Runtime(e) => e,
            other => shared_runtime::Error::Failed(other.to_string()),
        })
    })
}
