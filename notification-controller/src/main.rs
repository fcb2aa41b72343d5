//! `notification-controller` binary.

fn main() -> std::process::ExitCode {
    shared_runtime::runtime::main("notification-controller", notification_controller::run)
}
