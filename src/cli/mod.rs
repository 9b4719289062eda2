//! The admin command line, `corelog topics`, `corelog groups` and
//! `corelog cluster`: clients of
//! any Kafka broker, built on the workspace's one client codec
//! (corelog-client). Part of the `corelog` binary, not of the broker library.

pub mod cluster;
pub mod groups;
mod table;
pub mod topics;

use std::time::Duration;

use corelog_client::{Cluster, ConnectOptions};
use kafka_protocol::protocol::StrBytes;

/// The client id and software name the CLI sends.
const CLIENT_ID: &str = "corelog-cli";

/// Connect, read and write timeout. Admin requests carry a shorter
/// server-side timeout (`REQUEST_TIMEOUT_MS`) so the broker answers first.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Server-side timeout put in requests that have one (CreateTopics, ...).
const REQUEST_TIMEOUT_MS: i32 = 25_000;

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Broker to bootstrap from, host:port (a comma-separated list is tried in order)
    #[arg(long, env = "CORELOG_BOOTSTRAP_SERVER", default_value = "localhost:9092")]
    pub bootstrap_server: String,
}

impl ConnectArgs {
    /// Connects to the first answering bootstrap server.
    fn cluster(&self) -> anyhow::Result<Cluster> {
        Ok(connect(&self.bootstrap_server)?)
    }
}

fn connect(bootstrap_servers: &str) -> Result<Cluster, corelog_client::ClientError> {
    let options = ConnectOptions {
        client_id: StrBytes::from_static_str(CLIENT_ID),
        software_name: StrBytes::from_static_str(CLIENT_ID),
        software_version: StrBytes::from_static_str(env!("CARGO_PKG_VERSION")),
        connect_timeout: IO_TIMEOUT,
        io_timeout: Some(IO_TIMEOUT),
    };
    Cluster::connect(bootstrap_servers, &options)
}
