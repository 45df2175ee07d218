//! The integration tests: one test binary, one module per feature (`tests/<feature>.rs`).
//!
//! `common` runs the real binary in a temporary directory; `support` starts real helpers
//! (an OpenSSH server, the real tracker). The LXD tests (`lxd_*`) are `#[ignore]`d in a plain
//! `cargo test`: `provisioning/test.sh` prepares LXD and runs them.

mod common;
mod support;

mod cli_backup;
mod cli_bad_input;
mod cli_concurrency;
mod cli_create;
mod cli_dry_run;
mod cli_error_kinds;
mod cli_exposure;
mod cli_hetzner;
mod cli_history;
mod cli_lock;
mod cli_operate;
mod cli_outputs;
mod cli_progress;
mod cli_render;
mod cli_secrets;
mod cli_several;
mod cli_state;
mod cli_status;
mod cli_test;
mod config_proptest;
mod config_validation;
mod host_ssh;
mod image_pull;
mod lxd_airgap;
mod lxd_backup;
mod lxd_configure;
mod lxd_e2e;
mod lxd_hetzner;
mod lxd_history;
mod lxd_provision;
mod lxd_remote;
mod probe_tracker;
mod ssh_engine;
mod ssh_progress;
mod stack_backup;
mod stack_compose;
mod stack_tracker_config;
