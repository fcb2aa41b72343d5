//! `analysis-controller` binary.

fn main() -> std::process::ExitCode {
    shared_runtime::runtime::main("analysis-controller", analysis_controller::run)
}
