//! vipd-vrrp's integration tests, linked as one executable: `router_properties::...` (proptest;
//! its `.proptest-regressions` file lies beside its source, where proptest looks for it) and
//! `simulated_lan::...` and `tracking_window::...`.

mod router_properties;
mod simulated_lan;
mod tracking_window;
