//! Shared by the end-to-end test binaries that play scenarios outside `#[tokio::test]`
//! (datatest-stable's harness and the deployed tests).

use std::sync::OnceLock;

/// One multi-thread tokio runtime for the whole test process: the engines started on it
/// live as long as the process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}
