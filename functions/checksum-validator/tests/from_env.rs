//! `ValidatorConfig::from_env` reads the process environment: tested in a process of its
//! own (this file holds one test), so setting variables races no other test.

use std::time::Duration;

use checksum_validator::config::ValidatorConfig;

#[test]
fn the_configuration_comes_from_the_environment() {
    std::env::set_var("LAG_BUDGET_SECONDS", "42");
    std::env::set_var("REPLICA_BUCKET_MAP", "p=r");
    std::env::set_var("DEEP_VERIFY", "yes");
    let c = ValidatorConfig::from_env().expect("valid");
    assert_eq!(c.lag_budget, Duration::from_secs(42));
    assert_eq!(c.replica_bucket_map["p"], "r");
    assert!(c.deep_verify);
    std::env::set_var("MAX_RECEIVE_COUNT", "many");
    let e = ValidatorConfig::from_env().expect_err("invalid");
    assert!(e.to_string().contains("MAX_RECEIVE_COUNT"), "{e}");
}
