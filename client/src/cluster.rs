//! The brokers of one cluster as Metadata names them, with one connection
//! per broker opened when first needed: what an admin client needs.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{ApiKey, MetadataResponse};

use crate::connection::{ConnectOptions, Connection};
use crate::error::{ClientError, KafkaError};
use crate::requests::metadata_request;

/// A broker as listed in a Metadata response.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl Broker {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl From<&MetadataResponseBroker> for Broker {
    fn from(b: &MetadataResponseBroker) -> Broker {
        Broker { node_id: b.node_id.0, host: b.host.to_string(), port: b.port }
    }
}

/// The brokers of one cluster, reached through a bootstrap broker.
pub struct Cluster {
    options: ConnectOptions,
    bootstrap: Connection,
    connections: HashMap<i32, Connection>,
    brokers: HashMap<i32, Broker>,
    controller_id: Option<i32>,
}

impl Cluster {
    /// Connects to the first answering broker of a comma-separated list.
    pub fn connect(bootstrap_servers: &str, options: &ConnectOptions) -> Result<Cluster, ClientError> {
        let mut last_error = ClientError::NoAddress { addr: bootstrap_servers.to_string() };
        for addr in bootstrap_servers.split(',').map(str::trim) {
            match Connection::connect(addr, options) {
                Ok(bootstrap) => {
                    return Ok(Cluster {
                        options: options.clone(),
                        bootstrap,
                        connections: HashMap::new(),
                        brokers: HashMap::new(),
                        controller_id: None,
                    })
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    pub fn bootstrap(&mut self) -> &mut Connection {
        &mut self.bootstrap
    }

    /// Metadata for `topics`, or for all topics when `None`; also refreshes
    /// the broker list and the controller.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, ClientError> {
        let version = self.bootstrap.version(ApiKey::Metadata)?;
        let response = self.bootstrap.send_at(&metadata_request(topics, version), version)?;
        KafkaError::check(response.error_code, None)
            .map_err(|source| ClientError::Kafka { what: "Metadata".to_string(), source })?;
        self.brokers = response.brokers.iter().map(|b| (b.node_id.0, Broker::from(b))).collect();
        self.controller_id = Some(response.controller_id.0).filter(|id| *id >= 0);
        Ok(response)
    }

    /// The connection to broker `node_id`, opened on first use.
    pub fn node(&mut self, node_id: i32) -> Result<&mut Connection, ClientError> {
        let Some(broker) = self.brokers.get(&node_id) else {
            return Err(ClientError::UnknownBroker { node_id });
        };
        let addr = broker.addr();
        if addr == self.bootstrap.addr() {
            return Ok(&mut self.bootstrap);
        }
        match self.connections.entry(node_id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => Ok(entry.insert(Connection::connect(&addr, &self.options)?)),
        }
    }

    /// The brokers the last Metadata (or `add_broker`) named, by node id.
    pub fn brokers(&self) -> Vec<Broker> {
        let mut brokers: Vec<Broker> = self.brokers.values().cloned().collect();
        brokers.sort_by_key(|b| b.node_id);
        brokers
    }

    /// Makes a broker learned outside Metadata (a coordinator from
    /// FindCoordinator) reachable through `node`.
    pub fn add_broker(&mut self, broker: Broker) {
        let stale = self.brokers.get(&broker.node_id).is_some_and(|known| known.addr() != broker.addr());
        if stale {
            self.connections.remove(&broker.node_id);
        }
        self.brokers.insert(broker.node_id, broker);
    }

    /// The connection admin requests go to: the controller the metadata
    /// names, or the bootstrap broker when it names none we know.
    pub fn controller(&mut self) -> Result<&mut Connection, ClientError> {
        if self.controller_id.is_none() {
            self.metadata(Some(&[]))?;
        }
        match self.controller_id {
            Some(id) if self.brokers.contains_key(&id) => self.node(id),
            _ => Ok(&mut self.bootstrap),
        }
    }
}
