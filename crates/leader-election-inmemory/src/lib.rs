#![doc = include_str!("../README.md")]

mod factory;
mod store;

pub use factory::InMemoryLeaderElectionFactory;
pub use store::{InMemoryGrant, InMemoryLeaseStore, InMemoryStore, StoreFault};
