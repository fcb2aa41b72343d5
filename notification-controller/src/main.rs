//! `notification-controller` binary.

fn main() -> std::process::ExitCode {
    shared_runtime::runtime::main("notification-controller", |args| async move {
        notification_controller::run(args).await.map_err(|e| match e {
            notification_controller::Error::Runtime(e) => e,
            other => shared_runtime::Error::Failed(other.to_string()),
        })
    })
}
