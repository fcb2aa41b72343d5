//! `experiment-controller` binary.

fn main() -> std::process::ExitCode {
    shared_runtime::runtime::main("experiment-controller", experiment_controller::run)
}
