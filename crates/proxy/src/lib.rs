//! The L4 proxy engine of vipd. Knows nothing of VRRP.

mod balance;
mod config;
mod error;
mod health;
pub mod proxy_protocol;

pub use balance::{Balancer, Candidate};
pub use config::*;
pub use error::Error;
pub use health::{CheckFailure, Checker, HealthState};
