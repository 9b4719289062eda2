//! Command-line clients that talk to a broker over the Kafka protocol.

pub mod client;
pub mod groups;
pub mod topics;

#[cfg(test)]
mod fake_broker;
