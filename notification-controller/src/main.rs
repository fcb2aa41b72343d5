//! Placeholder binary: says plainly that it does nothing yet, so no deployment mistakes it for
//! a working controller.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("notification-controller: not implemented yet; this build contains no notification controller");
    ExitCode::from(2)
}
